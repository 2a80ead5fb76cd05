// The C facade (throttle.h) called as qmail-smtpd calls it. The facade keeps
// one session per process, as qmail-smtpd is one process per connection: so
// each session here runs in a child process of its own, in a throwaway
// QMAIL_HOME (control/spamt.cdb, throttle/) as its working directory, with
// its log (descriptor 2) kept in a file there.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "spamt_test_table.h"
#include "store_test_util.h"
#include "tcp_pair.h"
#include "throttle.h"

namespace {

// A QMAIL_HOME as make install leaves it, with `table` compiled into
// control/spamt.cdb (none when empty).
class Home {
 public:
  explicit Home(std::string_view table = "") {
    EXPECT_EQ(mkdir((path() + "/control").c_str(), 0755), 0);
    EXPECT_EQ(mkdir((path() + "/throttle").c_str(), 0700), 0);
    if (!table.empty()) spamt_test::write_table_file(path() + "/control/spamt.cdb", table);
  }
  const std::string& path() const { return dir_.path(); }

  // What the sessions logged.
  std::string log() const {
    std::string text;
    int fd = open((path() + "/log").c_str(), O_RDONLY);
    char buf[4096];
    for (ssize_t n; fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    if (fd >= 0) close(fd);
    return text;
  }

  // Whether a session created anything in throttle/ (the store, the
  // teergrube's slots).
  bool store_touched() const {
    int n = 0;
    if (DIR* d = opendir((path() + "/throttle").c_str())) {
      while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
      closedir(d);
    }
    return n != 0;
  }

 private:
  store_test::TempDir dir_;
};

// Runs `session` as one qmail-smtpd process in `home`; the test fails when
// one of its expectations failed (reported above by the child). A session
// may end itself with throttle_exit(), as qmail-smtpd does (it checks its
// expectations first: see exit_session()).
template <class F>
void session_in(const Home& home, F session) {
  const int status = store_test::in_child([&] {
    if (chdir(home.path().c_str()) != 0) return 100;
    const int log = open("log", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0 || dup2(log, 2) != 2) return 101;
    session();
    return ::testing::Test::HasFailure() ? 1 : 0;
  });
  EXPECT_EQ(status, 0) << "the session failed (its expectations above; 100/101: no home or log, 128+: a signal)";
}

// The end of a qmail-smtpd process: throttle_exit(), status 1 when an
// expectation failed.
[[noreturn]] void exit_session() { throttle_exit(::testing::Test::HasFailure() ? 1 : 0); }

std::string reply() { return throttle_reply(); }

bool starts_with(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

const char* const client = "192.0.2.7";
constexpr int relay = 1;

// The continuation lines throttle_data() sent, and what to do at each.
std::vector<std::string> lines;
int client_side = -1;  // closed at the first line by leave_at_first_line
void keep_line(const char* line) { lines.emplace_back(line); }
void leave_at_first_line(const char* line) {
  lines.emplace_back(line);
  if (client_side >= 0) close(client_side);
  client_side = -1;
}

// Descriptor 0 becomes the server side of a loopback TCP connection, as
// under tcpserver; returns the client side.
int client_connection() {
  auto [server, peer] = tcp_test::tcp_pair();
  EXPECT_EQ(dup2(server, 0), 0);
  close(server);
  return peer;
}

// A relay client's session, granted the two recipients of its budget
// ("default rcpt=2/1h").
void granted_two() {
  throttle_session(client, relay);
  EXPECT_EQ(throttle_relaylimited(), 1);
  EXPECT_EQ(throttle_rcpt(), THROTTLE_OK);
  EXPECT_EQ(throttle_rcpt(), THROTTLE_OK);
}

// The same, ended with its transaction queued or cut off (a dropped
// connection).
void granted_two_then_exits(bool queued) {
  granted_two();
  if (queued) throttle_transaction(1);
  exit_session();
}

long ms_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

TEST(ThrottleFacade, IsCallableFromCAndNeverThrows) {
  static_assert(noexcept(throttle_session("", 0)) && noexcept(throttle_relaylimited()));
  static_assert(noexcept(throttle_rcpt()) && noexcept(throttle_transaction(0)) && noexcept(throttle_reply()));
  static_assert(noexcept(throttle_auth_attempt()) && noexcept(throttle_auth_failure()) && noexcept(throttle_user("")));
  static_assert(noexcept(throttle_pipelining()) && noexcept(throttle_data(0, nullptr)));
  static_assert(noexcept(throttle_greeting()) && noexcept(throttle_tls(0)));
  static_assert(noexcept(throttle_data_continued()) && noexcept(throttle_data_flush()) &&
                noexcept(throttle_input_pending()));
  // and a session without a table answers as stock qmail-smtpd would, whatever it is given
  Home h;
  session_in(h, [] {
    throttle_session(nullptr, relay);
    EXPECT_EQ(throttle_relaylimited(), 0);
    throttle_session("", 0);
    EXPECT_EQ(throttle_relaylimited(), 0);
    throttle_user(nullptr);
    EXPECT_EQ(throttle_relaylimited(), 0);
  });
}

TEST(ThrottleFacade, WithoutATableNothingIsLimitedAndNothingIsOpened) {
  Home h;
  session_in(h, [] {
    throttle_session(client, relay);
    EXPECT_EQ(throttle_relaylimited(), 0);
    EXPECT_EQ(throttle_auth_attempt(), THROTTLE_OK);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(throttle_auth_failure(), THROTTLE_OK);
    EXPECT_EQ(throttle_pipelining(), 1);
    EXPECT_EQ(throttle_data(1, keep_line), THROTTLE_OK);
    EXPECT_EQ(throttle_data(1, keep_line), THROTTLE_OK);
    EXPECT_EQ(throttle_data_continued(), 0);
    EXPECT_EQ(throttle_data_flush(), 0);
    throttle_transaction(1);
    exit_session();
  });
  EXPECT_FALSE(h.store_touched());
  EXPECT_EQ(h.log(), "");
}

TEST(ThrottleFacade, ARelayClientGetsExactlyItsLimitThenTheReplyAndALogLine) {
  Home h("default rcpt=2/1h\n");
  session_in(h, [] {
    granted_two();
    EXPECT_EQ(throttle_rcpt(), THROTTLE_DEFER);
    const std::string r = reply();
    EXPECT_TRUE(starts_with(r,
                            "451 4.7.1 relay limit reached: recipients per 1h for address 192.0.2.7; "
                            "try again in about "))
        << r;
    EXPECT_TRUE(r.ends_with(" minutes\r\n")) << r;
  });
  EXPECT_EQ(h.log(), "qmail-smtpd: throttle: relay limit address 192.0.2.7 ip 192.0.2.7 rcpt 2/2 per 1h: 451\n");
}

TEST(ThrottleFacade, ClientsThatDoNotRelayOrHaveNOTHROTTLEAreNotLimited) {
  Home h("default rcpt=1/1h authfail=1/1h\n");
  session_in(h, [] {
    throttle_session(client, 0);  // not a relay client
    EXPECT_EQ(throttle_relaylimited(), 0);
  });
  session_in(h, [] {
    setenv("NOTHROTTLE", "1", 1);
    throttle_session(client, relay);
    EXPECT_EQ(throttle_relaylimited(), 0);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(throttle_auth_failure(), THROTTLE_OK);
    EXPECT_EQ(throttle_auth_attempt(), THROTTLE_OK);
  });
  EXPECT_FALSE(h.store_touched());
}

TEST(ThrottleFacade, AnUnqueuedTransactionGivesItsRecipientsBackAQueuedOneKeepsThem) {
  Home h("default rcpt=2/1h\n");
  session_in(h, [] {
    granted_two();
    throttle_transaction(0);  // RSET: both given back
    EXPECT_EQ(throttle_rcpt(), THROTTLE_OK);
    EXPECT_EQ(throttle_rcpt(), THROTTLE_OK);
    EXPECT_EQ(throttle_rcpt(), THROTTLE_DEFER);
    throttle_transaction(1);  // queued: the two stay
    EXPECT_EQ(throttle_rcpt(), THROTTLE_DEFER);
  });
}

TEST(ThrottleFacade, ExitGivesBackWhatAnUnfinishedTransactionWasChargedAcrossProcesses) {
  Home h("default rcpt=2/1h\n");
  session_in(h, [] { granted_two_then_exits(false); });
  // the next one finds the whole budget again, and queues it
  session_in(h, [] { granted_two_then_exits(true); });
  // and after that, nothing is left
  session_in(h, [] {
    throttle_session(client, relay);
    EXPECT_EQ(throttle_relaylimited(), 1);
    EXPECT_EQ(throttle_rcpt(), THROTTLE_DEFER);
  });
}

TEST(ThrottleFacade, AuthenticatedUsersAreLimitedAsTheUser) {
  Home h("alice@example.com rcpt=1/1h\n");
  session_in(h, [] {
    throttle_session(client, 0);
    EXPECT_EQ(throttle_relaylimited(), 0);  // not relaying before AUTH
    throttle_user("alice@example.com");
    ASSERT_EQ(throttle_relaylimited(), 1);
    EXPECT_EQ(throttle_rcpt(), THROTTLE_OK);
    EXPECT_EQ(throttle_rcpt(), THROTTLE_DEFER);
    EXPECT_TRUE(starts_with(reply(),
                            "451 4.7.1 relay limit reached: recipients per 1h for user "
                            "alice@example.com; "))
        << reply();
  });
}

// tlsrate= (patch 0072): only where qmail-newspamt left control/spamt.clients;
// without it a session opens nothing for TLS.
TEST(ThrottleFacade, TlsrateNeedsTheClientsFlagAndCountsPerAddress) {
  Home h("default tlsrate=1/1h\n");
  session_in(h, [] {
    throttle_session(client, 0);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(throttle_tls(0), THROTTLE_OK) << i;
  });
  EXPECT_FALSE(h.store_touched());
  EXPECT_EQ(h.log(), "");
  const int flag = open((h.path() + "/control/spamt.clients").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(flag, 0);
  close(flag);
  session_in(h, [] {
    throttle_session(client, 0);
    EXPECT_EQ(throttle_tls(1), THROTTLE_OK);
    EXPECT_EQ(throttle_greeting(), THROTTLE_OK);
  });
  session_in(h, [] {
    throttle_session(client, 0);
    EXPECT_EQ(throttle_tls(0), THROTTLE_DEFER);
    EXPECT_TRUE(starts_with(reply(), "454 4.7.0 too many TLS sessions from 192.0.2.7; try again in ")) << reply();
    setenv("NOTHROTTLE", "1", 1);
    throttle_session(client, 0);
    EXPECT_EQ(throttle_tls(0), THROTTLE_OK);
  });
  EXPECT_EQ(h.log(), "qmail-smtpd: throttle: client limit address 192.0.2.7 ip 192.0.2.7 tlsrate 1/1 per 1h: 454\n");
}

TEST(ThrottleFacade, AuthFailuresAreLimitedPerAddress) {
  Home h("default authfail=2/10m\n");
  session_in(h, [] {
    throttle_session(client, 0);
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(throttle_auth_attempt(), THROTTLE_OK) << i;
      EXPECT_EQ(throttle_auth_failure(), THROTTLE_OK) << i;
    }
    EXPECT_EQ(throttle_auth_attempt(), THROTTLE_DEFER);
    EXPECT_TRUE(starts_with(reply(), "454 4.7.0 too many authentication failures from your address; ")) << reply();
    EXPECT_EQ(throttle_auth_failure(), THROTTLE_DROP);
    EXPECT_EQ(reply(), "421 4.7.0 too many authentication failures, closing connection\r\n");
  });
  // the failures are counted for the address, not the session
  session_in(h, [] {
    throttle_session(client, 0);
    EXPECT_EQ(throttle_auth_attempt(), THROTTLE_DEFER);
  });
}

TEST(ThrottleFacade, DataDelaysAFastClientWithContinuationLinesThenFlushes) {
  // stmax 2.5 s and a line a second: the second message right after the
  // first is held 2.5 s, with lines at 1 s and 2 s (st far above stmax: held
  // exactly stmax however slow the machine; the wait is st * 100 ms / T)
  Home h("192.0.2.0/24 st=10000000 stmax=2500 tg=1 tgtext=\"slow down\" flush=yes\n");
  session_in(h, [] {
    const int peer = client_connection();
    throttle_session(client, 0);
    EXPECT_EQ(throttle_pipelining(), 0);  // flush: no PIPELINING
    EXPECT_EQ(throttle_input_pending(), 0);
    lines.clear();
    EXPECT_EQ(throttle_data(1, keep_line), THROTTLE_OK);  // the first: at once
    EXPECT_TRUE(lines.empty());
    EXPECT_EQ(throttle_data_continued(), 0);
    EXPECT_EQ(throttle_data_flush(), 0);
    ASSERT_EQ(write(peer, "RSET\r\n", 6), 6);  // sent ahead
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(throttle_data(1, keep_line), THROTTLE_OK);
    const long held = ms_since(t0);
    EXPECT_GE(held, 2500);
    EXPECT_LT(held, 2500 + 30'000);
    EXPECT_EQ(lines, (std::vector<std::string>{"354-slow down\r\n", "354-slow down\r\n"}));
    EXPECT_EQ(throttle_data_continued(), 1);
    EXPECT_EQ(throttle_data_flush(), 1);
    EXPECT_EQ(throttle_input_pending(), 1);
    close(peer);
  });
  const std::string log = h.log();
  EXPECT_TRUE(starts_with(log, "qmail-smtpd: throttle: teergrube ip 192.0.2.7 key a:192.0.2.7 rcpt 1 interval "))
      << log;
  EXPECT_NE(log.find(" delay 2500ms waited "), std::string::npos) << log;
  EXPECT_TRUE(log.ends_with(": complete\n")) << log;
}

TEST(ThrottleFacade, DataEndsTheSessionWhenTheClientLeavesWhileHeld) {
  // a minute's delay; the client leaves at the first line, a second in
  Home h("192.0.2.0/24 st=10000000 stmax=60000 tg=1\n");
  session_in(h, [] {
    client_side = client_connection();
    throttle_session(client, 0);
    EXPECT_EQ(throttle_pipelining(), 1);
    lines.clear();
    EXPECT_EQ(throttle_data(1, leave_at_first_line), THROTTLE_OK);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(throttle_data(1, leave_at_first_line), THROTTLE_DROP);
    EXPECT_LT(ms_since(t0), 30'000);  // not the minute
    EXPECT_EQ(lines.size(), 1u);
    EXPECT_EQ(throttle_data_flush(), 0);
  });
  EXPECT_TRUE(h.log().ends_with(": client closed\n")) << h.log();
}

TEST(ThrottleFacade, RelayClientsAreNotDelayed) {
  Home h("192.0.2.0/24 st=1000 stmax=60000 tg=1\n");
  session_in(h, [] {
    const int peer = client_connection();
    throttle_session(client, relay);
    lines.clear();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(throttle_data(1, keep_line), THROTTLE_OK);
    EXPECT_TRUE(lines.empty());
    EXPECT_EQ(throttle_data_continued(), 0);
    close(peer);
  });
  EXPECT_EQ(h.log(), "");
}

// Inbound rates (inrcpt=) through the facade, as patch 0071 calls it: only
// with control/spamt.clients (qmail-newspamt's flag), never for a relay
// client, and what an unqueued transaction was charged goes back at exit.
TEST(ThrottleFacade, InboundRatesNeedTheClientsFlagSkipRelayClientsAndAreGivenBackAtExit) {
  Home h("default inrcpt=1/1h\n");
  auto three_ok = [] {
    EXPECT_EQ(throttle_greeting(), THROTTLE_OK);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(throttle_inbound_rcpt(), THROTTLE_OK);
  };
  session_in(h, [&] {
    throttle_session(client, 0);
    three_ok();  // no flag: nothing is looked at
  });
  EXPECT_FALSE(h.store_touched());
  const int flag = open((h.path() + "/control/spamt.clients").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(flag, 0);
  close(flag);
  for (int i = 0; i < 2; ++i) {  // the first session's charge is given back when it exits
    session_in(h, [] {
      throttle_session(client, 0);
      EXPECT_EQ(throttle_greeting(), THROTTLE_OK);
      EXPECT_EQ(throttle_inbound_rcpt(), THROTTLE_OK);
      EXPECT_EQ(throttle_inbound_rcpt(), THROTTLE_DEFER);
      EXPECT_EQ(reply(), "450 4.7.1 too many recipients from 192.0.2.7\r\n");
      exit_session();
    });
  }
  session_in(h, [&] {
    throttle_session(client, relay);
    three_ok();
  });
  session_in(h, [&] {
    throttle_session(client, 0);
    throttle_user("alice@example.com");  // AUTH: the session relays now
    three_ok();
  });
  const std::string line = "qmail-smtpd: throttle: client limit address 192.0.2.7 ip 192.0.2.7 inrcpt 1/1 per 1h: 450\n";
  EXPECT_EQ(h.log(), line + line);
}
