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
  EXPECT_EQ(after_slot(l.client(), client_slots::Slot::Outcome::held, 0, "192.0.2.7").outcome, Outcome::accept);
  Decision d = after_slot(l.client(), client_slots::Slot::Outcome::full, 0, "192.0.2.7");
  EXPECT_EQ(d.outcome, Outcome::refuse);
  EXPECT_EQ(d.verdict.code, 421u);
  EXPECT_EQ(d.verdict.reply, "421 4.7.0 too many connections from 192.0.2.7\r\n");
  EXPECT_EQ(d.verdict.log, "throttle: client limit network 192.0.2.0/24 ip 192.0.2.7 conn 3/3: 421");
  Decision f = after_slot(l.client(), client_slots::Slot::Outcome::fault, EACCES, "192.0.2.7");
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

// tlsrate=2/1m,3/1h: exact over each window; refusals are not counted, so a
// client hammering at its limit gets in again as soon as the window has room.
TEST(ConnectionPolicy, TlsrateIsExactOverSeveralWindowsAndRefusalsAreNotCounted) {
  auto b = spamt_test::build("default tlsrate=2/1m,3/1h\n");
  spamt::Lookup l;
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), spamt::LookupStatus::ok);
  store_test::TempDir dir;
  store::LmdbStore s(store_test::options_for(dir));
  store::Limit counters[spamt::max_windows];
  const std::size_t n = counters_for_event(l.client(), Event::starttls, counters);
  ASSERT_EQ(n, 2u);
  EXPECT_EQ(counters[0].key.identity, "a:192.0.2.7");
  EXPECT_EQ(counters[0].key.metric, "tls");
  EXPECT_EQ(counters_for_event(l.client(), Event::auth, counters + n), 0u);  // no authrate=
  auto tls = [&](std::uint64_t now, Event e = Event::starttls) {
    store::ChargeResult r = s.charge({counters, n}, 1, now, nullptr);
    return after_event(l.client(), e, r, counters, n, false, "192.0.2.7");
  };
  EXPECT_EQ(tls(T0).outcome, Outcome::accept);
  EXPECT_EQ(tls(T0 + 10'000).outcome, Outcome::accept);
  Decision d = tls(T0 + 20'000);
  EXPECT_EQ(d.outcome, Outcome::refuse);
  EXPECT_EQ(d.verdict.code, 454u);
  EXPECT_TRUE(has(d.verdict.reply, "454 4.7.0 too many TLS sessions from 192.0.2.7; try again in ")) << d.verdict.reply;
  EXPECT_EQ(d.verdict.log, "throttle: client limit address 192.0.2.7 ip 192.0.2.7 tlsrate 2/2 per 1m: 454");
  Decision smtps = tls(T0 + 21'000, Event::smtps);
  EXPECT_EQ(smtps.outcome, Outcome::refuse);
  EXPECT_EQ(smtps.verdict.log, "throttle: client limit address 192.0.2.7 ip 192.0.2.7 tlsrate 2/2 per 1m: closed");
  for (std::uint64_t t = T0 + 22'000; t < T0 + 59'000; t += 1'000) EXPECT_EQ(tls(t).outcome, Outcome::refuse) << t;
  // the first leaves the minute's window: one more fits (the refusals above
  // were not counted), then the hour's window is full at three
  EXPECT_EQ(tls(T0 + 61'000).outcome, Outcome::accept);
  Decision h = tls(T0 + 200'000);
  EXPECT_EQ(h.outcome, Outcome::refuse);
  EXPECT_TRUE(has(h.verdict.log, "tlsrate 3/3 per 1h: 454")) << h.verdict.log;
  EXPECT_EQ(tls(T0 + 3'662'000).outcome, Outcome::accept);
}

TEST(ConnectionPolicy, AuthrateCountsPerClientKeyAndNotForExemptClients) {
  auto b = spamt_test::build(
      "default authrate=2/10m\n192.0.2.0/24 authrate=5/10m\n198.51.100.0/24 authrate=5/10m each\n"
      "203.0.113.0/24 exempt\n10.0.0.0/8 rcpt=5/1h\n");
  spamt::Lookup l;
  store::Limit counters[spamt::max_windows];
  auto key_of = [&](const char* ip) -> std::string {
    EXPECT_EQ(b->table.lookup(ip, "", l), spamt::LookupStatus::ok);
    if (counters_for_event(l.client(), Event::auth, counters) == 0) return "";
    EXPECT_EQ(counters[0].key.metric, "auth");
    return std::string(counters[0].key.identity);
  };
  EXPECT_EQ(key_of("192.0.2.7"), "n:192.0.2.0/24");      // the block shares one count
  EXPECT_EQ(key_of("198.51.100.7"), "a:198.51.100.7");   // each
  EXPECT_EQ(key_of("203.0.113.7"), "");                  // exempt
  EXPECT_EQ(key_of("10.1.2.3"), "a:10.1.2.3");           // no client settings there: the default's
  EXPECT_EQ(counters_for_event(l.client(), Event::starttls, counters), 0u);
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), spamt::LookupStatus::ok);
  store_test::TempDir dir;
  store::LmdbStore s(store_test::options_for(dir));
  const std::size_t n = counters_for_event(l.client(), Event::auth, counters);
  for (int i = 0; i < 5; ++i) {
    store::ChargeResult r = s.charge({counters, n}, 1, T0 + i, nullptr);
    EXPECT_EQ(after_event(l.client(), Event::auth, r, counters, n, false, "192.0.2.7").outcome, Outcome::accept);
  }
  store::ChargeResult r = s.charge({counters, n}, 1, T0 + 10, nullptr);
  Decision d = after_event(l.client(), Event::auth, r, counters, n, false, "192.0.2.9");
  EXPECT_EQ(d.outcome, Outcome::refuse);
  EXPECT_TRUE(has(d.verdict.reply, "454 4.7.0 too many AUTH commands from 192.0.2.9; try again in ")) << d.verdict.reply;
  EXPECT_EQ(d.verdict.log, "throttle: client limit network 192.0.2.0/24 ip 192.0.2.9 authrate 5/5 per 10m: 454");
}

TEST(ConnectionPolicy, EventStoreFaultFollowsTheFailPolicy) {
  auto b = spamt_test::build("default tlsrate=3/1m\n");
  spamt::Lookup l;
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), spamt::LookupStatus::ok);
  store::Limit counters[spamt::max_windows];
  const std::size_t n = counters_for_event(l.client(), Event::smtps, counters);
  store::ChargeResult fault = store::ChargeResult::failure(store::Status::unavailable, "lock timeout");
  Decision open = after_event(l.client(), Event::smtps, fault, counters, n, false, "192.0.2.7");
  EXPECT_EQ(open.outcome, Outcome::accept);
  EXPECT_TRUE(has(open.log, "tlsrate: store unavailable (lock timeout): not limited")) << open.log;
  Decision closed = after_event(l.client(), Event::starttls, fault, counters, n, true, "192.0.2.7");
  EXPECT_EQ(closed.outcome, Outcome::refuse);
  EXPECT_EQ(closed.verdict.reply, "454 4.3.0 temporary failure, try again later\r\n");
}
