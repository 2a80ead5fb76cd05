// relay_policy: budgets to counters, refusals to replies and log lines.
#include <gtest/gtest.h>

#include "relay_policy.h"
#include "spamt_test_table.h"

using spamt_test::build;

namespace {

const spamt::Lookup& look(spamt_test::Built& b, spamt::Lookup& l, const char* ip, const char* user = "") {
  EXPECT_EQ(b.table.lookup(ip, user, l), spamt::LookupStatus::ok);
  return l;
}

}  // namespace

TEST(RelayPolicy, EveryWindowOfEveryBudgetIsOneCounterAndMessagesOnlyFirst) {
  auto b = build("alice@example.com rcpt=100/1h,1000/1d msg=10/1h\n@example.com rcpt=5000/1d\n");
  spamt::Lookup l;
  look(*b, l, "192.0.2.7", "alice@example.com");
  store::Limit out[relay_policy::max_counters];
  relay_policy::CounterOrigin origins[relay_policy::max_counters];
  std::size_t n = relay_policy::counters_for_rcpt(l.relay(), true, out, origins);
  ASSERT_EQ(n, 4u);
  EXPECT_EQ(out[0].key.identity, "u:alice@example.com");
  EXPECT_EQ(out[0].key.metric, "rcpt");
  EXPECT_EQ(out[0].key.window_seconds, 3600u);
  EXPECT_EQ(out[0].limit, 100u);
  EXPECT_EQ(out[1].key.window_seconds, 86400u);
  EXPECT_EQ(out[2].key.metric, "msg");
  EXPECT_EQ(out[2].limit, 10u);
  EXPECT_EQ(out[3].key.identity, "d:example.com");
  EXPECT_EQ(origins[3].budget->key, "d:example.com");
  // later recipients of the same transaction: recipients only
  EXPECT_EQ(relay_policy::counters_for_rcpt(l.relay(), false, out, origins), 3u);
}

TEST(RelayPolicy, AnExemptClientHasNoCounters) {
  auto b = build("default rcpt=10/1h\n192.0.2.0/24 exempt\n");
  spamt::Lookup l;
  look(*b, l, "192.0.2.7");
  store::Limit out[relay_policy::max_counters];
  relay_policy::CounterOrigin origins[relay_policy::max_counters];
  EXPECT_EQ(relay_policy::counters_for_rcpt(l.relay(), true, out, origins), 0u);
}

TEST(RelayPolicy, DescribesKeysForPeople) {
  EXPECT_EQ(relay_policy::describe_key("u:alice@example.com"), "user alice@example.com");
  EXPECT_EQ(relay_policy::describe_key("d:example.com"), "domain example.com");
  EXPECT_EQ(relay_policy::describe_key("a:192.0.2.7"), "address 192.0.2.7");
  EXPECT_EQ(relay_policy::describe_key("n:2001:db8::/64"), "network 2001:db8::/64");
}

TEST(RelayPolicy, DescribesWaitsRoughlyAndNeverLess) {
  EXPECT_EQ(relay_policy::describe_wait(0), "a few seconds");
  EXPECT_EQ(relay_policy::describe_wait(59'000), "a few seconds");
  EXPECT_EQ(relay_policy::describe_wait(60'001), "about 2 minutes");
  EXPECT_EQ(relay_policy::describe_wait(3'660'000), "about 61 minutes");
  EXPECT_EQ(relay_policy::describe_wait(3 * 3'600'000), "about 3 hours");
  EXPECT_EQ(relay_policy::describe_wait(3ull * 86'400'000), "about 3 days");
  EXPECT_EQ(relay_policy::describe_wait(window::never), "a long time");
}

TEST(RelayPolicy, RefusalNamesTheLimitAndNothingElse) {
  auto b = build("alice@example.com rcpt=100/1h action=421\ndefault rcpt=10/1d action=450\n");
  spamt::Lookup l;
  look(*b, l, "192.0.2.7", "alice@example.com");
  store::Limit out[relay_policy::max_counters];
  relay_policy::CounterOrigin origins[relay_policy::max_counters];
  ASSERT_EQ(relay_policy::counters_for_rcpt(l.relay(), true, out, origins), 1u);
  relay_policy::Verdict v = relay_policy::refusal(origins[0], 100, 100, 1'800'000, "192.0.2.7");
  EXPECT_EQ(v.code, 421u);
  EXPECT_EQ(v.reply,
            "421 4.7.1 relay limit reached: recipients per 1h for user alice@example.com; closing connection\r\n");
  EXPECT_EQ(v.log, "throttle: relay limit user alice@example.com ip 192.0.2.7 rcpt 100/100 per 1h: 421");

  spamt::Lookup l2;
  look(*b, l2, "192.0.2.8");
  ASSERT_EQ(relay_policy::counters_for_rcpt(l2.relay(), true, out, origins), 1u);
  v = relay_policy::refusal(origins[0], 10, 10, 7'200'000, "192.0.2.8");
  EXPECT_EQ(v.reply,
            "450 4.7.1 relay limit reached: recipients per 1d for address 192.0.2.8; try again in about 2 hours\r\n");
}

TEST(RelayPolicy, AuthFailVerdicts) {
  auto b = build("default authfail=2/10m,5/1h\n");
  spamt::Lookup l;
  const spamt::AuthFailLimit& a = look(*b, l, "192.0.2.7").authfail();
  std::vector<store::CounterUsage> usage(1);
  usage[0].identity = "a:192.0.2.7";
  usage[0].metric = "authfail";
  usage[0].window_seconds = 600;
  usage[0].used = 1;
  usage[0].next_release_ms = 5 * 60'000;
  EXPECT_FALSE(relay_policy::auth_attempt_refusal(a, usage, "192.0.2.7"));  // 1 of 2
  usage[0].used = 2;
  std::optional<relay_policy::Verdict> v = relay_policy::auth_attempt_refusal(a, usage, "192.0.2.7");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->code, 454u);
  EXPECT_EQ(v->reply, "454 4.7.0 too many authentication failures from your address; try again in about 5 minutes\r\n");
  EXPECT_EQ(v->log, "throttle: auth limit address 192.0.2.7 ip 192.0.2.7 authfail 2/2 per 10m: 454");
  usage[0].metric = "rcpt";  // another metric of the same key does not count
  EXPECT_FALSE(relay_policy::auth_attempt_refusal(a, usage, "192.0.2.7"));

  store::Limit counters[spamt::max_windows];
  ASSERT_EQ(relay_policy::counters_for_authfail(a, counters), 2u);
  store::Refusal refused;
  refused.index = 1;
  refused.used = 5;
  refused.limit = 5;
  relay_policy::Verdict f = relay_policy::auth_failure_refusal(a, counters[1], refused, "192.0.2.7");
  EXPECT_EQ(f.code, 421u);
  EXPECT_EQ(f.reply, "421 4.7.0 too many authentication failures, closing connection\r\n");
  EXPECT_EQ(f.log, "throttle: auth limit address 192.0.2.7 ip 192.0.2.7 authfail 5/5 per 1h: 421");
}
