// The inbound rates inmsg= and inrcpt= (inbound_policy.h): the counters of
// one recipient, exact sliding windows with the store's clock given
// explicitly, and the 450 replies and log lines.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>

#include "inbound_policy.h"
#include "spamt_test_table.h"
#include "store_test_util.h"

using namespace inbound_policy;
using store_test::T0;

TEST(InboundPolicy, NothingWithoutInboundLimits) {
  auto b = spamt_test::build(
      "default rcpt=10/1h conn=5 connrate=10/1m\n10.0.0.0/8 exempt\n192.0.2.0/24 inrcpt=0 inmsg=0\n");
  spamt::Lookup l;
  store::Limit counters[max_counters];
  for (const char* ip : {"198.51.100.1", "10.1.1.1", "192.0.2.1"}) {
    ASSERT_EQ(b->table.lookup(ip, "", l), spamt::LookupStatus::ok);
    EXPECT_FALSE(applies(l.client())) << ip;
    EXPECT_EQ(counters_for_rcpt(l.client(), true, counters), 0u) << ip;
  }
}

TEST(InboundPolicy, CountersUnderTheClientsKeyAndTheMessageOnlyFirst) {
  auto b = spamt_test::build(
      "default inrcpt=100/1h\n192.0.2.0/24 inrcpt=3/1m,5/1h inmsg=2/1h\n198.51.100.0/24 inmsg=4/1d each\n");
  spamt::Lookup l;
  store::Limit c[max_counters];
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), spamt::LookupStatus::ok);
  ASSERT_EQ(counters_for_rcpt(l.client(), true, c), 3u);
  EXPECT_EQ(c[0].key.identity, "n:192.0.2.0/24");  // the block shares one count
  EXPECT_EQ(c[0].key.metric, "inrcpt");
  EXPECT_EQ(c[0].key.window_seconds, 60u);
  EXPECT_EQ(c[0].limit, 3u);
  EXPECT_EQ(c[1].key.window_seconds, 3600u);
  EXPECT_EQ(c[2].key.metric, "inmsg");
  EXPECT_EQ(c[2].limit, 2u);
  EXPECT_EQ(counters_for_rcpt(l.client(), false, c), 2u);  // a later recipient: no message
  ASSERT_EQ(b->table.lookup("198.51.100.9", "", l), spamt::LookupStatus::ok);
  ASSERT_EQ(counters_for_rcpt(l.client(), true, c), 1u);
  EXPECT_EQ(c[0].key.identity, "a:198.51.100.9");  // each
  EXPECT_EQ(c[0].key.metric, "inmsg");
  EXPECT_EQ(counters_for_rcpt(l.client(), false, c), 0u);
  ASSERT_EQ(b->table.lookup("2001:db8:1:2::7", "", l), spamt::LookupStatus::ok);
  ASSERT_EQ(counters_for_rcpt(l.client(), true, c), 1u);
  EXPECT_EQ(c[0].key.identity, "n:2001:db8:1:2::/64");  // IPv6 per /64
}

namespace {

// One client of a table, its recipients charged in a real LMDB store at
// explicit times.
struct Inbound {
  Inbound(const char* table, const char* ip, bool first) : built(spamt_test::build(table)), ip(ip) {
    EXPECT_EQ(built->table.lookup(ip, "", lookup), spamt::LookupStatus::ok);
    n = counters_for_rcpt(lookup.client(), first, counters);
  }
  // One recipient at `now`: nothing when accepted, else the refusal.
  std::optional<relay_policy::Verdict> rcpt(std::uint64_t now) {
    store::ChargeResult r = store.charge({counters, n}, 1, now, nullptr);
    EXPECT_TRUE(r.ok()) << r.reason;
    if (r.accepted) return std::nullopt;
    return refusal(lookup.client(), counters[r.refusal.index], r.refusal, ip);
  }

  std::unique_ptr<spamt_test::Built> built;
  const char* ip;
  spamt::Lookup lookup;
  store_test::TempDir dir;
  store::LmdbStore store{store_test::options_for(dir)};
  store::Limit counters[max_counters];
  std::size_t n = 0;
};

}  // namespace

// inrcpt=3/1m,5/1h: never more than three recipients in any 60 s nor five in
// any hour; a refused recipient is not counted.
TEST(InboundPolicy, InrcptIsExactOverEveryWindow) {
  Inbound c("default inrcpt=3/1m,5/1h\n", "192.0.2.7", false);
  ASSERT_EQ(c.n, 2u);
  for (std::uint64_t t : {T0, T0 + 10'000, T0 + 20'000}) EXPECT_FALSE(c.rcpt(t)) << t;
  std::optional<relay_policy::Verdict> v = c.rcpt(T0 + 59'000);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->code, 450u);
  EXPECT_EQ(v->reply, "450 4.7.1 too many recipients from 192.0.2.7\r\n");
  EXPECT_EQ(v->log, "throttle: client limit address 192.0.2.7 ip 192.0.2.7 inrcpt 3/3 per 1m: 450");
  EXPECT_FALSE(c.rcpt(T0 + 61'000));  // the first left the minute
  EXPECT_TRUE(c.rcpt(T0 + 61'001));   // the second has not
  EXPECT_FALSE(c.rcpt(T0 + 81'000));  // five in the hour now
  v = c.rcpt(T0 + 200'000);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->log, "throttle: client limit address 192.0.2.7 ip 192.0.2.7 inrcpt 5/5 per 1h: 450");
}

TEST(InboundPolicy, InmsgRefusalIsTooMuchMail) {
  Inbound c("192.0.2.0/24 inmsg=1/1h inrcpt=10/1h\n", "192.0.2.7", true);
  EXPECT_FALSE(c.rcpt(T0));
  std::optional<relay_policy::Verdict> v = c.rcpt(T0 + 1000);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->reply, "450 4.7.1 too much mail from 192.0.2.7\r\n");
  EXPECT_EQ(v->log, "throttle: client limit network 192.0.2.0/24 ip 192.0.2.7 inmsg 1/1 per 1h: 450");
}
