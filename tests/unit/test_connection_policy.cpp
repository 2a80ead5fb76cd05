// The greeting's decision on conn= and connrate= (connection_policy.h),
// with the store's clock given explicitly.
#include <gtest/gtest.h>

#include <string>

#include "connection_policy.h"
#include "spamt_test_table.h"
#include "store_test_util.h"

using namespace connection_policy;
using store_test::T0;

namespace {

bool has(const std::string& text, std::string_view needle) { return text.find(needle) != std::string::npos; }

}  // namespace

TEST(ConnectionPolicy, NeedsNothingWithoutClientLimits) {
  auto b = spamt_test::build("default rcpt=10/1h\n10.0.0.0/8 exempt\n192.0.2.0/24 conn=0\n");
  spamt::Lookup l;
  store::Limit counters[spamt::max_windows];
  for (const char* ip : {"198.51.100.1", "10.1.1.1", "192.0.2.1"}) {
    ASSERT_EQ(b->table.lookup(ip, "", l), spamt::LookupStatus::ok);
    Needs n = needs(l.client());
    EXPECT_FALSE(n.slot) << ip;
    EXPECT_FALSE(n.rate) << ip;
    EXPECT_EQ(counters_for_connection(l.client(), counters), 0u) << ip;
  }
}

TEST(ConnectionPolicy, SlotFullIsA421NamingTheAddress) {
  auto b = spamt_test::build("192.0.2.0/24 conn=3\n");
  spamt::Lookup l;
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), spamt::LookupStatus::ok);
  EXPECT_TRUE(needs(l.client()).slot);
  EXPECT_EQ(after_slot(l.client(), SlotOutcome::held, 0, "192.0.2.7").outcome, Outcome::accept);
  Decision d = after_slot(l.client(), SlotOutcome::full, 0, "192.0.2.7");
  EXPECT_EQ(d.outcome, Outcome::refuse);
  EXPECT_EQ(d.verdict.code, 421u);
  EXPECT_EQ(d.verdict.reply, "421 4.7.0 too many connections from 192.0.2.7\r\n");
  EXPECT_EQ(d.verdict.log, "throttle: client limit network 192.0.2.0/24 ip 192.0.2.7 conn 3/3: 421");
  Decision f = after_slot(l.client(), SlotOutcome::fault, EACCES, "192.0.2.7");
  EXPECT_EQ(f.outcome, Outcome::accept);  // a file fault never keeps every client out
  EXPECT_TRUE(has(f.log, "cannot count connections")) << f.log;
}

// connrate=3/1m: never more than three sessions in any 60 s, a sliding
// window: the fourth is refused until the first leaves the window.
TEST(ConnectionPolicy, ConnrateIsExactOverTheWindow) {
  auto b = spamt_test::build("default connrate=3/1m,5/1h\n");
  spamt::Lookup l;
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), spamt::LookupStatus::ok);
  ASSERT_TRUE(needs(l.client()).rate);
  store_test::TempDir dir;
  store::LmdbStore s(store_test::options_for(dir));
  store::Limit counters[spamt::max_windows];
  const std::size_t n = counters_for_connection(l.client(), counters);
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(counters[0].key.identity, "a:192.0.2.7");
  EXPECT_EQ(counters[0].key.metric, "conn");
  auto connect = [&](std::uint64_t now) {
    store::ChargeResult r = s.charge({counters, n}, 1, now, nullptr);
    return after_rate(l.client(), r, counters, n, false, "192.0.2.7");
  };
  for (std::uint64_t t : {T0, T0 + 10'000, T0 + 20'000}) EXPECT_EQ(connect(t).outcome, Outcome::accept) << t;
  Decision d = connect(T0 + 59'000);
  EXPECT_EQ(d.outcome, Outcome::refuse);
  EXPECT_EQ(d.verdict.log, "throttle: client limit address 192.0.2.7 ip 192.0.2.7 connrate 3/3 per 1m: 421");
  EXPECT_TRUE(has(d.verdict.reply, "421 4.7.0 too many connections from 192.0.2.7; try again in")) << d.verdict.reply;
  // the first leaves the window at most one bucket (a sixtieth: 1 s) after
  // 60 s (window.h), the second is still in it
  EXPECT_EQ(connect(T0 + 61'000).outcome, Outcome::accept);
  EXPECT_EQ(connect(T0 + 61'001).outcome, Outcome::refuse);
  EXPECT_EQ(connect(T0 + 81'000).outcome, Outcome::accept);
  // the hour's window: five in all
  Decision h = connect(T0 + 200'000);
  EXPECT_EQ(h.outcome, Outcome::refuse);
  EXPECT_TRUE(has(h.verdict.log, "connrate 5/5 per 1h")) << h.verdict.log;
}

TEST(ConnectionPolicy, StoreFaultFollowsTheFailPolicy) {
  auto b = spamt_test::build("default connrate=3/1m\n");
  spamt::Lookup l;
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), spamt::LookupStatus::ok);
  store::Limit counters[spamt::max_windows];
  const std::size_t n = counters_for_connection(l.client(), counters);
  store::ChargeResult fault = store::ChargeResult::failure(store::Status::unavailable, "lock timeout");
  Decision open = after_rate(l.client(), fault, counters, n, false, "192.0.2.7");
  EXPECT_EQ(open.outcome, Outcome::accept);
  EXPECT_TRUE(has(open.log, "store unavailable (lock timeout): not limited")) << open.log;
  Decision closed = after_rate(l.client(), fault, counters, n, true, "192.0.2.7");
  EXPECT_EQ(closed.outcome, Outcome::refuse);
  EXPECT_EQ(closed.verdict.reply, "421 4.3.0 temporary failure, try again later\r\n");
}
