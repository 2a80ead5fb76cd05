// Waiting on a client: FIN and RST end the wait at once, pipelined input
// does not, continuation lines come every tg seconds.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "client_wait.h"

namespace {

// A connected TCP pair on loopback: {server side, client side}.
std::pair<int, int> tcp_pair() {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(listen(l, 1), 0);
  socklen_t len = sizeof a;
  getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_EQ(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  int s = accept(l, nullptr, nullptr);
  close(l);
  return {s, c};
}

int lines = 0;
bool count_line() noexcept {
  ++lines;
  return true;
}

}  // namespace

TEST(ClientWait, WaitsTheWholeTimeDespitePipelinedInputAndSendsLines) {
  auto [s, c] = tcp_pair();
  ASSERT_EQ(write(c, "RSET\r\nQUIT\r\n", 12), 12);  // pipelined: must not end the wait
  lines = 0;
  auto r = client_wait::wait(s, 2300, 1, count_line);
  EXPECT_EQ(r.outcome, client_wait::Outcome::complete);
  EXPECT_GE(r.waited_ms, 2300u);
  EXPECT_LT(r.waited_ms, 2600u);
  EXPECT_EQ(lines, 2);  // at 1 s and 2 s
  EXPECT_EQ(r.continuations, 2u);
  EXPECT_TRUE(client_wait::input_pending(s));
  close(s);
  close(c);
}

// Waits on the server side while `end` ends the client side 300 ms in.
template <class End>
client_wait::Result wait_while(int s, int c, End end) {
  std::thread t([c, end] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    end(c);
  });
  auto r = client_wait::wait(s, 10'000, 0, nullptr);
  t.join();
  close(s);
  return r;
}

TEST(ClientWait, AClientThatClosesEndsTheWaitAtOnce) {
  auto [s, c] = tcp_pair();
  ASSERT_EQ(write(c, "DATA\r\n", 6), 6);  // unread input does not hide the FIN
  auto r = wait_while(s, c, [](int fd) { close(fd); });
  EXPECT_EQ(r.outcome, client_wait::Outcome::closed);
  EXPECT_LT(r.waited_ms, 1000u);
}

TEST(ClientWait, AResetEndsTheWaitAtOnce) {
  auto [s, c] = tcp_pair();
  auto r = wait_while(s, c, [](int fd) {
    linger l{1, 0};  // close with RST
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
  });
  EXPECT_EQ(r.outcome, client_wait::Outcome::reset);
  EXPECT_LT(r.waited_ms, 1000u);
}

TEST(ClientWait, AFailingContinuationEndsTheWait) {
  auto [s, c] = tcp_pair();
  auto r = client_wait::wait(s, 5000, 1, []() noexcept { return false; });
  EXPECT_EQ(r.outcome, client_wait::Outcome::failed);
  EXPECT_LT(r.waited_ms, 1500u);
  close(s);
  close(c);
}
