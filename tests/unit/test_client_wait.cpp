// Waiting on a client: FIN and RST end the wait at once, pipelined input
// does not, continuation lines come every tg seconds.
//
// The client leaves from inside the first continuation line, one second
// into a wait of a minute: certainly mid-wait, without a sleeping thread.
// Bounds from above are half the wait: only a wait that missed the client
// leaving gets there, however slow the machine.
#include <gtest/gtest.h>

#include <poll.h>
#include <unistd.h>

#include "client_wait.h"
#include "tcp_pair.h"

namespace {

constexpr std::uint64_t long_wait_ms = 60'000;
constexpr std::uint64_t missed_ms = long_wait_ms / 2;

int lines = 0;
void count_line() noexcept { ++lines; }

int client = -1;  // the client side, ended by the first line
void close_client() noexcept {
  if (client >= 0) close(client);
  client = -1;
}
void reset_client() noexcept {
  if (client >= 0) tcp_test::reset(client);
  client = -1;
}

}  // namespace

TEST(ClientWait, WaitsTheWholeTimeDespitePipelinedInputAndSendsLines) {
  auto [s, c] = tcp_test::tcp_pair();
  ASSERT_EQ(write(c, "RSET\r\nQUIT\r\n", 12), 12);  // pipelined: must not end the wait
  lines = 0;
  auto r = client_wait::wait(s, 2600, 1, count_line);
  EXPECT_EQ(r.outcome, client_wait::Outcome::complete);
  EXPECT_GE(r.waited_ms, 2600u);
  EXPECT_LT(r.waited_ms, 2600u + missed_ms);
  EXPECT_EQ(lines, 2);  // at 1 s and 2 s
  EXPECT_EQ(r.continuations, 2u);
  EXPECT_TRUE(client_wait::input_pending(s));
  close(s);
  close(c);
}

TEST(ClientWait, AClientThatClosesEndsTheWaitAtOnce) {
  auto [s, c] = tcp_test::tcp_pair();
  ASSERT_EQ(write(c, "DATA\r\n", 6), 6);  // unread input does not hide the FIN
  client = c;
  auto r = client_wait::wait(s, long_wait_ms, 1, close_client);
  EXPECT_EQ(r.outcome, client_wait::Outcome::closed);
  EXPECT_EQ(r.continuations, 1u);
  EXPECT_GE(r.waited_ms, 1000u);
  EXPECT_LT(r.waited_ms, missed_ms);
  close(s);
}

TEST(ClientWait, AResetEndsTheWaitAtOnce) {
  auto [s, c] = tcp_test::tcp_pair();
  client = c;
  auto r = client_wait::wait(s, long_wait_ms, 1, reset_client);
  EXPECT_EQ(r.outcome, client_wait::Outcome::reset);
  EXPECT_EQ(r.continuations, 1u);
  EXPECT_GE(r.waited_ms, 1000u);
  EXPECT_LT(r.waited_ms, missed_ms);
  close(s);
}

TEST(ClientWait, InputPendingSaysWhetherTheClientSentSomething) {
  auto [s, c] = tcp_test::tcp_pair();
  EXPECT_FALSE(client_wait::input_pending(s));
  ASSERT_EQ(write(c, "x", 1), 1);
  // loopback delivers at once; waiting here only bounds a failure
  pollfd p{s, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 30'000), 1);
  EXPECT_TRUE(client_wait::input_pending(s));
  close(s);
  close(c);
}
