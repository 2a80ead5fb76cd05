// Sliding-window arithmetic (window.h), with the clock injected.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "window.h"

namespace {

using window::Counter;

constexpr std::uint64_t T0 = 1'700'000'000'000;  // some wall-clock time, ms

// Charges `amount` at `now` if it fits under `limit`; returns whether it did.
bool take(Counter& c, std::uint32_t seconds, std::uint64_t now, std::uint32_t limit, std::uint32_t amount = 1) {
  const std::uint64_t w = window::bucket_ms(seconds);
  window::align(c, w, now);
  if (!window::room(c, w, now, limit, amount).fits) return false;
  window::charge(c, amount);
  return true;
}

std::uint64_t used_at(Counter c, std::uint32_t seconds, std::uint64_t now) {
  window::align(c, window::bucket_ms(seconds), now);
  return window::used(c);
}

}  // namespace

TEST(Window, BucketIsASixtiethOfTheWindowRoundedUp) {
  EXPECT_EQ(window::bucket_ms(60), 1000u);
  EXPECT_EQ(window::bucket_ms(3600), 60'000u);
  EXPECT_EQ(window::bucket_ms(86400), 1'440'000u);
  EXPECT_EQ(window::bucket_ms(1), 17u);  // 1000/60 rounded up
  EXPECT_EQ(window::bucket_ms(0), 17u);  // treated as 1 s
  EXPECT_EQ(window::bucket_ms(366u * 86400u), 527'040'000u);
  EXPECT_EQ(window::bucket_ms(0xffffffffu), (0xffffffffull * 1000 + 59) / 60);
}

TEST(Window, EventCountsForAtLeastTheWindowAndAtMostOneBucketMore) {
  for (std::uint32_t seconds : {1u, 7u, 60u, 3600u, 86400u, 30u * 86400u, 366u * 86400u}) {
    const std::uint64_t w = window::bucket_ms(seconds);
    const std::uint64_t W = std::uint64_t{seconds} * 1000;
    // At the very start of a bucket and at its very end.
    for (std::uint64_t t : {T0 / w * w, T0 / w * w + w - 1}) {
      Counter c;
      ASSERT_TRUE(take(c, seconds, t, 1));
      const std::uint64_t gone = (t / w + window::slots) * w;  // first moment it no longer counts
      EXPECT_GT(gone - t, W) << seconds;
      EXPECT_LE(gone - t, W + W / 60 + 61) << seconds;
      EXPECT_EQ(used_at(c, seconds, t + W), 1u) << "still counts exactly W later, window " << seconds;
      EXPECT_EQ(used_at(c, seconds, gone - 1), 1u) << seconds;
      EXPECT_EQ(used_at(c, seconds, gone), 0u) << seconds;
    }
  }
}

TEST(Window, NeverMoreThanTheLimitInAnyWindowLongInterval) {
  // A client that tries at random moments as fast as it likes: whatever is
  // accepted, no interval of W seconds holds more than the limit.
  std::mt19937_64 rng(42);
  for (std::uint32_t seconds : {1u, 10u, 60u}) {
    const std::uint32_t limit = 25;
    const std::uint64_t W = std::uint64_t{seconds} * 1000;
    Counter c;
    std::vector<std::uint64_t> accepted;
    std::uint64_t now = T0;
    for (int i = 0; i < 20000; ++i) {
      now += rng() % (W / 20 + 1);
      if (take(c, seconds, now, limit)) accepted.push_back(now);
    }
    ASSERT_GT(accepted.size(), 100u);
    std::deque<std::uint64_t> in;
    for (std::uint64_t t : accepted) {
      in.push_back(t);
      while (t - in.front() > W) in.pop_front();  // keep [t - W, t]
      ASSERT_LE(in.size(), limit) << "window " << seconds << " at " << t;
    }
  }
}

TEST(Window, LimitIsExactNotOneMore) {
  Counter c;
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(take(c, 86400, T0 + i, 1000));
  EXPECT_FALSE(take(c, 86400, T0 + 1000, 1000));
  EXPECT_EQ(used_at(c, 86400, T0 + 1000), 1000u);
}

TEST(Window, RoomFreesUpBucketByBucket) {
  // 60 s window, 1 s buckets: 5 at t, 5 at t+30 s, limit 10.
  const std::uint64_t t = T0 / 1000 * 1000;
  Counter c;
  ASSERT_TRUE(take(c, 60, t, 10, 5));
  ASSERT_TRUE(take(c, 60, t + 30'000, 10, 5));
  EXPECT_FALSE(take(c, 60, t + 40'000, 10));
  // The first five count until the end of their bucket + 60 buckets.
  EXPECT_EQ(used_at(c, 60, t + 60'999), 10u);
  EXPECT_EQ(used_at(c, 60, t + 61'000), 5u);
  EXPECT_EQ(used_at(c, 60, t + 91'000), 0u);
}

TEST(Window, RetryAfterSaysWhenTheOldestBucketsLeave) {
  const std::uint64_t t = T0 / 1000 * 1000;
  const std::uint64_t w = window::bucket_ms(60);
  Counter c;
  ASSERT_TRUE(take(c, 60, t, 10, 5));
  ASSERT_TRUE(take(c, 60, t + 30'000, 10, 5));
  const std::uint64_t now = t + 40'000;
  window::align(c, w, now);
  window::Room r = window::room(c, w, now, 10, 1);
  EXPECT_FALSE(r.fits);
  EXPECT_EQ(r.used, 10u);
  EXPECT_EQ(r.retry_after_ms, t + 61'000 - now);  // the first five leave then
  r = window::room(c, w, now, 10, 6);
  EXPECT_EQ(r.retry_after_ms, t + 91'000 - now);  // six need both buckets gone
  r = window::room(c, w, now, 10, 11);
  EXPECT_EQ(r.retry_after_ms, window::never);     // can never fit
  r = window::room(c, w, now, 20, 10);
  EXPECT_TRUE(r.fits);
  EXPECT_EQ(r.retry_after_ms, 0u);
  // And really: one more fits exactly at that moment, not a millisecond before.
  EXPECT_FALSE(take(c, 60, t + 60'999, 10));
  EXPECT_TRUE(take(c, 60, t + 61'000, 10));
}

TEST(Window, LimitZeroRefusesEverythingForever) {
  Counter c;
  const std::uint64_t w = window::bucket_ms(60);
  window::align(c, w, T0);
  const window::Room r = window::room(c, w, T0, 0, 1);
  EXPECT_FALSE(r.fits);
  EXPECT_EQ(r.retry_after_ms, window::never);
}

TEST(Window, RefundGivesBackToTheBucketCharged) {
  const std::uint64_t w = window::bucket_ms(3600);
  Counter c;
  const std::uint64_t b1 = window::align(c, w, T0);
  window::charge(c, 3);
  const std::uint64_t b2 = window::align(c, w, T0 + 10 * w);
  window::charge(c, 4);
  EXPECT_EQ(window::used(c), 7u);
  EXPECT_EQ(window::refund(c, b1, 2), 2u);
  EXPECT_EQ(window::used(c), 5u);
  EXPECT_EQ(window::refund(c, b2, 10), 4u);  // never more than was there
  EXPECT_EQ(window::used(c), 1u);
  EXPECT_EQ(window::refund(c, b2, 1), 0u);
  EXPECT_EQ(window::refund(c, b1, 1), 1u);
  EXPECT_EQ(window::used(c), 0u);
}

TEST(Window, RefundAfterTheBucketLeftTheWindowTouchesNothing) {
  const std::uint64_t w = window::bucket_ms(60);
  Counter c;
  const std::uint64_t old_bucket = window::align(c, w, T0);
  window::charge(c, 1);
  // 61 buckets later the old bucket is gone and its slot is in use again.
  const std::uint64_t later = T0 + window::slots * w;
  window::align(c, w, later);
  window::charge(c, 1);
  EXPECT_EQ(window::refund(c, old_bucket, 1), 0u);
  EXPECT_EQ(window::used(c), 1u);
  // A bucket that is not there yet (receipt from a clock ahead) neither.
  EXPECT_EQ(window::refund(c, c.newest + 1, 1), 0u);
  EXPECT_EQ(window::used(c), 1u);
}

TEST(Window, ClockGoingBackALittleKeepsChargingTheNewestBucket) {
  const std::uint64_t w = window::bucket_ms(60);
  Counter c;
  const std::uint64_t b = window::align(c, w, T0);
  window::charge(c, 1);
  // NTP steps back 5 s: the counter keeps its buckets, charges go to the newest.
  EXPECT_EQ(window::align(c, w, T0 - 5000), b);
  window::charge(c, 1);
  EXPECT_EQ(window::used(c), 2u);
  EXPECT_EQ(c.newest, b);
  // Both count at least a full window from the (earlier) time they were made.
  EXPECT_EQ(used_at(c, 60, T0 - 5000 + 60'000), 2u);
  // Refunds made against the newest bucket still work.
  EXPECT_EQ(window::refund(c, b, 1), 1u);
}

TEST(Window, ClockGoingBackFarMovesTheCounterAsItStands) {
  const std::uint64_t w = window::bucket_ms(60);
  Counter c;
  window::align(c, w, T0);
  window::charge(c, 3);
  window::align(c, w, T0 + 30'000);
  window::charge(c, 2);
  // Back by a day: the counts keep the rest of their lifetime.
  const std::uint64_t back = T0 - 86'400'000;
  window::align(c, w, back);
  EXPECT_EQ(c.newest, back / w);
  EXPECT_EQ(window::used(c), 5u);
  // The three were 30 s older than the last charge: they go 30 s earlier.
  EXPECT_EQ(used_at(c, 60, back + 30'999), 5u);
  EXPECT_EQ(used_at(c, 60, back + 31'000), 2u);
  EXPECT_EQ(used_at(c, 60, back + 61'000), 0u);
  // Never longer than a window past the jump: nothing is stuck.
}

TEST(Window, HugeGapsAndHugeTimesDoNotOverflow) {
  const std::uint64_t w = window::bucket_ms(60);
  Counter c;
  window::align(c, w, T0);
  window::charge(c, 7);
  const std::uint64_t far = std::uint64_t{1} << 63;
  window::align(c, w, far);
  EXPECT_EQ(window::used(c), 0u);
  window::charge(c, 1);
  EXPECT_EQ(window::used(c), 1u);
  // Idle time saturates instead of wrapping to the past.
  Counter end;
  window::align(end, 1000, window::never - 5);
  window::charge(end, 1);
  EXPECT_EQ(window::idle_at_ms(end, 1000), window::never);
  const std::uint64_t wmax = window::bucket_ms(0xffffffffu);
  Counter big;
  window::align(big, wmax, window::never - 1);
  window::charge(big, 1);
  EXPECT_EQ(window::idle_at_ms(big, wmax), window::never);
  EXPECT_GE(window::room(big, wmax, window::never - 1, 1, 1).retry_after_ms, 1u);
}

TEST(Window, CountsSaturateAndSumsDoNotOverflow) {
  const std::uint64_t w = window::bucket_ms(60);
  Counter c;
  window::align(c, w, T0);
  window::charge(c, 0xffffffffu);
  window::charge(c, 10);
  EXPECT_EQ(c.slot[0], 0xffffffffu);
  // Every bucket full: the sum needs 64 bits.
  for (unsigned i = 1; i < window::slots; ++i) {
    window::align(c, w, T0 + i * w);
    window::charge(c, 0xffffffffu);
  }
  EXPECT_EQ(window::used(c), std::uint64_t{window::slots} * 0xffffffffu);
  const window::Room r = window::room(c, w, T0 + 60 * w, 0xffffffffu, 0xffffffffu);
  EXPECT_FALSE(r.fits);
  EXPECT_NE(r.retry_after_ms, window::never);  // every bucket must go, the newest last
  EXPECT_EQ(r.retry_after_ms, 61 * w);
  // A full limit fits in an empty counter.
  Counter e;
  window::align(e, w, T0);
  EXPECT_TRUE(window::room(e, w, T0, 0xffffffffu, 0xffffffffu).fits);
}

TEST(Window, NextReleaseIsWhenTheOldestCountedEventLeaves) {
  const std::uint64_t w = window::bucket_ms(60);
  const std::uint64_t t = T0 / w * w;
  Counter c;
  window::align(c, w, t);
  EXPECT_EQ(window::next_release_ms(c, w, t), 0u);
  window::charge(c, 1);
  window::align(c, w, t + 5000);
  window::charge(c, 1);
  EXPECT_EQ(window::next_release_ms(c, w, t + 5000), 61 * w - 5000);
  EXPECT_EQ(window::idle_at_ms(c, w), (t + 5000) / w * w + 61 * w);
}

TEST(Window, ClockIsTheWallClockInMilliseconds) {
  const std::uint64_t now = window::clock_ms();
  EXPECT_GT(now, 1'600'000'000'000u);
  EXPECT_LT(now, 4'000'000'000'000u);
}
