// limits_table: opening (every status), and the lookup semantics of
// doc/spamt.5 - which budgets, teergrube settings and authfail limit apply.
#include <gtest/gtest.h>

#include <cdb.h>

#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <new>
#include <string>
#include <vector>

#include "limits_table.h"
#include "allocation_count.h"
#include "spamt_test_table.h"

using namespace spamt;
using spamt_test::build;
using spamt_test::str;

namespace {

// "kind key limits" per budget, e.g. "user u:alice@example.com rcpt=100/1h msg=0 451".
std::vector<std::string> budgets(const Lookup& l) {
  std::vector<std::string> out;
  for (const Budget& b : l.relay()) {
    char r[windows_text_max], m[windows_text_max];
    out.push_back(str(kind_name(b.kind)) + " " + str(b.key) + " rcpt=" + std::string(r, format_windows(*b.rcpt, r)) +
                  " msg=" + std::string(m, format_windows(*b.msg, m)) + " " + std::to_string(b.action));
  }
  return out;
}

std::vector<std::string> look(LimitsTable& t, std::string_view ip, std::string_view user = "") {
  Lookup l;
  EXPECT_EQ(t.lookup(ip, user, l), LookupStatus::ok) << ip << " " << user;
  return budgets(l);
}

using V = std::vector<std::string>;

// A raw cdb with the given records.
std::string raw_cdb(std::initializer_list<std::pair<std::string, std::string>> records) {
  int fd = memfd_create("raw", MFD_CLOEXEC);
  struct cdb_make cm;
  cdb_make_start(&cm, fd);
  for (const auto& [k, v] : records) cdb_make_add(&cm, k.data(), k.size(), v.data(), v.size());
  cdb_make_finish(&cm);
  off_t size = lseek(fd, 0, SEEK_END);
  std::string bytes(static_cast<std::size_t>(size), '\0');
  pread(fd, bytes.data(), bytes.size(), 0);
  close(fd);
  return bytes;
}

TableStatus open_bytes(LimitsTable& t, const std::string& bytes) {
  return t.open_fd(spamt_test::memfd_with(bytes));
}

}  // namespace

// ---- opening ----------------------------------------------------------------

TEST(LimitsTable, OpenStatuses) {
  LimitsTable t;
  EXPECT_EQ(t.status(), TableStatus::closed);
  Lookup l;
  EXPECT_EQ(t.lookup("192.0.2.7", "", l), LookupStatus::not_open);
  EXPECT_EQ(t.open("/nonexistent/spamt.cdb"), TableStatus::missing);
  {
    // a descriptor that cannot be read
    char path[] = "/tmp/spamt-test-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, std::string(4096, 'x').data(), 4096), 4096);
    close(fd);
    EXPECT_EQ(t.open_fd(::open(path, O_WRONLY)), TableStatus::unreadable);
    EXPECT_NE(t.error(), 0);
    unlink(path);
  }
  EXPECT_EQ(open_bytes(t, ""), TableStatus::corrupt);                  // not a cdb at all
  EXPECT_EQ(open_bytes(t, std::string(4096, '\xff')), TableStatus::corrupt);
  // spamthrottle's qmail-newst wrote a "" key and no version: refused, never misread
  EXPECT_EQ(open_bytes(t, raw_cdb({{"", std::string("\0\0\0\0\0\0\0\0\0\0\0", 11)}})), TableStatus::wrong_version);
  // version 1 (before client limits): refused, qmail-newspamt rewrites it
  EXPECT_EQ(open_bytes(t, raw_cdb({{"!format", "qmail-throttle spamt 1"}})), TableStatus::wrong_version);
  // the format record must come first
  EXPECT_EQ(open_bytes(t, raw_cdb({{"!index", "x"}, {"!format", "qmail-throttle spamt 2"}})),
            TableStatus::wrong_version);
  EXPECT_EQ(open_bytes(t, raw_cdb({{"!format", "qmail-throttle spamt 2"}})), TableStatus::corrupt);  // no index
  EXPECT_EQ(open_bytes(t, raw_cdb({{"!format", "qmail-throttle spamt 2"}, {"!index", "x"}})), TableStatus::corrupt);
  format::Index ix;
  ix.has_default = true;
  EXPECT_EQ(open_bytes(t, raw_cdb({{"!format", "qmail-throttle spamt 2"}, {"!index", format::encode_index(ix)}})),
            TableStatus::corrupt);  // the index promises a default that is not there
  ix.has_default = false;
  EXPECT_EQ(open_bytes(t, raw_cdb({{"!format", "qmail-throttle spamt 2"}, {"!index", format::encode_index(ix)}})),
            TableStatus::ok);
  EXPECT_EQ(t.lookup("192.0.2.7", "", l), LookupStatus::ok);
  EXPECT_TRUE(l.relay().empty());
  t.close();
  EXPECT_EQ(t.status(), TableStatus::closed);
}

TEST(LimitsTable, CorruptRecordIsReportedNotMisread) {
  format::Index ix;
  ix.v4[format::relay].add(32);
  ix.has_users = true;
  char key[18];
  std::string net_key(key, format::network_key(*ip::parse("192.0.2.7"), 32, key));
  std::string bytes = raw_cdb({{"!format", "qmail-throttle spamt 2"},
                               {"!index", format::encode_index(ix)},
                               {net_key, "garbage"},
                               {"u:alice", "garbage"}});
  LimitsTable t;
  ASSERT_EQ(open_bytes(t, bytes), TableStatus::ok);
  Lookup l;
  EXPECT_EQ(t.lookup("192.0.2.7", "", l), LookupStatus::corrupt);
  EXPECT_EQ(t.lookup("192.0.2.8", "alice", l), LookupStatus::corrupt);
  EXPECT_EQ(t.lookup("192.0.2.8", "bob", l), LookupStatus::ok);
}

TEST(LimitsTable, BadInput) {
  auto b = build("default rcpt=10/1d\n");
  Lookup l;
  EXPECT_EQ(b->table.lookup("not-an-ip", "", l), LookupStatus::bad_address);
  EXPECT_EQ(b->table.lookup("", "", l), LookupStatus::bad_address);
  EXPECT_EQ(b->table.lookup("192.0.2.7", std::string(256, 'a'), l), LookupStatus::bad_user);
  EXPECT_EQ(b->table.lookup("192.0.2.7", std::string(255, 'a'), l), LookupStatus::ok);
}

// ---- relay limits -----------------------------------------------------------

TEST(LimitsTable, UserDomainAndIpApplyAtOnce) {
  auto b = build(
      "alice@example.com rcpt=100/1h\n"
      "@example.com rcpt=5000/1d\n"
      "192.0.2.0/24 rcpt=300/1h\n"
      "default rcpt=10/1d\n");
  EXPECT_EQ(look(b->table, "192.0.2.7", "alice@example.com"),
            (V{"user u:alice@example.com rcpt=100/1h msg=0 451", "domain d:example.com rcpt=5000/1d msg=0 451",
               "network n:192.0.2.0/24 rcpt=300/1h msg=0 451"}));
  // bob shares the domain's budget (one budget for all its users) and the IP's
  EXPECT_EQ(look(b->table, "192.0.2.99", "bob@example.com"),
            (V{"domain d:example.com rcpt=5000/1d msg=0 451", "network n:192.0.2.0/24 rcpt=300/1h msg=0 451"}));
  // nothing else matches: the default, per user
  EXPECT_EQ(look(b->table, "198.51.100.1", "carol@example.org"), (V{"default u:carol@example.org rcpt=10/1d msg=0 451"}));
  // ... or per client address
  EXPECT_EQ(look(b->table, "198.51.100.1"), (V{"default a:198.51.100.1 rcpt=10/1d msg=0 451"}));
  EXPECT_EQ(look(b->table, "2001:db8:1:2:3:4:5:6"), (V{"default n:2001:db8:1:2::/64 rcpt=10/1d msg=0 451"}));
}

TEST(LimitsTable, DefaultIsReplacedWhetherLowerOrHigher) {
  // rcptcheck-overlimit's own example: ":1000" with "1.2.3.4:3000" gives that IP 3000
  auto b = build("", ":1000\n1.2.3.4:3000\n5.6.7.8:10\nbig@example.com:0\n");
  EXPECT_EQ(look(b->table, "1.2.3.4"), (V{"address a:1.2.3.4 rcpt=3000/1d msg=0 421"}));
  EXPECT_EQ(look(b->table, "5.6.7.8"), (V{"address a:5.6.7.8 rcpt=10/1d msg=0 421"}));
  EXPECT_EQ(look(b->table, "9.9.9.9"), (V{"default a:9.9.9.9 rcpt=1000/1d msg=0 421"}));
  // 0 = unlimited, and it still replaces the default
  EXPECT_EQ(look(b->table, "9.9.9.9", "big@example.com"), (V{"user u:big@example.com rcpt=0 msg=0 421"}));
}

TEST(LimitsTable, RelaylimitsKeysMatchExactly) {
  // the script's grep matched substrings: these two were its bugs
  auto b = build("", ":1000\ntestinfo@example.com:5\n11.2.3.4:1\n");
  EXPECT_EQ(look(b->table, "9.9.9.9", "info@example.com"), (V{"default u:info@example.com rcpt=1000/1d msg=0 421"}));
  EXPECT_EQ(look(b->table, "1.2.3.4"), (V{"default a:1.2.3.4 rcpt=1000/1d msg=0 421"}));
  EXPECT_EQ(look(b->table, "11.2.3.4"), (V{"address a:11.2.3.4 rcpt=1/1d msg=0 421"}));
  EXPECT_EQ(look(b->table, "9.9.9.9", "testinfo@example.com"), (V{"user u:testinfo@example.com rcpt=5/1d msg=0 421"}));
}

TEST(LimitsTable, RelaylimitsIpLinesAreForUnauthenticatedClients) {
  // rcptcheck-overlimit keyed on SMTPAUTHUSER when set, else on the IP
  auto b = build("", ":1000\n1.2.3.4:3000\nalice@example.com:50\n");
  EXPECT_EQ(look(b->table, "1.2.3.4", "alice@example.com"), (V{"user u:alice@example.com rcpt=50/1d msg=0 421"}));
  EXPECT_EQ(look(b->table, "1.2.3.4", "bob@example.com"), (V{"default u:bob@example.com rcpt=1000/1d msg=0 421"}));
  EXPECT_EQ(look(b->table, "1.2.3.4"), (V{"address a:1.2.3.4 rcpt=3000/1d msg=0 421"}));
}

TEST(LimitsTable, UnauthenticatedFallsBackToLessSpecific) {
  auto b = build(
      "192.0.2.7 rcpt=5/1h unauthenticated\n"
      "192.0.2.0/24 rcpt=50/1h\n");
  EXPECT_EQ(look(b->table, "192.0.2.7"), (V{"address a:192.0.2.7 rcpt=5/1h msg=0 451"}));
  EXPECT_EQ(look(b->table, "192.0.2.7", "alice@example.com"), (V{"network n:192.0.2.0/24 rcpt=50/1h msg=0 451"}));
}

TEST(LimitsTable, LongestPrefixWinsIPv4) {
  auto b = build(
      "10.0.0.0/8 rcpt=8/1h\n"
      "10.1.0.0/16 rcpt=16/1h\n"
      "10.1.2.0/24 rcpt=24/1h\n"
      "10.1.2.128/25 rcpt=25/1h\n"
      "10.1.2.3 rcpt=32/1h\n"
      "0.0.0.0/0 rcpt=0/1h\n");
  EXPECT_EQ(look(b->table, "10.1.2.3")[0], "address a:10.1.2.3 rcpt=32/1h msg=0 451");
  EXPECT_EQ(look(b->table, "10.1.2.200")[0], "network n:10.1.2.128/25 rcpt=25/1h msg=0 451");
  EXPECT_EQ(look(b->table, "10.1.2.4")[0], "network n:10.1.2.0/24 rcpt=24/1h msg=0 451");
  EXPECT_EQ(look(b->table, "10.1.3.4")[0], "network n:10.1.0.0/16 rcpt=16/1h msg=0 451");
  EXPECT_EQ(look(b->table, "10.2.3.4")[0], "network n:10.0.0.0/8 rcpt=8/1h msg=0 451");
  EXPECT_EQ(look(b->table, "11.2.3.4")[0], "network n:0.0.0.0/0 rcpt=0 msg=0 451");
  EXPECT_EQ(look(b->table, "::ffff:10.1.2.3")[0], "address a:10.1.2.3 rcpt=32/1h msg=0 451");  // v4-mapped
  EXPECT_TRUE(look(b->table, "2001:db8::1").empty());  // IPv4 entries never match IPv6 clients
}

TEST(LimitsTable, LongestPrefixWinsIPv6) {
  auto b = build(
      "2001:db8::/32 rcpt=32/1h\n"
      "2001:db8:1::/48 rcpt=48/1h\n"
      "2001:db8:1:2::/64 rcpt=64/1h\n"
      "2001:db8:1:2::7 rcpt=128/1h\n"
      "::/0 rcpt=1/1h\n");
  EXPECT_EQ(look(b->table, "2001:db8:1:2::7")[0], "address a:2001:db8:1:2::7 rcpt=128/1h msg=0 451");
  EXPECT_EQ(look(b->table, "2001:db8:1:2::8")[0], "network n:2001:db8:1:2::/64 rcpt=64/1h msg=0 451");
  EXPECT_EQ(look(b->table, "2001:db8:1:3::8")[0], "network n:2001:db8:1::/48 rcpt=48/1h msg=0 451");
  EXPECT_EQ(look(b->table, "2001:db8:2::8")[0], "network n:2001:db8::/32 rcpt=32/1h msg=0 451");
  EXPECT_EQ(look(b->table, "2001:db9::8")[0], "network n:::/0 rcpt=1/1h msg=0 451");
  EXPECT_TRUE(look(b->table, "192.0.2.1").empty());
}

TEST(LimitsTable, EachGivesEveryClientOfTheBlockItsOwnBudget) {
  auto b = build(
      "192.0.2.0/24 rcpt=10/1h each\n"
      "2001:db8::/32 rcpt=10/1h each\n");
  EXPECT_EQ(look(b->table, "192.0.2.7"), (V{"network a:192.0.2.7 rcpt=10/1h msg=0 451"}));
  EXPECT_EQ(look(b->table, "192.0.2.8"), (V{"network a:192.0.2.8 rcpt=10/1h msg=0 451"}));
  // an IPv6 client is its /64
  EXPECT_EQ(look(b->table, "2001:db8:5:6::1"), (V{"network n:2001:db8:5:6::/64 rcpt=10/1h msg=0 451"}));
  EXPECT_EQ(look(b->table, "2001:db8:5:6::2"), (V{"network n:2001:db8:5:6::/64 rcpt=10/1h msg=0 451"}));
}

TEST(LimitsTable, ExemptWins) {
  auto b = build(
      "alice@example.com rcpt=100/1h\n"
      "vip@example.com exempt\n"
      "10.0.0.0/8 exempt\n"
      "10.1.2.0/24 st=2000\n"
      "10.9.0.0/16 rcpt=5/1h\n"
      "default rcpt=10/1d\n");
  Lookup l;
  // an exempt IP entry exempts alice too, and her own limits are not charged
  ASSERT_EQ(b->table.lookup("10.1.2.3", "alice@example.com", l), LookupStatus::ok);
  EXPECT_TRUE(l.exempt());
  EXPECT_TRUE(l.relay().empty());
  EXPECT_EQ(l.exempt_by()->identity, "10.0.0.0/8");
  // a teergrube-only /24 does not hide the /8 for relay limits
  EXPECT_EQ(l.relay_ip_entry()->identity, "10.0.0.0/8");
  // an exempt user is exempt from everywhere
  ASSERT_EQ(b->table.lookup("198.51.100.1", "VIP@example.com", l), LookupStatus::ok);
  EXPECT_TRUE(l.exempt());
  EXPECT_EQ(l.exempt_by()->identity, "vip@example.com");
  // but a more specific limited block beats the exempt /8
  ASSERT_EQ(b->table.lookup("10.9.1.1", "", l), LookupStatus::ok);
  EXPECT_FALSE(l.exempt());
  EXPECT_EQ(budgets(l), (V{"network n:10.9.0.0/16 rcpt=5/1h msg=0 451"}));
}

TEST(LimitsTable, NamesAreCaseInsensitive) {
  auto b = build(
      "Alice@Example.COM rcpt=100/1h\n"
      "@EXAMPLE.org rcpt=7/1h\n");
  EXPECT_EQ(look(b->table, "192.0.2.1", "ALICE@example.com"), (V{"user u:alice@example.com rcpt=100/1h msg=0 451"}));
  EXPECT_EQ(look(b->table, "192.0.2.1", "Bob@Example.Org"), (V{"domain d:example.org rcpt=7/1h msg=0 451"}));
}

TEST(LimitsTable, BareLoginsAndOddUsers) {
  auto b = build(
      "user:postmaster rcpt=3/1h\n"
      "@example.com rcpt=9/1h\n"
      "default rcpt=1/1h\n");
  EXPECT_EQ(look(b->table, "192.0.2.1", "Postmaster"), (V{"user u:postmaster rcpt=3/1h msg=0 451"}));
  EXPECT_EQ(look(b->table, "192.0.2.1", "alice@"), (V{"default u:alice@ rcpt=1/1h msg=0 451"}));
  EXPECT_EQ(look(b->table, "192.0.2.1", "x@y@example.com"), (V{"domain d:example.com rcpt=9/1h msg=0 451"}));
}

TEST(LimitsTable, RelayIgnoresEntriesWithoutRelaySettings) {
  auto b = build(
      "192.0.2.0/24 st=2000 authfail=3/1h\n"
      "default rcpt=10/1d\n");
  // the teergrube-only entry does not replace the default's relay limits
  EXPECT_EQ(look(b->table, "192.0.2.7"), (V{"default a:192.0.2.7 rcpt=10/1d msg=0 451"}));
}

// ---- teergrube --------------------------------------------------------------

TEST(LimitsTable, TeergrubeInheritsFromDefaultThenBuiltIn) {
  auto b = build(
      "default st=1500 stmax=120000 tg=5 tgtext=\"slow down\"\n"
      "192.0.2.0/24 st=3000 flush=yes\n"
      "192.0.2.7 rcpt=1/1h\n");
  Lookup l;
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), LookupStatus::ok);
  const TeergrubeSettings& t = l.teergrube();
  ASSERT_TRUE(t.entry);
  EXPECT_EQ(t.entry->identity, "192.0.2.0/24");  // the /32 has no teergrube settings
  EXPECT_EQ(t.st_ms, 3000u);
  EXPECT_TRUE(t.flush);
  EXPECT_EQ(t.stmax_ms, 120000u);
  EXPECT_EQ(t.tg_seconds, 5u);
  EXPECT_EQ(t.text, "slow down");
  EXPECT_EQ(t.strcpt, 0u);
  EXPECT_FALSE(t.tarpitrelay);
  EXPECT_EQ(t.from_entry, field::st | field::flush);
  EXPECT_EQ(t.from_default, field::st * 0 | field::stmax | field::tg | field::tgtext);
  EXPECT_EQ(t.state_key, "a:192.0.2.7");
  EXPECT_TRUE(t.active());

  ASSERT_EQ(b->table.lookup("198.51.100.1", "", l), LookupStatus::ok);
  EXPECT_EQ(l.teergrube().entry, nullptr);
  EXPECT_EQ(l.teergrube().st_ms, 1500u);
  EXPECT_EQ(l.teergrube().from_default, field::st | field::stmax | field::tg | field::tgtext);

  auto none = build("192.0.2.7 rcpt=1/1h\n");
  ASSERT_EQ(none->table.lookup("192.0.2.7", "", l), LookupStatus::ok);
  EXPECT_FALSE(l.teergrube().active());
  EXPECT_EQ(l.teergrube().text, "please wait");
  EXPECT_EQ(l.teergrube().state_key, "a:192.0.2.7");
}

TEST(LimitsTable, TeergrubeStateSharing) {
  auto b = build(
      "default st=1000 group=public\n"
      "192.0.2.0/24 prefix4=24\n"
      "198.51.100.0/24 st=2000\n"
      "203.0.113.0/24 group=abuse\n"
      "2001:db8::/32 st=1\n"
      "2001:db9::/32 prefix6=48\n");
  Lookup l;
  auto state = [&](const char* ip) {
    EXPECT_EQ(b->table.lookup(ip, "", l), LookupStatus::ok);
    return str(l.teergrube().state_key);
  };
  EXPECT_EQ(state("192.0.2.7"), "n:192.0.2.0/24");    // an entry that sets prefix4 leaves the default's group
  EXPECT_EQ(state("198.51.100.7"), "g:public");      // one that says nothing about state inherits it
  EXPECT_EQ(state("203.0.113.7"), "g:abuse");
  EXPECT_EQ(state("192.168.1.1"), "g:public");
  EXPECT_EQ(state("2001:db8::1"), "g:public");
  EXPECT_EQ(state("2001:db9:1:2::1"), "n:2001:db9:1::/48");

  auto plain = build("default st=1\n2001:db8::/32 prefix6=128\n192.0.2.0/24 prefix4=0\n");
  EXPECT_EQ(plain->table.lookup("2001:db7::5", "", l), LookupStatus::ok);
  EXPECT_EQ(str(l.teergrube().state_key), "n:2001:db7::/64");  // built-in /64
  EXPECT_EQ(plain->table.lookup("2001:db8::5", "", l), LookupStatus::ok);
  EXPECT_EQ(str(l.teergrube().state_key), "a:2001:db8::5");
  EXPECT_EQ(plain->table.lookup("192.0.2.5", "", l), LookupStatus::ok);
  EXPECT_EQ(str(l.teergrube().state_key), "n:0.0.0.0/0");
}

TEST(LimitsTable, SpamthrottleFileMeansWhatItMeant) {
  // spamthrottle's qmail-spamt(5) example. Its text says 192.168.2.1 falls to
  // the default, but its code matched the first 16 bits of 192.168.1.0/16:
  // the code is what ran, so that is what the line means.
  auto b = build(
      "192.168.0.0/24::0::::::\n"
      "192.168.0.2:specific:2000::::::\n"
      "192.168.1.0/16:testing:10000:::1:2:hold your horses!:\n"
      "# empty network ==> default entry\n"
      "::1501:120000::::::\n"
      ".\n");
  Lookup l;
  auto tg = [&](const char* ip) -> const TeergrubeSettings& {
    EXPECT_EQ(b->table.lookup(ip, "", l), LookupStatus::ok);
    return l.teergrube();
  };
  const TeergrubeSettings* t = &tg("192.168.2.1");
  EXPECT_EQ(t->st_ms, 10000u);
  EXPECT_EQ(t->stmax_ms, 120000u);  // empty field: from the default
  EXPECT_EQ(t->strcpt, 1u);
  EXPECT_EQ(t->tg_seconds, 2u);
  EXPECT_EQ(t->text, "hold your horses!");
  EXPECT_EQ(str(t->state_key), "g:testing");
  t = &tg("192.168.0.2");
  EXPECT_EQ(t->st_ms, 2000u);
  EXPECT_EQ(str(t->state_key), "g:specific");
  t = &tg("192.168.0.1");
  EXPECT_EQ(t->st_ms, 0u);  // throttling off for the /24
  EXPECT_FALSE(t->active());
  t = &tg("10.0.0.1");
  EXPECT_EQ(t->st_ms, 1501u);
  EXPECT_EQ(t->stmax_ms, 120000u);
  EXPECT_EQ(str(t->state_key), "n:10.0.0.0/16");  // no dir anywhere: spamthrottle's /16
  EXPECT_TRUE(l.relay().empty());  // spamthrottle lines limit no relaying
}

TEST(LimitsTable, SpamthrottleDirForms) {
  auto b = build(
      ":/24:1000::::::\n"
      "10.1.0.0/16:/32:::::::\n"
      "10.2.0.0/16:pool:::::::\n"
      "10.3.0.0/16::::::::\n"
      "10.4.0.0/16::::1::::\n");
  Lookup l;
  auto state = [&](const char* ip) {
    EXPECT_EQ(b->table.lookup(ip, "", l), LookupStatus::ok);
    return str(l.teergrube().state_key);
  };
  EXPECT_EQ(state("10.1.2.3"), "a:10.1.2.3");
  EXPECT_EQ(state("10.2.2.3"), "g:pool");
  EXPECT_EQ(state("10.3.2.3"), "n:10.3.2.0/24");  // from the default's /24
  EXPECT_EQ(state("10.9.2.3"), "n:10.9.2.0/24");
  EXPECT_EQ(b->table.lookup("10.4.0.1", "", l), LookupStatus::ok);
  EXPECT_TRUE(l.teergrube().flush);
}

// ---- authfail ---------------------------------------------------------------

TEST(LimitsTable, AuthfailPerClientAddress) {
  auto b = build(
      "default authfail=5/10m\n"
      "192.0.2.0/24 authfail=2/1h\n"
      "192.0.2.7 authfail=0\n"
      "2001:db8::/32 authfail=3/1h\n");
  Lookup l;
  ASSERT_EQ(b->table.lookup("192.0.2.8", "", l), LookupStatus::ok);
  EXPECT_EQ(l.authfail().windows->at[0], (Window{2, 3600}));
  EXPECT_EQ(l.authfail().key, "a:192.0.2.8");  // per client, not per block
  EXPECT_EQ(l.authfail().entry->identity, "192.0.2.0/24");
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), LookupStatus::ok);
  EXPECT_TRUE(l.authfail().windows->empty());  // explicitly unlimited
  ASSERT_EQ(b->table.lookup("198.51.100.1", "", l), LookupStatus::ok);
  EXPECT_EQ(l.authfail().windows->at[0], (Window{5, 600}));
  EXPECT_EQ(l.authfail().entry->kind, Kind::fallback);
  ASSERT_EQ(b->table.lookup("2001:db8:1:2::3", "", l), LookupStatus::ok);
  EXPECT_EQ(l.authfail().key, "n:2001:db8:1:2::/64");

  auto none = build("192.0.2.7 rcpt=1/1h\n");
  ASSERT_EQ(none->table.lookup("192.0.2.7", "", l), LookupStatus::ok);
  EXPECT_TRUE(l.authfail().windows->empty());
  EXPECT_EQ(l.authfail().entry, nullptr);
}

// ---- cost -------------------------------------------------------------------

TEST(LimitsTable, LookupAllocatesNothing) {
  auto b = build(
      "alice@example.com rcpt=100/1h\n"
      "@example.com rcpt=5000/1d\n"
      "192.0.2.0/24 rcpt=10/1h each st=100 authfail=1/1h\n"
      "2001:db8::/32 rcpt=10/1h\n"
      "default rcpt=1/1d st=1 group=g authfail=3/1h\n");
  Lookup l;
  std::size_t before = allocation_count::now();
  for (int i = 0; i < 100; ++i) {
    b->table.lookup("192.0.2.7", "alice@example.com", l);
    b->table.lookup("::ffff:198.51.100.1", "", l);
    b->table.lookup("2001:db8::1", "bob@example.com", l);
  }
  EXPECT_EQ(allocation_count::now(), before);
}

TEST(LimitsTable, MixedFileKeepsEachLinesMeaning) {
  // spamthrottle lines keep their /16, native lines their /32, in one file
  auto b = build(
      "default st=1000\n"
      "10.0.0.0/8::2000::::::\n"
      "192.0.2.0/24 st=3000\n");
  Lookup l;
  ASSERT_EQ(b->table.lookup("10.1.2.3", "", l), LookupStatus::ok);
  EXPECT_EQ(str(l.teergrube().state_key), "n:10.1.0.0/16");
  ASSERT_EQ(b->table.lookup("192.0.2.3", "", l), LookupStatus::ok);
  EXPECT_EQ(str(l.teergrube().state_key), "a:192.0.2.3");
  ASSERT_EQ(b->table.lookup("198.51.100.3", "", l), LookupStatus::ok);  // the native default
  EXPECT_EQ(str(l.teergrube().state_key), "a:198.51.100.3");
  auto legacy_default = build("::1000::::::\n192.0.2.0/24 st=3000\n");
  ASSERT_EQ(legacy_default->table.lookup("198.51.100.3", "", l), LookupStatus::ok);
  EXPECT_EQ(str(l.teergrube().state_key), "n:198.51.0.0/16");
  ASSERT_EQ(legacy_default->table.lookup("192.0.2.3", "", l), LookupStatus::ok);
  EXPECT_EQ(str(l.teergrube().state_key), "a:192.0.2.3");
}

TEST(LimitsTable, EachKindOfSettingComesFromItsOwnMostSpecificEntry) {
  auto b = build(
      "10.0.0.0/7 rcpt=7/1h authfail=7/1h\n"
      "10.0.0.0/8 rcpt=8/1h unauthenticated st=8\n"
      "10.1.0.0/16 st=16\n"
      "10.1.2.0/24 tg=24\n"
      "10.1.2.3 rcpt=32/1h unauthenticated\n");
  Lookup l;
  ASSERT_EQ(b->table.lookup("10.1.2.3", "", l), LookupStatus::ok);
  EXPECT_EQ(l.relay_ip_entry()->identity, "10.1.2.3");
  EXPECT_EQ(l.teergrube().entry->identity, "10.1.2.0/24");
  EXPECT_EQ(l.authfail().entry->identity, "10.0.0.0/7");
  ASSERT_EQ(b->table.lookup("10.1.2.3", "alice", l), LookupStatus::ok);
  EXPECT_EQ(l.relay_ip_entry()->identity, "10.0.0.0/7");  // both unauthenticated entries passed over
  ASSERT_EQ(b->table.lookup("10.1.9.9", "", l), LookupStatus::ok);
  EXPECT_EQ(l.relay_ip_entry()->identity, "10.0.0.0/8");
  EXPECT_EQ(l.teergrube().entry->identity, "10.1.0.0/16");
  ASSERT_EQ(b->table.lookup("10.9.9.9", "", l), LookupStatus::ok);
  EXPECT_EQ(l.teergrube().entry->identity, "10.0.0.0/8");
  EXPECT_EQ(l.authfail().entry->identity, "10.0.0.0/7");
}

TEST(LimitsTable, AnAncestorThatIsNotThereIsCorrupt) {
  // a record that claims a /8 ancestor with relay limits the table lacks
  spamt::Table t = spamt_test::compile_text("10.1.2.3 st=1\n");
  t.entries[0].ancestors[format::up_relay] = 8;
  format::Index ix = t.index();
  ix.v4[format::relay].add(8);
  char key[18];
  std::string k(key, format::network_key(*ip::parse("10.1.2.3"), 32, key));
  LimitsTable table;
  ASSERT_EQ(open_bytes(table, raw_cdb({{"!format", "qmail-throttle spamt 2"},
                                       {"!index", format::encode_index(ix)},
                                       {k, format::encode_entry(t.entries[0].view())}})),
            TableStatus::ok);
  Lookup l;
  EXPECT_EQ(table.lookup("10.1.2.3", "", l), LookupStatus::corrupt);
  EXPECT_EQ(table.lookup("10.1.2.4", "", l), LookupStatus::ok);
}

TEST(LimitsTable, EveryEntryOfABigTableIsFound) {
  // enough entries for hash collisions and probe runs that wrap around
  std::string text = "default rcpt=1/1d\n";
  for (int i = 0; i < 3000; ++i) text += "user" + std::to_string(i) + "@example.com rcpt=" + std::to_string(i + 1) + "/1h\n";
  for (int i = 0; i < 2000; ++i)
    text += "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".0/24 rcpt=" + std::to_string(i + 1) + "/1d\n";
  auto b = build(text);
  Lookup l;
  for (int i = 0; i < 3000; ++i) {
    ASSERT_EQ(b->table.lookup("192.0.2.1", "user" + std::to_string(i) + "@example.com", l), LookupStatus::ok);
    ASSERT_EQ(l.relay().size(), 1u);
    ASSERT_EQ(l.relay()[0].rcpt->at[0].limit, static_cast<std::uint32_t>(i + 1)) << i;
  }
  for (int i = 0; i < 2000; ++i) {
    std::string ip = "10." + std::to_string(i / 250) + "." + std::to_string(i % 250) + ".77";
    ASSERT_EQ(b->table.lookup(ip, "", l), LookupStatus::ok);
    ASSERT_EQ(l.relay()[0].rcpt->at[0].limit, static_cast<std::uint32_t>(i + 1)) << ip;
  }
  ASSERT_EQ(b->table.lookup("10.9.9.9", "nobody@example.com", l), LookupStatus::ok);
  EXPECT_EQ(l.relay()[0].kind, Kind::fallback);
}

TEST(LimitsTable, LargeRecordsAreReadWhole) {
  // a record longer than the first read (512 bytes): long names and texts
  Lookup l;
  auto c = build("user:" + std::string(255, 'v') + " rcpt=1/1s,2/1m,3/1h,4/1d msg=1/1s,2/1m,3/1h,4/1d\n"
                 "default st=1 tgtext=\"" + std::string(200, 't') + "\" group=" + std::string(64, 'g') + " authfail=1/1s,2/1m,3/1h,4/1d\n");
  ASSERT_EQ(c->table.lookup("192.0.2.1", std::string(255, 'V'), l), LookupStatus::ok);
  ASSERT_EQ(l.relay().size(), 1u);
  EXPECT_EQ(l.relay()[0].key, "u:" + std::string(255, 'v'));
  EXPECT_EQ(l.relay()[0].msg->count, 4);
  EXPECT_EQ(l.teergrube().text, std::string(200, 't'));
}
