// SessionThrottle with an injected clock and log, a compiled table in a
// temporary directory and a real LMDB store: window edges, all-or-nothing
// charging across identities, refunds, faults under both policies.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "session_throttle.h"
#include "spamt_test_table.h"
#include "store_test_util.h"

using throttle::Decision;
using throttle::SessionThrottle;

namespace {

std::uint64_t now_ms = 1'000'000'000;
std::uint64_t test_clock() noexcept { return now_ms; }
std::vector<std::string> lines;
void test_log(std::string_view line) noexcept { lines.emplace_back(line); }

class SessionThrottleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    now_ms = 1'000'000'000;
    table_file = table_path();
    lines.clear();
  }

  // control/spamt text -> a cdb file in the temporary directory
  void table(std::string_view text) { spamt_test::write_table_file(table_path(), text); }
  std::string table_path() const { return dir.path() + "/spamt.cdb"; }
  std::string table_file;  // Config::table_path points here

  throttle::Config config(bool closed = false) const {
    throttle::Config c;
    c.table_path = table_file.c_str();
    c.store = store_test::options_for(dir);
    c.store.directory = dir.path();
    c.fail_closed = closed;
    return c;
  }

  // A session of a client, configured like qmail-smtpd's.
  std::unique_ptr<SessionThrottle> session(const char* ip, bool relay = true, bool closed = false) {
    auto s = std::make_unique<SessionThrottle>(test_clock, test_log);
    s->configure(config(closed));
    s->start(ip, relay);
    return s;
  }

  // A session whose store cannot be opened (its directory is missing).
  std::unique_ptr<SessionThrottle> session_without_store(const char* ip, bool relay, bool closed) {
    auto s = std::make_unique<SessionThrottle>(test_clock, test_log);
    throttle::Config c = config(closed);
    c.store.directory = dir.path() + "/missing/dir";
    s->configure(c);
    s->start(ip, relay);
    return s;
  }

  // What the store counts now of `metric` for `identity`, over its windows.
  std::uint64_t used(SessionThrottle& s, const char* identity, std::string_view metric) {
    std::vector<store::CounterUsage> u;
    EXPECT_TRUE(s.store()->usage(identity, now_ms, u).ok());
    std::uint64_t n = 0;
    for (const store::CounterUsage& c : u) n += c.metric == metric ? c.used : 0;
    return n;
  }

  int accept_all(SessionThrottle& s, int n) {
    int ok = 0;
    for (int i = 0; i < n; ++i) ok += s.rcpt() == Decision::ok;
    return ok;
  }

  store_test::TempDir dir;
};

}  // namespace

TEST_F(SessionThrottleTest, LimitNAcceptsExactlyNThenDefersWithTheReason) {
  table("default rcpt=3/1h\n");
  auto s = session("192.0.2.7");
  ASSERT_TRUE(s->relay_limited());
  EXPECT_EQ(accept_all(*s, 3), 3);
  EXPECT_EQ(s->rcpt(), Decision::defer);
  EXPECT_EQ(s->reply(),
            "451 4.7.1 relay limit reached: recipients per 1h for address 192.0.2.7; try again in about 61 minutes\r\n");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "throttle: relay limit address 192.0.2.7 ip 192.0.2.7 rcpt 3/3 per 1h: 451");
}

TEST_F(SessionThrottleTest, TheWindowSlidesInSixtiethsWithoutACliff) {
  table("default rcpt=60/1h\n");
  now_ms = 16'667 * 60'000;  // the start of a one-minute bucket
  const std::uint64_t t0 = now_ms;
  auto s = session("192.0.2.7");
  // one recipient a minute for an hour
  for (int i = 0; i < 60; ++i) {
    ASSERT_EQ(s->rcpt(), Decision::ok) << i;
    s->end_transaction(true);
    now_ms += 60'000;
  }
  // an event counts for the whole window and at most one bucket (a
  // sixtieth of it) longer: the first is still counted an hour later ...
  EXPECT_EQ(s->rcpt(), Decision::defer);
  EXPECT_NE(s->reply().find("try again in about 1 minute"), std::string::npos) << s->reply();
  // ... and gone one bucket after that, freeing exactly one recipient
  now_ms = t0 + 61 * 60'000;
  EXPECT_EQ(s->rcpt(), Decision::ok);
  EXPECT_EQ(s->rcpt(), Decision::defer);
  s->end_transaction(true);
  // no cliff: a minute later exactly one more
  now_ms += 60'000;
  EXPECT_EQ(s->rcpt(), Decision::ok);
  EXPECT_EQ(s->rcpt(), Decision::defer);
}

TEST_F(SessionThrottleTest, EveryBudgetMustHaveRoomAndARefusalChargesNothing) {
  table("alice@example.com rcpt=5/1h\n@example.com rcpt=3/1h\n");
  auto a = session("192.0.2.7");
  a->set_user("alice@example.com");
  auto b = session("192.0.2.8");
  b->set_user("bob@example.com");
  EXPECT_EQ(accept_all(*b, 2), 2);  // the domain budget: 2 of 3
  b->end_transaction(true);
  EXPECT_EQ(accept_all(*a, 2), 1);  // alice has room, the domain one left
  EXPECT_EQ(a->reply().rfind("451 4.7.1 relay limit reached: recipients per 1h for domain example.com;", 0), 0u);
  a->end_transaction(true);
  // alice's refused recipient was charged nowhere: 1 of 5 used
  std::vector<store::CounterUsage> u;
  ASSERT_TRUE(a->store()->usage("u:alice@example.com", now_ms, u).ok());
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].used, 1u);
}

TEST_F(SessionThrottleTest, AnUnqueuedTransactionGivesEverythingBack) {
  table("default rcpt=10/1h msg=1/1h\n");
  auto s = session("192.0.2.7");
  EXPECT_EQ(accept_all(*s, 4), 4);
  s->end_transaction(false);  // RSET
  EXPECT_EQ(accept_all(*s, 4), 4);  // recipients and the message are back
  s->end_transaction(true);         // queued: kept
  EXPECT_EQ(s->rcpt(), Decision::defer);
  EXPECT_NE(s->reply().find("messages per 1h"), std::string::npos) << s->reply();
}

// throttle_exit() refunds on a fatal error only outside store operations.
TEST_F(SessionThrottleTest, TheStoreIsBusyOnlyWhileAnOperationRuns) {
  table("default rcpt=10/1h\n");
  auto s = session("192.0.2.7");
  EXPECT_FALSE(s->store_busy());
  EXPECT_EQ(s->rcpt(), Decision::ok);
  EXPECT_FALSE(s->store_busy());
  EXPECT_TRUE(s->with_store([&](store::Store&) { return s->store_busy(); }));
  EXPECT_FALSE(s->store_busy());
  s->end_transaction(false);
  EXPECT_FALSE(s->store_busy());
}

TEST_F(SessionThrottleTest, ARefundAfterTheWindowMovedOnTakesNothingFromNewCharges) {
  table("default rcpt=2/1m\n");
  auto s = session("192.0.2.7");
  EXPECT_EQ(accept_all(*s, 2), 2);
  now_ms += 61'001;  // those charges have left the window
  auto t = session("192.0.2.7");
  EXPECT_EQ(accept_all(*t, 2), 2);
  s->end_transaction(false);  // must not free t's charges
  EXPECT_EQ(t->rcpt(), Decision::defer);
}

TEST_F(SessionThrottleTest, Action421Drops) {
  table("default rcpt=1/1d action=421\n");
  auto s = session("192.0.2.7");
  EXPECT_EQ(s->rcpt(), Decision::ok);
  EXPECT_EQ(s->rcpt(), Decision::drop);
  EXPECT_EQ(s->reply(), "421 4.7.1 relay limit reached: recipients per 1d for address 192.0.2.7; closing connection\r\n");
}

TEST_F(SessionThrottleTest, NotLimitedWithoutRelayOrWhenDisabledOrWithoutATable) {
  table("default rcpt=1/1d\n");
  EXPECT_FALSE(session("192.0.2.7", false)->relay_limited());
  auto s = std::make_unique<SessionThrottle>(test_clock, test_log);
  throttle::Config c = config();
  c.disabled = true;
  s->configure(c);
  s->start("192.0.2.7", true);
  EXPECT_FALSE(s->relay_limited());
  ::unlink(table_path().c_str());
  EXPECT_FALSE(session("192.0.2.7")->relay_limited());
  EXPECT_TRUE(lines.empty());
}

TEST_F(SessionThrottleTest, ACorruptTableFailsOpenOrClosedWithOneLogLine) {
  int fd = ::open(table_path().c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_EQ(::write(fd, "garbage garbage garbage", 23), 23);
  ::close(fd);
  auto open = session("192.0.2.7");
  EXPECT_FALSE(open->relay_limited());
  EXPECT_EQ(open->rcpt(), Decision::ok);
  auto closed = session("192.0.2.7", true, true);
  EXPECT_TRUE(closed->relay_limited());
  EXPECT_EQ(closed->rcpt(), Decision::defer);
  EXPECT_EQ(closed->reply(), "451 4.3.0 relay limits are temporarily unavailable, try again later\r\n");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].rfind("throttle: table fault ip 192.0.2.7 " + table_path() + ": ", 0), 0u) << lines[0];
  EXPECT_TRUE(lines[0].ends_with(": fail-open")) << lines[0];
  EXPECT_TRUE(lines[1].ends_with(": fail-closed")) << lines[1];
}

TEST_F(SessionThrottleTest, AStoreThatCannotOpenFailsOpenOrClosed) {
  table("default rcpt=1/1d\n");
  auto open = session_without_store("192.0.2.7", true, false);
  EXPECT_EQ(accept_all(*open, 3), 3);
  ASSERT_EQ(lines.size(), 1u);  // once per session when failing open
  EXPECT_EQ(lines[0].rfind("throttle: store fault ip 192.0.2.7 charge: unavailable (", 0), 0u) << lines[0];
  auto closed = session_without_store("192.0.2.7", true, true);
  EXPECT_EQ(closed->rcpt(), Decision::defer);
  EXPECT_EQ(closed->reply(), "451 4.3.0 relay limits are temporarily unavailable, try again later\r\n");
  EXPECT_TRUE(lines.back().ends_with(": fail-closed")) << lines.back();
}

TEST_F(SessionThrottleTest, AuthFailuresPerAddress) {
  table("default authfail=2/10m\n");
  auto s = session("192.0.2.7", false);
  EXPECT_EQ(s->auth_attempt(), Decision::ok);
  EXPECT_EQ(s->auth_failure(), Decision::ok);
  EXPECT_EQ(s->auth_failure(), Decision::ok);
  EXPECT_EQ(s->auth_failure(), Decision::drop);
  EXPECT_EQ(s->reply(), "421 4.7.0 too many authentication failures, closing connection\r\n");
  auto t = session("192.0.2.7", false);
  EXPECT_EQ(t->auth_attempt(), Decision::defer);
  EXPECT_EQ(t->reply().rfind("454 4.7.0 too many authentication failures from your address; try again in about ", 0),
            0u);
  EXPECT_EQ(session("192.0.2.8", false)->auth_attempt(), Decision::ok);  // per address
  now_ms += 11 * 60'000;
  EXPECT_EQ(t->auth_attempt(), Decision::ok);
}

// The greeting (patch 0070): conn= slots per client, connrate= in the store;
// a session's slot is free again as soon as the session is gone.
TEST_F(SessionThrottleTest, GreetingAppliesConnAndConnrate) {
  table("default conn=2\n192.0.2.0/24 connrate=3/1m\n198.51.100.0/24 exempt\n");
  auto a = session("203.0.113.7", false);
  auto b = session("203.0.113.7", false);
  auto c = session("203.0.113.7", false);
  EXPECT_EQ(a->greeting(), Decision::ok);
  EXPECT_EQ(b->greeting(), Decision::ok);
  EXPECT_EQ(c->greeting(), Decision::drop);
  EXPECT_EQ(c->reply(), "421 4.7.0 too many connections from 203.0.113.7\r\n");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "throttle: client limit address 203.0.113.7 ip 203.0.113.7 conn 2/2: 421");
  a.reset();  // the session ends: its place is free
  auto d = session("203.0.113.7", false);
  EXPECT_EQ(d->greeting(), Decision::ok);
  EXPECT_EQ(session("203.0.113.8", false)->greeting(), Decision::ok);  // another client
  // connrate= of the /24 (no conn= there: the most specific entry decides)
  for (int i = 0; i < 3; ++i) EXPECT_EQ(session("192.0.2.7", false)->greeting(), Decision::ok) << i;
  auto e = session("192.0.2.9", false);
  EXPECT_EQ(e->greeting(), Decision::drop);  // the block shares one count
  EXPECT_EQ(e->reply().rfind("421 4.7.0 too many connections from 192.0.2.9; try again in", 0), 0u) << e->reply();
  now_ms += 61'000;
  EXPECT_EQ(session("192.0.2.9", false)->greeting(), Decision::ok);
  // exempt: never counted
  for (int i = 0; i < 5; ++i) EXPECT_EQ(session("198.51.100.1", false)->greeting(), Decision::ok);
}

// Inbound rates (inrcpt=, inmsg=) at RCPT for clients that are not relay
// clients: exact counts, the same receipt as relay charges, refunds.
TEST_F(SessionThrottleTest, InboundRatesCountRecipientsAndMessagesAndRefundUnqueued) {
  table("default inrcpt=4/1h inmsg=2/1h\n");
  auto s = session("192.0.2.7", false);
  EXPECT_EQ(s->inbound_rcpt(), Decision::ok);  // message 1, recipient 1
  EXPECT_EQ(s->inbound_rcpt(), Decision::ok);  // recipient 2
  s->end_transaction(false);                   // RSET: both back
  EXPECT_EQ(s->inbound_rcpt(), Decision::ok);
  EXPECT_EQ(s->inbound_rcpt(), Decision::ok);
  s->end_transaction(true);  // queued: 1 message, 2 recipients kept
  auto t = session("192.0.2.7", false);  // another session of the client
  EXPECT_EQ(t->inbound_rcpt(), Decision::ok);  // message 2, recipient 3
  t->end_transaction(true);
  EXPECT_EQ(t->inbound_rcpt(), Decision::defer);  // a third message
  EXPECT_EQ(t->reply(), "450 4.7.1 too much mail from 192.0.2.7\r\n");
  EXPECT_EQ(t->inbound_rcpt(), Decision::defer);  // still the first of its transaction
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "throttle: client limit address 192.0.2.7 ip 192.0.2.7 inmsg 2/2 per 1h: 450");
  EXPECT_EQ(used(*t, "a:192.0.2.7", "inrcpt"), 3u);
  EXPECT_EQ(used(*t, "a:192.0.2.7", "inmsg"), 2u);
  t->end_transaction(false);
  EXPECT_EQ(session("192.0.2.8", false)->inbound_rcpt(), Decision::ok);  // per address
}

TEST_F(SessionThrottleTest, InboundRcptIsExactOverSeveralWindows) {
  table("default inrcpt=3/1m,5/1h\n");
  auto s = session("192.0.2.7", false);
  int ok = 0;
  for (int i = 0; i < 5; ++i) ok += s->inbound_rcpt() == Decision::ok;
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(s->reply(), "450 4.7.1 too many recipients from 192.0.2.7\r\n");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines.back(), "throttle: client limit address 192.0.2.7 ip 192.0.2.7 inrcpt 3/3 per 1m: 450");
  s->end_transaction(true);
  now_ms += 61'000;
  ok = 0;
  for (int i = 0; i < 5; ++i) ok += s->inbound_rcpt() == Decision::ok;
  EXPECT_EQ(ok, 2);  // the hour's five
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines.back(), "throttle: client limit address 192.0.2.7 ip 192.0.2.7 inrcpt 5/5 per 1h: 450");
}

// A relay client is charged by rcpt=/msg= only, a client that is not one by
// inrcpt=/inmsg= only; charges of both kinds go back together.
TEST_F(SessionThrottleTest, RelayAndInboundChargesAreSeparateButShareTheReceipt) {
  table("default rcpt=2/1h inrcpt=2/1h\n");
  auto relay = session("192.0.2.7", true);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(relay->inbound_rcpt(), Decision::ok);
  EXPECT_EQ(accept_all(*relay, 3), 2);
  relay->end_transaction(true);
  auto inbound = session("192.0.2.7", false);
  EXPECT_FALSE(inbound->relay_limited());
  EXPECT_EQ(inbound->inbound_rcpt(), Decision::ok);
  EXPECT_EQ(used(*inbound, "a:192.0.2.7", "rcpt"), 2u);
  EXPECT_EQ(used(*inbound, "a:192.0.2.7", "inrcpt"), 1u);
  // AUTH in the session: from now on it relays; one refund gives back both
  inbound->set_user("alice@example.com");
  EXPECT_EQ(inbound->inbound_rcpt(), Decision::ok);
  EXPECT_EQ(inbound->rcpt(), Decision::ok);
  EXPECT_EQ(used(*inbound, "u:alice@example.com", "rcpt"), 1u);
  EXPECT_EQ(used(*inbound, "a:192.0.2.7", "inrcpt"), 1u);
  inbound->end_transaction(false);
  EXPECT_EQ(used(*inbound, "u:alice@example.com", "rcpt"), 0u);
  EXPECT_EQ(used(*inbound, "a:192.0.2.7", "inrcpt"), 0u);
  EXPECT_EQ(used(*inbound, "a:192.0.2.7", "rcpt"), 2u);  // queued
}

TEST_F(SessionThrottleTest, InboundRatesSkipExemptAndDisabledAndFollowTheFailPolicy) {
  table("default inrcpt=1/1d\n198.51.100.0/24 exempt\n");
  auto exempt = session("198.51.100.1", false);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(exempt->inbound_rcpt(), Decision::ok);
  auto off = std::make_unique<SessionThrottle>(test_clock, test_log);
  throttle::Config c = config();
  c.disabled = true;
  off->configure(c);
  off->start("192.0.2.7", false);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(off->inbound_rcpt(), Decision::ok);
  EXPECT_TRUE(lines.empty());
  auto open = session_without_store("192.0.2.7", false, false);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(open->inbound_rcpt(), Decision::ok);
  ASSERT_EQ(lines.size(), 1u);  // once per session when failing open
  EXPECT_EQ(lines[0].rfind("throttle: store fault ip 192.0.2.7 charge: unavailable (", 0), 0u) << lines[0];
  auto closed = session_without_store("192.0.2.7", false, true);
  EXPECT_EQ(closed->inbound_rcpt(), Decision::defer);
  EXPECT_EQ(closed->reply(), "451 4.3.0 temporary failure, try again later\r\n");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_TRUE(lines.back().ends_with(": fail-closed")) << lines.back();
}

// tlsrate= (patch 0072) before a STARTTLS or SMTPS handshake, per client,
// a refusal not counted; exempt clients never counted.
TEST_F(SessionThrottleTest, TlsrateBeforeTheHandshake) {
  table("default tlsrate=2/1h\n198.51.100.0/24 exempt\n");
  auto a = session("192.0.2.7", false);
  EXPECT_EQ(a->tls(false), Decision::ok);
  EXPECT_EQ(session("192.0.2.7", false)->tls(true), Decision::ok);  // SMTPS counts the same
  EXPECT_EQ(a->tls(false), Decision::defer);
  EXPECT_EQ(a->reply().rfind("454 4.7.0 too many TLS sessions from 192.0.2.7; try again in about ", 0), 0u)
      << a->reply();
  auto b = session("192.0.2.7", false);
  EXPECT_EQ(b->tls(true), Decision::defer);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "throttle: client limit address 192.0.2.7 ip 192.0.2.7 tlsrate 2/2 per 1h: 454");
  EXPECT_EQ(lines[1], "throttle: client limit address 192.0.2.7 ip 192.0.2.7 tlsrate 2/2 per 1h: closed");
  EXPECT_EQ(session("192.0.2.8", false)->tls(false), Decision::ok);  // another client
  for (int i = 0; i < 5; ++i) EXPECT_EQ(session("198.51.100.1", false)->tls(false), Decision::ok) << i;
  now_ms += 3'661'000;  // both left the hour (the refusals never counted)
  EXPECT_EQ(b->tls(false), Decision::ok);
  EXPECT_EQ(b->tls(false), Decision::ok);
  EXPECT_EQ(b->tls(false), Decision::defer);
}

// authrate= counts every AUTH command, before authfail= looks; a command
// either refuses is not counted.
TEST_F(SessionThrottleTest, AuthrateCountsAuthCommandsBeforeAuthfail) {
  table("default authrate=3/10m authfail=1/10m\n198.51.100.0/24 exempt\n");
  auto used = [this](SessionThrottle& s) {
    std::vector<store::CounterUsage> u;
    EXPECT_TRUE(s.store()->usage("a:192.0.2.7", now_ms, u).ok());
    std::uint64_t n = 0;
    for (const store::CounterUsage& c : u) n += c.metric == "auth" ? c.used : 0;
    return n;
  };
  auto s = session("192.0.2.7", false);
  EXPECT_EQ(s->auth_attempt(), Decision::ok);
  EXPECT_EQ(s->auth_attempt(), Decision::ok);
  EXPECT_EQ(used(*s), 2u);
  EXPECT_EQ(s->auth_failure(), Decision::ok);   // the one failure authfail= allows
  EXPECT_EQ(s->auth_attempt(), Decision::defer);  // authfail= refuses: given back
  EXPECT_EQ(s->reply().rfind("454 4.7.0 too many authentication failures", 0), 0u) << s->reply();
  EXPECT_EQ(used(*s), 2u);
  now_ms += 11 * 60'000;  // the failure and both commands left their windows
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s->auth_attempt(), Decision::ok) << i;
  lines.clear();
  EXPECT_EQ(s->auth_attempt(), Decision::defer);
  EXPECT_EQ(s->reply().rfind("454 4.7.0 too many AUTH commands from 192.0.2.7; try again in about ", 0), 0u)
      << s->reply();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "throttle: client limit address 192.0.2.7 ip 192.0.2.7 authrate 3/3 per 10m: 454");
  EXPECT_EQ(used(*s), 3u);  // the refused one is not counted
  for (int i = 0; i < 6; ++i) EXPECT_EQ(session("198.51.100.1", false)->auth_attempt(), Decision::ok) << i;
}
