// teergrube_policy: who is delayed, the state kept in a real LMDB store at
// times the test chooses, the log lines; and SessionThrottle's teergrube
// decisions with an injected clock and log. No sockets, no waiting.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "session_throttle.h"
#include "spamt_test_table.h"
#include "store_lmdb.h"
#include "store_test_util.h"
#include "teergrube_policy.h"

using spamt_test::build;

namespace {

const spamt::Lookup& look(spamt_test::Built& b, spamt::Lookup& l, const char* ip, const char* user = "") {
  EXPECT_EQ(b.table.lookup(ip, user, l), spamt::LookupStatus::ok);
  return l;
}

std::uint64_t now_ms = store_test::T0;
std::uint64_t test_clock() noexcept { return now_ms; }
std::vector<std::string> lines;
void test_log(std::string_view line) noexcept { lines.emplace_back(line); }

}  // namespace

TEST(TeergrubePolicy, AppliesToActiveEntriesAndToRelayClientsOnlyWithTarpitrelay) {
  auto b = build(
      "192.0.2.0/24 st=1000 flush=yes\n"
      "198.51.100.0/24 st=1000 tarpitrelay\n"
      "203.0.113.0/24 rcpt=10/1h\n");
  spamt::Lookup l;
  EXPECT_EQ(teergrube_policy::applies(nullptr, false), nullptr);  // no usable table
  EXPECT_EQ(teergrube_policy::applies(&look(*b, l, "192.0.2.7"), false), &l.teergrube());
  EXPECT_EQ(teergrube_policy::applies(&look(*b, l, "192.0.2.7"), true), nullptr);
  EXPECT_EQ(teergrube_policy::applies(&look(*b, l, "198.51.100.7"), true), &l.teergrube());
  EXPECT_EQ(teergrube_policy::applies(&look(*b, l, "203.0.113.7"), false), nullptr);  // no st=

  EXPECT_FALSE(teergrube_policy::offers_pipelining(teergrube_policy::applies(&look(*b, l, "192.0.2.7"), false)));
  EXPECT_TRUE(teergrube_policy::offers_pipelining(teergrube_policy::applies(&look(*b, l, "192.0.2.7"), true)));
  EXPECT_TRUE(teergrube_policy::offers_pipelining(teergrube_policy::applies(&look(*b, l, "198.51.100.7"), false)));
  EXPECT_TRUE(teergrube_policy::offers_pipelining(nullptr));
}

TEST(TeergrubePolicy, AFastSenderIsDelayedAndAnIdleOneStartsAfresh) {
  auto b = build("192.0.2.0/24 st=1000 stmax=5000 tg=30 tgtext=\"slow down\" prefix4=24\n");
  store_test::TempDir dir;
  store::LmdbStore store(store_test::options_for(dir));
  spamt::Lookup l;
  const spamt::TeergrubeSettings* t = teergrube_policy::applies(&look(*b, l, "192.0.2.7"), false);
  ASSERT_NE(t, nullptr);
  store::Result r;

  // the first message of the block: fresh state, no delay
  teergrube_policy::Delay d = teergrube_policy::decide(store, *t, 1, store_test::T0, r);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(d.outcome.fresh);
  EXPECT_EQ(d.outcome.delay_ms, 0u);
  EXPECT_EQ(d.state_key(), "n:192.0.2.0/24");

  // another client of the block 10 ms later: 100 ms * 1000 / 10 ms, at most stmax
  look(*b, l, "192.0.2.9");
  d = teergrube_policy::decide(store, *t, 1, store_test::T0 + 10, r);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_FALSE(d.outcome.fresh);
  EXPECT_EQ(d.outcome.interval_ms, 10u);
  EXPECT_EQ(d.outcome.delay_ms, 5000u);
  EXPECT_EQ(d.tg_seconds, 30u);
  EXPECT_EQ(d.text, "slow down");
  EXPECT_EQ(teergrube_policy::delay_log("192.0.2.9", d, 4999, "complete"),
            "throttle: teergrube ip 192.0.2.9 key n:192.0.2.0/24 rcpt 1 interval 10ms wait 10000ms delay 5000ms "
            "waited 4999ms: complete");

  // idle past the reset (stmax): a fresh start
  d = teergrube_policy::decide(store, *t, 1, store_test::T0 + 10 + 5000 + 5001, r);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(d.outcome.fresh);
  EXPECT_EQ(d.outcome.delay_ms, 0u);
}

TEST(TeergrubePolicy, AStoreFaultDelaysNobody) {
  auto b = build("default st=1000\n");
  store_test::TempDir dir;
  store::LmdbOptions o = store_test::options_for(dir);
  o.directory = dir.path() + "/missing/dir";
  store::LmdbStore store(o);
  spamt::Lookup l;
  const spamt::TeergrubeSettings* t = teergrube_policy::applies(&look(*b, l, "192.0.2.7"), false);
  ASSERT_NE(t, nullptr);
  store::Result r;
  teergrube_policy::Delay d = teergrube_policy::decide(store, *t, 1, store_test::T0, r);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(d.outcome.delay_ms, 0u);
  EXPECT_EQ(teergrube_policy::fault_log("192.0.2.7", r).rfind("throttle: store fault ip 192.0.2.7 teergrube: ", 0), 0u);
  EXPECT_TRUE(teergrube_policy::fault_log("192.0.2.7", r).ends_with("): no delay"));
}

// SessionThrottle's teergrube: the policy with the session's table, store,
// clock and log.
class SessionTeergrubeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    now_ms = store_test::T0;
    lines.clear();
    path = dir.path() + "/spamt.cdb";
  }

  std::unique_ptr<throttle::SessionThrottle> session(const char* ip, bool relay, bool disabled = false,
                                                     std::string store_dir = "") {
    auto s = std::make_unique<throttle::SessionThrottle>(test_clock, test_log);
    throttle::Config c;
    c.table_path = path.c_str();
    c.store = store_test::options_for(dir);
    if (!store_dir.empty()) c.store.directory = store_dir;
    c.disabled = disabled;
    s->configure(c);
    s->start(ip, relay);
    return s;
  }

  store_test::TempDir dir;
  std::string path;
};

TEST_F(SessionTeergrubeTest, DelaysAFastClientAtTheInjectedTime) {
  spamt_test::write_table_file(path, "default st=1000 stmax=5000 flush=yes\n");
  auto s = session("192.0.2.7", false);
  EXPECT_FALSE(s->teergrube_offers_pipelining());
  EXPECT_EQ(s->teergrube_at_data(1).outcome.delay_ms, 0u);
  now_ms += 10;
  teergrube_policy::Delay d = s->teergrube_at_data(1);
  EXPECT_EQ(d.outcome.delay_ms, 5000u);
  EXPECT_TRUE(d.flush);
  EXPECT_EQ(d.directory, dir.path());
  EXPECT_EQ(d.state_key(), "a:192.0.2.7");
  s->release_for_wait();
  s->teergrube_log(d, 5000, "complete");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "throttle: teergrube ip 192.0.2.7 key a:192.0.2.7 rcpt 1 interval 10ms wait 10000ms delay 5000ms waited "
            "5000ms: complete");
  // the table and store are opened again after the wait
  now_ms += 10;
  EXPECT_GT(s->teergrube_at_data(1).outcome.delay_ms, 0u);
}

TEST_F(SessionTeergrubeTest, RelayClientsDisabledSessionsAndStoreFaults) {
  spamt_test::write_table_file(path, "default st=1000 stmax=5000 flush=yes\n");
  for (int i = 0; i < 3; ++i, now_ms += 10) {
    EXPECT_EQ(session("192.0.2.7", true)->teergrube_at_data(1).outcome.delay_ms, 0u);        // relay client
    EXPECT_EQ(session("192.0.2.8", false, true)->teergrube_at_data(1).outcome.delay_ms, 0u);  // NOTHROTTLE
  }
  EXPECT_TRUE(session("192.0.2.7", true)->teergrube_offers_pipelining());
  EXPECT_TRUE(session("192.0.2.8", false, true)->teergrube_offers_pipelining());
  EXPECT_TRUE(lines.empty());

  auto s = session("192.0.2.9", false, false, dir.path() + "/missing/dir");
  EXPECT_EQ(s->teergrube_at_data(1).outcome.delay_ms, 0u);
  EXPECT_EQ(s->teergrube_at_data(1).outcome.delay_ms, 0u);
  ASSERT_EQ(lines.size(), 1u);  // logged once
  EXPECT_EQ(lines[0].rfind("throttle: store fault ip 192.0.2.9 teergrube: ", 0), 0u) << lines[0];
}
