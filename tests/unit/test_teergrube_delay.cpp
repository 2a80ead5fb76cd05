// teergrube::compute, spamthrottle's controller, with the clock passed in.
#include <gtest/gtest.h>

#include <limits>

#include "teergrube_delay.h"

using teergrube::compute;
using teergrube::Params;
using teergrube::State;

TEST(TeergrubeDelay, AFirstMessageIsNeverDelayed) {
  auto o = compute(Params{2000, 60000, 0}, std::nullopt, 1, 1'000'000);
  EXPECT_TRUE(o.fresh);
  EXPECT_EQ(o.delay_ms, 0u);
  EXPECT_EQ(o.next.wait_ms, teergrube::base_wait_ms);
  EXPECT_EQ(o.next.last_ms, 1'000'000u);
}

TEST(TeergrubeDelay, TheWaitGrowsBySTOverTAndIsCappedByStmax) {
  const Params p{1000, 30000, 0};
  State s{1'000'000, 100};
  // 10 ms later: 100 * 1000 / 10 = 10 s
  auto o = compute(p, s, 1, 1'000'010);
  EXPECT_FALSE(o.fresh);
  EXPECT_EQ(o.interval_ms, 10u);
  EXPECT_EQ(o.next.wait_ms, 10'000u);
  EXPECT_EQ(o.delay_ms, 10'000u);
  EXPECT_EQ(o.next.last_ms, 1'000'010u + 10'000u);  // released after the delay
  // back 100 ms after release: 10000 * 1000 / 100 = 100 s, delayed stmax
  o = compute(p, o.next, 1, o.next.last_ms + 100);
  EXPECT_EQ(o.next.wait_ms, 100'000u);
  EXPECT_EQ(o.delay_ms, 30'000u);
}

TEST(TeergrubeDelay, ASlowerClientComesDownAndAnIdleOneStartsAfresh) {
  // st 1 s, stmax 60 s: state resets after stmax * max(strcpt, 1) = 60 s idle
  const Params p{1000, 60000, 0};
  State s{1'000'000, 20'000};
  // 40 s later (within the reset): V = W * st * R / T = 20000 * 1000 * 1 / 40000
  // = 500 ms, under the 1000 ms least delay: none
  auto o = compute(p, s, 1, 1'000'000 + 40'000);
  EXPECT_FALSE(o.fresh);
  EXPECT_EQ(o.interval_ms, 40'000u);
  EXPECT_EQ(o.next.wait_ms, 20'000u * 1000 * 1 / 40'000);
  EXPECT_EQ(o.next.wait_ms, 500u);
  EXPECT_EQ(o.delay_ms, 0u);
  // 10 s later it still comes out at 20000 * 1000 / 10000 = 2 s: delayed that long
  o = compute(p, s, 1, 1'000'000 + 10'000);
  EXPECT_EQ(o.next.wait_ms, 20'000u * 1000 / 10'000);
  EXPECT_EQ(o.delay_ms, 2'000u);
  // idle longer than the reset, by a millisecond: fresh, at the base wait
  o = compute(p, s, 1, 1'000'000 + 60'000 + 1);
  EXPECT_TRUE(o.fresh);
  EXPECT_EQ(o.delay_ms, 0u);
  EXPECT_EQ(o.next.wait_ms, teergrube::base_wait_ms);
}

TEST(TeergrubeDelay, RecipientsWeighThroughTheRcptFactor) {
  // strcpt 2: F = R - (R >> (R / 2)); R=1: 1, R=2: 1, R=4: 3, R=8: 8 - (8 >> 4) = 8
  const Params p{1000, 0, 2};
  EXPECT_EQ(compute(p, std::nullopt, 1, 0).next.wait_ms, 100u);
  EXPECT_EQ(compute(p, std::nullopt, 2, 0).next.wait_ms, 100u);
  EXPECT_EQ(compute(p, std::nullopt, 4, 0).next.wait_ms, 300u);
  EXPECT_EQ(compute(p, std::nullopt, 8, 0).next.wait_ms, 800u);
  EXPECT_EQ(compute(p, std::nullopt, 20, 0).next.wait_ms, 2000u);  // 20 - (20 >> 10) = 20
  EXPECT_EQ(compute(p, std::nullopt, 20, 0).delay_ms, 2000u);
  // and R multiplies the wait too: W * st * R / T
  State s{0, 1000};
  EXPECT_EQ(compute(Params{1000, 0, 0}, s, 3, 1000).next.wait_ms, 3000u);
}

TEST(TeergrubeDelay, NoOverflowWhereSpamthrottleWrapped) {
  // spamthrottle kept W in 32 bits: a fast client's wait wrapped to a small
  // value and it was released. Here everything saturates and the stored
  // wait is capped at 64 * stmax.
  const Params p{60000, 120000, 1};
  State s{1000, 4'000'000'000u};
  auto o = compute(p, s, 1000, 1001);
  EXPECT_EQ(o.delay_ms, 120'000u);
  EXPECT_EQ(o.next.wait_ms, 64u * 120'000u);
  State huge{1000, std::numeric_limits<std::uint64_t>::max()};
  o = compute(Params{std::numeric_limits<std::uint32_t>::max(), 0, 1}, huge,
              std::numeric_limits<std::uint32_t>::max(), 1000);
  EXPECT_EQ(o.delay_ms, teergrube::max_delay_ms);  // stmax 0: at most an hour
  EXPECT_EQ(o.next.wait_ms, 64u * teergrube::max_delay_ms);
}

TEST(TeergrubeDelay, StZeroNeverDelaysAndAClockGoingBackStartsAfresh) {
  EXPECT_EQ(compute(Params{0, 1000, 0}, State{0, 1'000'000}, 5, 1).delay_ms, 0u);
  // ahead by more than stmax plus the slack between processes' clocks
  auto o = compute(Params{1000, 1000, 0}, State{50'000, 1'000'000}, 1, 38'000);
  EXPECT_TRUE(o.fresh);
  EXPECT_EQ(o.delay_ms, 0u);
}

TEST(TeergrubeDelay, ABlockSendingInParallelWhileOneIsHeldCountsAsFastest) {
  // the previous message of the group is released only at 10'000: a session
  // of the same group at 8'000 is as fast as it gets (T = 1 ms)
  auto o = compute(Params{1000, 3000, 0}, State{10'000, 200}, 1, 8'000);
  EXPECT_FALSE(o.fresh);
  EXPECT_EQ(o.interval_ms, 0u);
  EXPECT_EQ(o.delay_ms, 3000u);
}

TEST(TeergrubeDelay, StateRoundTripsAndBadBytesAreRejected) {
  State s{0x0102030405060708ull, 0xf1f2f3f4f5f6f7f8ull};
  auto back = teergrube::decode(teergrube::encode(s));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->last_ms, s.last_ms);
  EXPECT_EQ(back->wait_ms, s.wait_ms);
  EXPECT_FALSE(teergrube::decode("short"));
  EXPECT_FALSE(teergrube::decode(std::string(17, 'x')));
}
