// What every store backend must do (store.h), in one suite run against each
// (store_backends.h: LMDB, one Redis, a Redis Cluster): atomic charges across
// identities, receipts and refunds, the window arithmetic, reading back,
// expiry, records, malformed requests, many processes at once, and a
// property test that feeds random events to a store and to window.h's
// arithmetic and compares every answer. Backend-specific behaviour is in
// test_store_lmdb*.cpp and test_store_redis.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "store_backends.h"
#include "window.h"

using store::ChargeResult;
using store::CounterKey;
using store::Limit;
using store::Receipt;
using store::Status;
using store_test::DAY;
using store_test::Sender;
using store_test::T0;
using store_test::used;

namespace {

class StoreContract : public store_test::StoreBackend {};

}  // namespace

QT_ALL_BACKENDS(StoreContract);

TEST_P(StoreContract, AllCountersChargedOrNone) {
  Sender who(5, 3, 10);
  for (int i = 0; i < 3; ++i) {
    ChargeResult r = s().charge(who.limits, 1, T0 + i, nullptr);
    ASSERT_TRUE(r.ok()) << r.reason;
    ASSERT_TRUE(r.accepted);
  }
  ChargeResult r = s().charge(who.limits, 1, T0 + 10, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_FALSE(r.accepted);
  EXPECT_EQ(r.refusal.index, 1u);  // the domain
  EXPECT_EQ(r.refusal.used, 3u);
  EXPECT_EQ(r.refusal.limit, 3u);
  EXPECT_GT(r.refusal.retry_after_ms, std::uint64_t{DAY} * 1000 - 1000);
  // The refusal charged nothing anywhere.
  EXPECT_EQ(used(s(), "u:alice@example.com", "rcpt", DAY, T0 + 10), 3u);
  EXPECT_EQ(used(s(), "d:example.com", "rcpt", DAY, T0 + 10), 3u);
  EXPECT_EQ(used(s(), "a:192.0.2.7", "rcpt", DAY, T0 + 10), 3u);
  // A bigger amount that does not fit charges nothing either.
  Sender roomy(100, 100, 5);
  r = s().charge(roomy.limits, 3, T0 + 11, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.accepted);
  EXPECT_EQ(r.refusal.index, 2u);
  EXPECT_EQ(used(s(), "u:alice@example.com", "rcpt", DAY, T0 + 11), 3u);
  // More than the limit can never fit.
  r = s().charge(roomy.limits, 6, T0 + 12, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.accepted);
  EXPECT_EQ(r.refusal.retry_after_ms, window::never);
}

TEST_P(StoreContract, RefusalNamesTheCounterThatFreesUpLast) {
  Limit hour{{"u:bob@example.com", "rcpt", 3600}, 2};
  Limit day{{"u:bob@example.com", "rcpt", DAY}, 2};
  Limit both[] = {hour, day};
  ASSERT_TRUE(s().charge(both, 2, T0, nullptr).accepted);
  ChargeResult r = s().charge(both, 1, T0 + 1000, nullptr);
  ASSERT_TRUE(r.ok());
  ASSERT_FALSE(r.accepted);
  EXPECT_EQ(r.refusal.index, 1u);  // the day frees up later than the hour
  // An hour later the hourly counter has room, the daily one still refuses.
  r = s().charge(both, 1, T0 + 3'700'000, nullptr);
  ASSERT_FALSE(r.accepted);
  EXPECT_EQ(r.refusal.index, 1u);
  EXPECT_EQ(used(s(), "u:bob@example.com", "rcpt", 3600, T0 + 3'700'000), 0u);
  // Across identities too: the domain's day outlasts the user's hour.
  Limit across[] = {{{"u:bob@example.com", "msg", 3600}, 1}, {{"d:example.com", "msg", DAY}, 1}};
  ASSERT_TRUE(s().charge(across, 1, T0, nullptr).accepted);
  r = s().charge(across, 1, T0 + 10, nullptr);
  ASSERT_FALSE(r.accepted);
  EXPECT_EQ(r.refusal.index, 1u);
}

TEST_P(StoreContract, LimitMeansExactlyThatMany) {
  Limit one[] = {{{"u:carol@example.com", "rcpt", DAY}, 1000}};
  int accepted = 0;
  for (int i = 0; i < 1200; ++i) {
    ChargeResult r = s().charge(one, 1, T0 + i, nullptr);
    ASSERT_TRUE(r.ok()) << r.reason;
    accepted += r.accepted;
  }
  EXPECT_EQ(accepted, 1000);
}

TEST_P(StoreContract, WindowSlidesWithoutReset) {
  Limit per_minute[] = {{{"a:198.51.100.1", "rcpt", 60}, 10}};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(s().charge(per_minute, 1, T0 + i * 3000, nullptr).accepted);
  // Full; the first charge (bucket T0) leaves the window after 61 s.
  ChargeResult r = s().charge(per_minute, 1, T0 + 60'000, nullptr);
  ASSERT_FALSE(r.accepted);
  EXPECT_EQ(r.refusal.retry_after_ms, 1000u);
  EXPECT_FALSE(s().charge(per_minute, 1, T0 + 60'999, nullptr).accepted);
  EXPECT_TRUE(s().charge(per_minute, 1, T0 + 61'000, nullptr).accepted);
  EXPECT_FALSE(s().charge(per_minute, 1, T0 + 61'000, nullptr).accepted);
  EXPECT_TRUE(s().charge(per_minute, 1, T0 + 64'000, nullptr).accepted);  // the second one left
}

TEST_P(StoreContract, ReceiptGivesBackExactlyWhatWasCharged) {
  Sender who(100, 100, 100);
  Receipt txn;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s().charge(who.limits, 1, T0 + i, &txn).accepted);
  EXPECT_EQ(txn.entries().size(), 3u);  // one per counter: same bucket, merged
  for (const auto& e : txn.entries()) EXPECT_EQ(e.amount, 5u);
  Receipt other;  // another transaction's charges stay
  ASSERT_TRUE(s().charge(who.limits, 2, T0 + 10, &other).accepted);
  ASSERT_TRUE(s().refund(txn, T0 + 20).ok());
  EXPECT_EQ(used(s(), "u:alice@example.com", "rcpt", DAY, T0 + 20), 2u);
  EXPECT_EQ(used(s(), "d:example.com", "rcpt", DAY, T0 + 20), 2u);
  EXPECT_EQ(used(s(), "a:192.0.2.7", "rcpt", DAY, T0 + 20), 2u);
  // A refund clears the receipt, so giving it back again cannot take the
  // other transaction's charges (they share the bucket).
  EXPECT_TRUE(txn.empty());
  ASSERT_TRUE(s().refund(txn, T0 + 21).ok());
  EXPECT_EQ(used(s(), "d:example.com", "rcpt", DAY, T0 + 21), 2u);
  ASSERT_TRUE(s().refund(other, T0 + 22).ok());
  EXPECT_EQ(used(s(), "d:example.com", "rcpt", DAY, T0 + 22), 0u);
  // Receipts merge: two transactions given back in one step.
  Receipt a, b;
  ASSERT_TRUE(s().charge(who.limits, 1, T0 + 23, &a).accepted);
  ASSERT_TRUE(s().charge(who.limits, 2, T0 + 24, &b).accepted);
  a.append(b);
  EXPECT_EQ(a.entries().size(), 3u);
  ASSERT_TRUE(s().refund(a, T0 + 25).ok());
  EXPECT_EQ(used(s(), "u:alice@example.com", "rcpt", DAY, T0 + 25), 0u);
  // A refused charge adds nothing to the receipt.
  Sender tight(1, 1, 1);
  Receipt none;
  ASSERT_TRUE(s().charge(tight.limits, 1, T0 + 30, &none).accepted);
  none.clear();
  ASSERT_FALSE(s().charge(tight.limits, 1, T0 + 31, &none).accepted);
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreContract, RefundAfterTheBucketLeftTheWindowTakesNothingNewer) {
  Limit l[] = {{{"u:dave@example.com", "rcpt", 60}, 100}};
  Receipt old;
  ASSERT_TRUE(s().charge(l, 3, T0, &old).accepted);
  // 2 minutes later: the old charge is out of the window, new ones are in.
  ASSERT_TRUE(s().charge(l, 2, T0 + 120'000, nullptr).accepted);
  Receipt copy = old;
  ASSERT_TRUE(s().refund(old, T0 + 121'000).ok());
  EXPECT_EQ(used(s(), "u:dave@example.com", "rcpt", 60, T0 + 121'000), 2u);
  // And once the counter expired and was dropped, a refund is a no-op.
  ASSERT_TRUE(s().expire(T0 + 1'000'000, 100, nullptr).ok());
  ASSERT_TRUE(s().refund(copy, T0 + 1'000'000).ok());
  EXPECT_EQ(used(s(), "u:dave@example.com", "rcpt", 60, T0 + 1'000'000), 0u);
}

TEST_P(StoreContract, ClockGoingBackwardsKeepsCounting) {
  Limit l[] = {{{"u:erin@example.com", "rcpt", 3600}, 3}};
  Receipt r1, r2;
  ASSERT_TRUE(s().charge(l, 2, T0, &r1).accepted);
  // The clock steps back 10 minutes: the charges made "later" still count.
  ASSERT_TRUE(s().charge(l, 1, T0 - 600'000, &r2).accepted);
  EXPECT_FALSE(s().charge(l, 1, T0 - 600'000, nullptr).accepted);
  EXPECT_EQ(used(s(), "u:erin@example.com", "rcpt", 3600, T0 - 600'000), 3u);
  ASSERT_TRUE(s().refund(r2, T0 - 599'000).ok());
  EXPECT_EQ(used(s(), "u:erin@example.com", "rcpt", 3600, T0 - 599'000), 2u);
}

TEST_P(StoreContract, CountsSurviveReopening) {
  {
    Sender who(100, 100, 100);
    ASSERT_TRUE(s().charge(who.limits, 7, T0, nullptr).accepted);
  }
  store_.reset();
  std::unique_ptr<store::Store> again = open();
  EXPECT_EQ(used(*again, "u:alice@example.com", "rcpt", DAY, T0 + 1), 7u);
  EXPECT_EQ(used(*again, "a:192.0.2.7", "rcpt", DAY, T0 + 1), 7u);
}

TEST_P(StoreContract, TwoHandlesShareOneBudget) {
  std::unique_ptr<store::Store> other = open();
  Limit l[] = {{{"u:shared@example.com", "rcpt", DAY}, 10}, {{"a:192.0.2.9", "rcpt", DAY}, 1000}};
  int accepted = 0;
  for (int i = 0; i < 10; ++i) {
    accepted += s().charge(l, 1, T0 + i, nullptr).accepted;
    accepted += other->charge(l, 1, T0 + i, nullptr).accepted;
  }
  EXPECT_EQ(accepted, 10);
  EXPECT_EQ(used(*other, "a:192.0.2.9", "rcpt", DAY, T0 + 20), 10u);
}

TEST_P(StoreContract, UsageListsEveryCounterOfAnIdentityOnly) {
  Limit l[] = {{{"u:frank@example.com", "rcpt", 3600}, 100},
               {{"u:frank@example.com", "rcpt", DAY}, 1000},
               {{"u:frank@example.com.evil", "rcpt", DAY}, 1000}};
  ASSERT_TRUE(s().charge(l, 4, T0, nullptr).accepted);
  Limit m[] = {{{"u:frank@example.com", "msg", DAY}, 50}};
  ASSERT_TRUE(s().charge(m, 1, T0, nullptr).accepted);
  std::vector<store::CounterUsage> u;
  ASSERT_TRUE(s().usage("u:frank@example.com", T0 + 5, u).ok());
  ASSERT_EQ(u.size(), 3u);  // not the .evil one: keys are matched exactly
  for (const auto& c : u) {
    EXPECT_EQ(c.identity, "u:frank@example.com");
    EXPECT_EQ(c.used, c.metric == "msg" ? 1u : 4u);
    EXPECT_EQ(c.limit, c.metric == "msg" ? 50u : (c.window_seconds == 3600 ? 100u : 1000u));
    EXPECT_GT(c.next_release_ms, 0u);
  }
  // In key order: metric, then window.
  EXPECT_EQ(u[0].metric, "msg");
  EXPECT_EQ(u[1].window_seconds, 3600u);
  EXPECT_EQ(u[2].window_seconds, DAY);
  ASSERT_TRUE(s().usage("u:nobody@example.com", T0, u).ok());
  EXPECT_TRUE(u.empty());
}

TEST_P(StoreContract, IdentitiesWithSpecialCharactersStayApart) {
  // Hash tags, glob characters, separators: each identity is its own budget.
  const char* ids[] = {"u:a}b@example.com", "u:a{b}@example.com", "u:*@example.com", "u:a b/c:d@example.com",
                       "n:2001:db8::/64"};
  for (const char* id : ids) {
    Limit l[] = {{{id, "rcpt", DAY}, 1}};
    ASSERT_TRUE(s().charge(l, 1, T0, nullptr).accepted) << id;
    ASSERT_FALSE(s().charge(l, 1, T0, nullptr).accepted) << id;
  }
  for (const char* id : ids) EXPECT_EQ(used(s(), id, "rcpt", DAY, T0), 1u) << id;
  std::size_t removed = 0;
  ASSERT_TRUE(s().reset("u:*@example.com", T0, &removed).ok());
  EXPECT_EQ(removed, 1u);
  EXPECT_EQ(used(s(), "u:a}b@example.com", "rcpt", DAY, T0), 1u);
}

TEST_P(StoreContract, TopListsTheBusiestCounters) {
  const char* ids[] = {"u:a@x.example", "u:b@x.example", "u:c@x.example", "u:d@x.example"};
  for (int i = 0; i < 4; ++i) {
    Limit l[] = {{{ids[i], "rcpt", DAY}, 1000}};
    ASSERT_TRUE(s().charge(l, static_cast<std::uint32_t>(10 * (i + 1)), T0, nullptr).accepted);
  }
  Limit m[] = {{{"u:a@x.example", "msg", DAY}, 1000}};
  ASSERT_TRUE(s().charge(m, 100, T0, nullptr).accepted);
  std::vector<store::CounterUsage> top;
  ASSERT_TRUE(s().top(2, "rcpt", T0 + 1, top).ok());
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].identity, "u:d@x.example");
  EXPECT_EQ(top[0].used, 40u);
  EXPECT_EQ(top[1].identity, "u:c@x.example");
  ASSERT_TRUE(s().top(10, "", T0 + 1, top).ok());
  ASSERT_EQ(top.size(), 5u);
  EXPECT_EQ(top[0].metric, "msg");
  // Counters whose window has passed are not "busy".
  ASSERT_TRUE(s().top(10, "", T0 + 2ull * DAY * 1000, top).ok());
  EXPECT_TRUE(top.empty());
}

TEST_P(StoreContract, ResetDropsOneIdentity) {
  Sender who(100, 100, 100);
  Limit hour[] = {{{"u:alice@example.com", "rcpt", 3600}, 10}};
  ASSERT_TRUE(s().charge(who.limits, 5, T0, nullptr).accepted);
  ASSERT_TRUE(s().charge(hour, 5, T0, nullptr).accepted);
  std::size_t removed = 99;
  ASSERT_TRUE(s().reset("u:alice@example.com", T0 + 1, &removed).ok());
  EXPECT_EQ(removed, 2u);
  EXPECT_EQ(used(s(), "u:alice@example.com", "rcpt", DAY, T0 + 1), 0u);
  EXPECT_EQ(used(s(), "d:example.com", "rcpt", DAY, T0 + 1), 5u);
  ASSERT_TRUE(s().reset("u:alice@example.com", T0 + 1, &removed).ok());
  EXPECT_EQ(removed, 0u);
  store::Stats st;
  ASSERT_TRUE(s().stats(st).ok());
  EXPECT_EQ(st.counters, 2u);
  std::size_t expired = 0;
  ASSERT_TRUE(s().expire(T0 + 10ull * DAY * 1000, 1000, &expired).ok());
  EXPECT_EQ(expired, 2u);
  ASSERT_TRUE(s().stats(st).ok());
  EXPECT_EQ(st.counters, 0u);
}

TEST_P(StoreContract, RecordsAreReadModifiedAndWrittenAtomically) {
  auto bump = [&](std::uint64_t at) {
    return s().update_record("tg:a:192.0.2.7", at, [&](std::optional<std::string_view> cur, std::uint64_t now) {
      EXPECT_EQ(now, at);
      const int n = cur ? std::stoi(std::string(*cur)) : 0;
      return store::RecordEdit::put(std::to_string(n + 1), now + 60'000);
    });
  };
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bump(T0 + i).ok());
  std::optional<std::string> v;
  ASSERT_TRUE(s().read_record("tg:a:192.0.2.7", T0 + 10, v).ok());
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, "5");
  // keep changes nothing
  ASSERT_TRUE(
      s().update_record("tg:a:192.0.2.7", T0 + 11, [](auto, std::uint64_t) { return store::RecordEdit::keep(); })
          .ok());
  ASSERT_TRUE(s().read_record("tg:a:192.0.2.7", T0 + 11, v).ok());
  EXPECT_EQ(*v, "5");
  // Expired records read as absent and start over.
  ASSERT_TRUE(s().read_record("tg:a:192.0.2.7", T0 + 4 + 60'000, v).ok());
  EXPECT_FALSE(v.has_value());
  ASSERT_TRUE(bump(T0 + 100'000).ok());
  ASSERT_TRUE(s().read_record("tg:a:192.0.2.7", T0 + 100'001, v).ok());
  EXPECT_EQ(*v, "1");
  // Binary values, erase, size limit.
  const std::string bin("\0\1\2 \3", 5);
  ASSERT_TRUE(
      s().update_record("bin", T0, [&](auto, std::uint64_t) { return store::RecordEdit::put(bin, T0 + 1000); }).ok());
  ASSERT_TRUE(s().read_record("bin", T0, v).ok());
  EXPECT_EQ(*v, bin);
  ASSERT_TRUE(s().update_record("bin", T0, [](auto, std::uint64_t) { return store::RecordEdit::erase(); }).ok());
  ASSERT_TRUE(s().read_record("bin", T0, v).ok());
  EXPECT_FALSE(v.has_value());
  store::Result r = s().update_record("big", T0, [](auto, std::uint64_t) {
    return store::RecordEdit::put(std::string(store::max_record_value + 1, 'x'), T0 + 1000);
  });
  EXPECT_EQ(r.status, Status::error);
  EXPECT_EQ(s().update_record("", T0, [](auto, std::uint64_t) { return store::RecordEdit::keep(); }).status,
            Status::error);
  // Records expire like counters: no cron.
  store::Stats st;
  ASSERT_TRUE(s().stats(st).ok());
  EXPECT_EQ(st.records, 1u);
  std::size_t removed = 0;
  ASSERT_TRUE(s().expire(T0 + 1'000'000, 100, &removed).ok());
  EXPECT_EQ(removed, 1u);
  ASSERT_TRUE(s().stats(st).ok());
  EXPECT_EQ(st.records, 0u);
}

TEST_P(StoreContract, RecordUpdatesOfManyProcessesAreNeverLost) {
  constexpr int procs = 8, each = 40;
  std::vector<pid_t> pids;
  for (int p = 0; p < procs; ++p) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::unique_ptr<store::Store> mine = open();
      for (int i = 0; i < each; ++i) {
        store::Result r = mine->update_record("count", T0, [](std::optional<std::string_view> cur, std::uint64_t now) {
          const int n = cur ? std::stoi(std::string(*cur)) : 0;
          return store::RecordEdit::put(std::to_string(n + 1), now + 600'000);
        });
        if (!r.ok()) {  // say why: a loaded machine can run out of retries or of the command timeout
          std::fprintf(stderr, "child %d, update %d: %.*s (%s)\n", p, i, static_cast<int>(store::status_name(r.status).size()),
                       store::status_name(r.status).data(), r.reason.c_str());
          _exit(1);
        }
      }
      _exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t p : pids) {
    int st = 0;
    waitpid(p, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  std::optional<std::string> v;
  ASSERT_TRUE(s().read_record("count", T0, v).ok());
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, std::to_string(procs * each));
}

TEST_P(StoreContract, TheStoreClockIsUsedWhenNoTimeIsGiven) {
  std::uint64_t before = 0, after = 0;
  ASSERT_TRUE(s().clock(before).ok());
  Limit l[] = {{{"u:now@example.com", "rcpt", 60}, 10}};
  Receipt receipt;
  ASSERT_TRUE(s().charge(l, 1, store::store_clock, &receipt).accepted);
  ASSERT_TRUE(s().clock(after).ok());
  ASSERT_EQ(receipt.entries().size(), 1u);
  const std::uint64_t width = window::bucket_ms(60);
  EXPECT_GE(receipt.entries()[0].bucket, before / width);
  EXPECT_LE(receipt.entries()[0].bucket, after / width);
  std::uint64_t seen = 0;
  ASSERT_TRUE(s().update_record("t", store::store_clock, [&](auto, std::uint64_t now) {
                   seen = now;
                   return store::RecordEdit::put("x", now + 1000);
                 }).ok());
  EXPECT_GE(seen, before);
  std::optional<std::string> v;
  ASSERT_TRUE(s().read_record("t", store::store_clock, v).ok());
  EXPECT_EQ(v, std::optional<std::string>("x"));
  EXPECT_EQ(used(s(), "u:now@example.com", "rcpt", 60, store::store_clock), 1u);
}

TEST_P(StoreContract, MalformedRequestsAreErrorsAndChargeNothing) {
  Limit good{{"u:x@example.com", "rcpt", 60}, 10};
  Limit twice[] = {good, good};
  EXPECT_EQ(s().charge(twice, 1, T0, nullptr).status, Status::error);
  Limit empty[] = {{{"", "rcpt", 60}, 10}};
  EXPECT_EQ(s().charge(empty, 1, T0, nullptr).status, Status::error);
  Limit nul[] = {{{std::string_view("u:a\0b", 5), "rcpt", 60}, 10}};
  EXPECT_EQ(s().charge(nul, 1, T0, nullptr).status, Status::error);
  Limit bad_metric[] = {{{"u:x@example.com", "rcpt/60", 60}, 10}};
  EXPECT_EQ(s().charge(bad_metric, 1, T0, nullptr).status, Status::error);
  Limit zero_window[] = {{{"u:x@example.com", "rcpt", 0}, 10}};
  EXPECT_EQ(s().charge(zero_window, 1, T0, nullptr).status, Status::error);
  const std::string long_id(store::max_identity + 1, 'x');
  Limit too_long[] = {{{long_id, "rcpt", 60}, 10}};
  EXPECT_EQ(s().charge(too_long, 1, T0, nullptr).status, Status::error);
  Limit one[] = {good};
  EXPECT_EQ(s().charge(one, 0, T0, nullptr).status, Status::error);
  std::vector<std::string> names;
  std::vector<Limit> many;
  for (std::size_t i = 0; i <= store::max_counters; ++i) names.push_back("u:" + std::to_string(i));
  for (const auto& n : names) many.push_back({{n, "rcpt", 60}, 10});
  EXPECT_EQ(s().charge(many, 1, T0, nullptr).status, Status::error);
  many.pop_back();  // exactly max_counters is fine
  ChargeResult r = s().charge(many, 1, T0, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.accepted);
  EXPECT_EQ(used(s(), "u:x@example.com", "rcpt", 60, T0), 0u);
  // The longest identity and metric and window are fine.
  const std::string longest(store::max_identity, 'y'), longest_metric(store::max_metric, 'm');
  Limit at_max[] = {{{longest, longest_metric, 0xffffffffu}, 10}};
  r = s().charge(at_max, 1, T0, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.accepted);
  EXPECT_EQ(used(s(), longest, longest_metric, 0xffffffffu, T0), 1u);
}

TEST_P(StoreContract, AnEditorThatCallsTheStoreGetsAnErrorNotAHang) {
  Sender who(10, 10, 10);
  ChargeResult inner;
  const auto t0 = std::chrono::steady_clock::now();
  store::Result outer = s().update_record("tg:a:192.0.2.7", T0, [&](auto, std::uint64_t) {
    inner = s().charge(who.limits, 1, T0, nullptr);  // misuse: inside the atomic step
    return store::RecordEdit::put("x", T0 + 1000);
  });
  const auto waited =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_TRUE(outer.ok()) << outer.reason;
  EXPECT_EQ(inner.status, Status::error);  // a hang would end as `unavailable`, at the lock timeout
  EXPECT_LT(waited.count(), 30'000);       // only a hang takes this long, even on a loaded machine
  EXPECT_EQ(used(s(), "d:example.com", "rcpt", DAY, T0), 0u);
}

// Many processes charge the same budgets as fast as they can, all at once:
// exactly the limit is accepted, and every counter of a charge moved together.
TEST_P(StoreContract, ExactlyTheLimitIsAcceptedByManyProcessesAtOnce) {
  constexpr int procs = 32;
  constexpr std::uint32_t N = 3000;
  int go[2], results[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(results), 0);
  struct Report {
    std::int32_t child, accepted, errors;
  };
  std::vector<pid_t> pids;
  for (int i = 0; i < procs; ++i) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(go[1]);
      std::unique_ptr<store::Store> mine = open(60'000);
      const std::string user = "u:user" + std::to_string(i) + "@example.com";
      const Limit warm[] = {{{user, "warm-up", DAY}, 1}};  // connected before the start
      if (!mine->charge(warm, 1, T0, nullptr).accepted) _exit(4);
      char c;
      (void)!read(go[0], &c, 1);
      Limit l[] = {{{user, "rcpt", DAY}, 1'000'000}, {{"d:example.com", "rcpt", DAY}, N},
                   {{"n:192.0.2.0/24", "rcpt", DAY}, N + 100}};
      Report r{i, 0, 0};
      for (;;) {
        ChargeResult c2 = mine->charge(l, 1, T0, nullptr);
        if (!c2.ok()) {
          ++r.errors;
          break;
        }
        if (!c2.accepted) break;
        ++r.accepted;
      }
      (void)!write(results[1], &r, sizeof r);
      _exit(0);
    }
    pids.push_back(pid);
  }
  close(go[0]);
  close(results[1]);
  close(go[1]);
  std::map<int, int> accepted_by;
  long total = 0;
  Report r;
  while (read(results[0], &r, sizeof r) == sizeof r) {
    EXPECT_EQ(r.errors, 0) << "child " << r.child;
    accepted_by[r.child] = r.accepted;
    total += r.accepted;
  }
  close(results[0]);
  for (pid_t p : pids) {
    int st;
    waitpid(p, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  ASSERT_EQ(accepted_by.size(), static_cast<std::size_t>(procs));
  EXPECT_EQ(total, N);
  EXPECT_EQ(used(s(), "d:example.com", "rcpt", DAY, T0), N);
  EXPECT_EQ(used(s(), "n:192.0.2.0/24", "rcpt", DAY, T0), N);
  for (const auto& [child, n] : accepted_by)
    EXPECT_EQ(used(s(), "u:user" + std::to_string(child) + "@example.com", "rcpt", DAY, T0),
              static_cast<std::uint64_t>(n));
}

// ---- property test: the store against window.h's arithmetic ---------------

namespace {

// The same counters kept in memory with window.h, as a store must keep them.
struct Model {
  struct Entry {
    window::Counter c;
    std::uint32_t limit = 0;
  };
  std::map<std::tuple<std::string, std::string, std::uint32_t>, Entry> counters;

  ChargeResult charge(std::span<const Limit> ls, std::uint32_t amount, std::uint64_t now, Receipt& receipt) {
    ChargeResult out;
    std::vector<Entry> work;
    std::vector<std::uint64_t> buckets;
    bool refused = false;
    for (std::size_t i = 0; i < ls.size(); ++i) {
      Entry e = counters[key(ls[i].key)];
      const std::uint64_t w = window::bucket_ms(ls[i].key.window_seconds);
      buckets.push_back(window::align(e.c, w, now));
      window::Room room = window::room(e.c, w, now, ls[i].limit, amount);
      if (!room.fits && (!refused || room.retry_after_ms > out.refusal.retry_after_ms)) {
        refused = true;
        out.refusal = store::Refusal{i, room.used, ls[i].limit, room.retry_after_ms};
      }
      work.push_back(e);
    }
    out.accepted = !refused;
    if (refused) return out;
    for (std::size_t i = 0; i < ls.size(); ++i) {
      window::charge(work[i].c, amount);
      work[i].limit = ls[i].limit;
      counters[key(ls[i].key)] = work[i];
      receipt.add(ls[i].key, buckets[i], amount);
    }
    return out;
  }

  void refund(Receipt& r) {
    for (const auto& e : r.entries()) {
      auto it = counters.find({e.identity, e.metric, e.window_seconds});
      if (it != counters.end()) window::refund(it->second.c, e.bucket, e.amount);
    }
    r.clear();
  }

  store::CounterUsage usage(const CounterKey& k, std::uint64_t now) {
    store::CounterUsage u;
    auto it = counters.find(key(k));
    if (it == counters.end()) return u;
    window::Counter c = it->second.c;
    const std::uint64_t w = window::bucket_ms(k.window_seconds);
    window::align(c, w, now);
    u.used = window::used(c);
    u.limit = it->second.limit;
    u.next_release_ms = window::next_release_ms(c, w, now);
    return u;
  }

  static std::tuple<std::string, std::string, std::uint32_t> key(const CounterKey& k) {
    return {std::string(k.identity), std::string(k.metric), k.window_seconds};
  }
};

}  // namespace

TEST_P(StoreContract, RandomEventsGiveTheAnswersOfTheWindowArithmetic) {
  const char* identities[] = {"u:p@example.com", "d:example.com", "a:192.0.2.1", "n:192.0.2.0/24"};
  const char* metrics[] = {"rcpt", "msg"};
  const std::uint32_t windows[] = {60, 3600};
  std::vector<Limit> pool;
  std::mt19937 rng(20261201);
  for (const char* id : identities)
    for (const char* m : metrics)
      for (std::uint32_t w : windows)
        pool.push_back(Limit{{id, m, w}, static_cast<std::uint32_t>(5 + rng() % 20)});
  Model model;
  std::vector<Receipt> held, held_model;
  std::uint64_t now = T0 + 123;
  for (int step = 0; step < 400; ++step) {
    // Time: mostly forward a little, sometimes a window, rarely back.
    const unsigned t = rng() % 100;
    if (t < 70) now += rng() % 4000;
    else if (t < 90) now += rng() % 70'000;
    else if (t < 97) now += rng() % 4'000'000;
    else now -= rng() % 30'000;
    if (rng() % 5 == 0 && !held.empty()) {
      const std::size_t i = rng() % held.size();
      ASSERT_TRUE(s().refund(held[i], now).ok());
      model.refund(held_model[i]);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
      held_model.erase(held_model.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      std::vector<Limit> chosen;
      for (const Limit& l : pool)
        if (rng() % 3 == 0) chosen.push_back(l);
      if (chosen.empty()) chosen.push_back(pool[rng() % pool.size()]);
      const std::uint32_t amount = 1 + rng() % 3;
      Receipt got, expected;
      ChargeResult a = s().charge(chosen, amount, now, &got);
      ChargeResult b = model.charge(chosen, amount, now, expected);
      ASSERT_TRUE(a.ok()) << a.reason;
      ASSERT_EQ(a.accepted, b.accepted) << "step " << step;
      if (!a.accepted) {
        EXPECT_EQ(a.refusal.index, b.refusal.index) << "step " << step;
        EXPECT_EQ(a.refusal.used, b.refusal.used) << "step " << step;
        EXPECT_EQ(a.refusal.limit, b.refusal.limit) << "step " << step;
        EXPECT_EQ(a.refusal.retry_after_ms, b.refusal.retry_after_ms) << "step " << step;
      } else {
        ASSERT_EQ(got.entries().size(), expected.entries().size());
        for (std::size_t i = 0; i < got.entries().size(); ++i)
          EXPECT_EQ(got.entries()[i].bucket, expected.entries()[i].bucket) << "step " << step;
        if (rng() % 2 == 0) {
          held.push_back(got);
          held_model.push_back(expected);
        }
      }
    }
    if (step % 10 == 0) {
      for (const Limit& l : pool) {
        store::CounterUsage m = model.usage(l.key, now);
        std::vector<store::CounterUsage> u;
        ASSERT_TRUE(s().usage(l.key.identity, now, u).ok());
        store::CounterUsage found;
        for (const auto& c : u)
          if (c.metric == l.key.metric && c.window_seconds == l.key.window_seconds) found = c;
        EXPECT_EQ(found.used, m.used) << "step " << step << " " << l.key.identity;
        // The limit of a counter's last charge; an idle counter may already be
        // gone (LMDB drops idle ones during writes).
        if (m.used != 0) {
          EXPECT_EQ(found.limit, m.limit) << "step " << step;
        }
        EXPECT_EQ(found.next_release_ms, m.next_release_ms) << "step " << step;
      }
    }
  }
}
