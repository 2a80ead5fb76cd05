// Client limits in the limits table (issue 17): conn=, connrate=, inmsg=,
// inrcpt=, tlsrate=, authrate=, exempt and each - their syntax, which
// entries take them, the cdb round trip, lookup and explain.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "spamt_explain.h"
#include "spamt_test_table.h"

using namespace spamt;
using spamt_test::build;
using spamt_test::compile_text;

namespace {

bool has(const std::string& text, std::string_view needle) { return text.find(needle) != std::string::npos; }

std::string first_error(std::string_view line) {
  ParsedFile f = parse_spamt(line, "control/spamt");
  for (const Diagnostic& d : f.diagnostics)
    if (!d.warning) return d.text();
  return "";
}

Definition only_definition(std::string_view line) {
  ParsedFile f = parse_spamt(line, "control/spamt");
  EXPECT_TRUE(f.ok()) << (f.diagnostics.empty() ? "" : f.diagnostics[0].text());
  EXPECT_EQ(f.definitions.size(), 1u);
  return f.definitions.empty() ? Definition{} : f.definitions[0];
}

Windows w(std::uint32_t limit, std::uint32_t seconds) {
  Windows ws;
  ws.count = 1;
  ws.at[0] = Window{limit, seconds};
  return ws;
}

}  // namespace

TEST(SpamtClient, ParsesEverySetting) {
  Definition d = only_definition(
      "192.0.2.0/24 conn=3 connrate=20/1m,200/1h inmsg=50/1h inrcpt=500/1h tlsrate=10/1m authrate=5/1m each\n");
  ASSERT_TRUE(d.client.has_value());
  EXPECT_FALSE(d.relay.has_value());  // each went to the client kind only
  const Client& c = *d.client;
  EXPECT_EQ(c.conn, 3u);
  ASSERT_EQ(c.connrate.count, 2);
  EXPECT_EQ(c.connrate.at[0], (Window{20, 60}));
  EXPECT_EQ(c.connrate.at[1], (Window{200, 3600}));
  EXPECT_EQ(c.inmsg, w(50, 3600));
  EXPECT_EQ(c.inrcpt, w(500, 3600));
  EXPECT_EQ(c.tlsrate, w(10, 60));
  EXPECT_EQ(c.authrate, w(5, 60));
  EXPECT_TRUE(c.each);
  EXPECT_FALSE(c.exempt);
  EXPECT_FALSE(c.unlimited());
}

TEST(SpamtClient, EachGoesToTheKindsTheLineGives) {
  Definition both = only_definition("192.0.2.0/24 rcpt=10/1h conn=2 each");
  ASSERT_TRUE(both.relay && both.client);
  EXPECT_TRUE(both.relay->each);
  EXPECT_TRUE(both.client->each);
  Definition relay_only = only_definition("192.0.2.0/24 rcpt=10/1h each");
  EXPECT_FALSE(relay_only.client.has_value());
  EXPECT_TRUE(relay_only.relay->each);
}

TEST(SpamtClient, ExemptCarriesTheClientKindToo) {
  Definition d = only_definition("10.0.0.0/8 exempt");
  ASSERT_TRUE(d.relay && d.client);
  EXPECT_TRUE(d.relay->exempt);
  EXPECT_TRUE(d.client->exempt);
  EXPECT_TRUE(d.client->unlimited());
  Definition dflt = only_definition("default exempt");
  ASSERT_TRUE(dflt.client.has_value());
  // user and domain entries: relay only (client limits are per address)
  Definition user = only_definition("alice@example.com exempt");
  EXPECT_TRUE(user.relay && user.relay->exempt);
  EXPECT_FALSE(user.client.has_value());
}

TEST(SpamtClient, ZeroMeansNoLimit) {
  Definition d = only_definition("192.0.2.7 conn=0 connrate=0");
  ASSERT_TRUE(d.client.has_value());
  EXPECT_TRUE(d.client->unlimited());
}

TEST(SpamtClient, Errors) {
  struct Case {
    const char* line;
    const char* message;
  } cases[] = {
      {"alice@example.com conn=3", "conn= applies to IP entries and default only, not to user alice@example.com"},
      {"@example.com inrcpt=10/1h", "inrcpt= applies to IP entries and default only, not to domain @example.com"},
      {"192.0.2.7 conn", "conn needs a value"},
      {"192.0.2.7 conn=-1", "conn=-1: must be a number 0 to 1000000"},
      {"192.0.2.7 conn=1000001", "must be a number 0 to 1000000"},
      {"192.0.2.7 conn=3x", "must be a number"},
      {"192.0.2.7 connrate=20", "needs a period"},
      {"192.0.2.7 inmsg=", "expected N/PERIOD"},
      {"192.0.2.7 tlsrate=1/0s", "tlsrate="},
      {"192.0.2.7 authrate=1/1m authrate=2/1h", "authrate is given twice"},
      {"192.0.2.7 conn=1 conn=2", "conn is given twice"},
      {"192.0.2.7 exempt conn=3", "exempt cannot be combined"},
      {"192.0.2.7 exempt inmsg=3/1h", "exempt cannot be combined"},
      {"192.0.2.7 conn=3 each", "each applies to network entries only"},
      {"default conn=3 each", "each applies to network entries only"},
      {"192.0.2.7 conn=3 unauthenticated", "unauthenticated needs rcpt=, msg= or exempt"},
  };
  for (const Case& c : cases) {
    std::string e = first_error(c.line);
    EXPECT_TRUE(has(e, c.message)) << c.line << " -> " << e;
  }
}

TEST(SpamtClient, TwoFilesOrLinesCannotBothGiveThem) {
  Table t = compile_text("192.0.2.7 conn=3\n192.0.2.7 conn=4\n");
  EXPECT_FALSE(t.ok());
}

TEST(SpamtClient, RoundTripThroughTheCdb) {
  auto b = build(
      "default conn=50 connrate=100/1m\n"
      "192.0.2.0/24 conn=3 inmsg=5/1h inrcpt=50/1h tlsrate=7/1m authrate=9/1m\n"
      "198.51.100.0/24 conn=2 each\n"
      "10.0.0.0/8 exempt\n");
  for (const CompiledEntry& e : b->compiled.entries) {
    Entry view = e.view();
    Entry back;
    ASSERT_TRUE(format::decode_entry(format::encode_entry(view), back)) << e.identity_text;
    EXPECT_EQ(back, view) << e.identity_text;
    EXPECT_TRUE(back.has_client) << e.identity_text;
  }
  format::Index back;
  ASSERT_TRUE(format::decode_index(format::encode_index(b->compiled.index()), back));
  EXPECT_EQ(back, b->compiled.index());
  EXPECT_TRUE(back.v4[format::client].has(24));
  EXPECT_TRUE(back.v4[format::client].has(8));
  EXPECT_FALSE(back.v4[format::relay].has(24));
}

TEST(SpamtClient, DecodeRejectsClientFieldsWithoutTheKind) {
  Table t = compile_text("192.0.2.7 conn=3 st=100\n");
  Entry v = t.entries[0].view();
  std::string bytes = format::encode_entry(v);
  Entry back;
  ASSERT_TRUE(format::decode_entry(bytes, back));
  std::string no_kind = bytes;
  no_kind[1] = static_cast<char>(no_kind[1] & ~8);  // the client bit off, its section still there
  EXPECT_FALSE(format::decode_entry(no_kind, back));
  std::string flags = bytes;
  flags[15] = 4;  // an unknown client flag
  EXPECT_FALSE(format::decode_entry(flags, back));
  for (std::size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(format::decode_entry(bytes.substr(0, n), back)) << n;
}

TEST(SpamtClient, LookupAddressNetworkAndDefault) {
  auto b = build(
      "default conn=50 connrate=100/1m\n"
      "192.0.2.0/24 conn=3 inrcpt=50/1h\n"
      "192.0.2.7 conn=1\n"
      "198.51.100.0/24 conn=2 each\n"
      "203.0.113.0/24 st=2000\n"  // a teergrube-only entry does not hide the default's client limits
      "10.0.0.0/8 exempt\n");
  Lookup l;
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().limits->conn, 1u);
  EXPECT_EQ(l.client().key, "a:192.0.2.7");
  EXPECT_EQ(l.client().entry->identity, "192.0.2.7");

  ASSERT_EQ(b->table.lookup("192.0.2.8", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().limits->conn, 3u);
  EXPECT_EQ(l.client().limits->inrcpt, w(50, 3600));
  EXPECT_EQ(l.client().key, "n:192.0.2.0/24");  // the block shares one count

  ASSERT_EQ(b->table.lookup("198.51.100.9", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().limits->conn, 2u);
  EXPECT_EQ(l.client().key, "a:198.51.100.9");  // each: per client

  ASSERT_EQ(b->table.lookup("203.0.113.5", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().limits->conn, 50u);
  EXPECT_EQ(l.client().entry->kind, Kind::fallback);
  EXPECT_EQ(l.client().key, "a:203.0.113.5");
  EXPECT_EQ(l.teergrube().st_ms, 2000u);

  ASSERT_EQ(b->table.lookup("10.1.2.3", "", l), LookupStatus::ok);
  EXPECT_TRUE(l.client().limits->exempt);
  EXPECT_TRUE(l.client().limits->unlimited());

  // the lookup with a user (after AUTH) gives the same client limits
  ASSERT_EQ(b->table.lookup("192.0.2.8", "alice@example.com", l), LookupStatus::ok);
  EXPECT_EQ(l.client().limits->conn, 3u);
}

TEST(SpamtClient, NoClientLimitsAnywhere) {
  auto b = build("default rcpt=100/1d\n192.0.2.0/24 st=100\n");
  Lookup l;
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().entry, nullptr);
  EXPECT_TRUE(l.client().limits->unlimited());
  EXPECT_FALSE(b->table.may_limit_clients(ip::Family::v4));
  EXPECT_FALSE(b->table.may_limit_clients(ip::Family::v6));
}

TEST(SpamtClient, MayLimitClientsPerFamily) {
  auto v4 = build("192.0.2.0/24 conn=3\n");
  EXPECT_TRUE(v4->table.may_limit_clients(ip::Family::v4));
  EXPECT_FALSE(v4->table.may_limit_clients(ip::Family::v6));
  auto dflt = build("default conn=3\n");
  EXPECT_TRUE(dflt->table.may_limit_clients(ip::Family::v4));
  EXPECT_TRUE(dflt->table.may_limit_clients(ip::Family::v6));
  auto exempt_default = build("default exempt\n");  // carries the kind but limits nobody
  EXPECT_FALSE(exempt_default->table.may_limit_clients(ip::Family::v6));
}

TEST(SpamtClient, Ipv6CountsPerSlash64) {
  auto b = build(
      "default conn=10\n"
      "2001:db8::/32 conn=4\n"
      "2001:db8:5::/48 conn=2 each\n");
  Lookup l;
  ASSERT_EQ(b->table.lookup("2001:db8:1:2::7", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().limits->conn, 4u);
  EXPECT_EQ(l.client().key, "n:2001:db8::/32");
  ASSERT_EQ(b->table.lookup("2001:db8:5:9::1", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().key, "n:2001:db8:5:9::/64");  // each: the client's /64
  std::string key_a(l.client().key);
  ASSERT_EQ(b->table.lookup("2001:db8:5:9:ffff::2", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().key, key_a);  // same /64, same count
  ASSERT_EQ(b->table.lookup("2a00::1", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().limits->conn, 10u);
  EXPECT_EQ(l.client().key, "n:2a00::/64");  // the default: per /64
}

TEST(SpamtClient, Ipv6CountsPerTheTablesPrefix6) {
  auto b = build(
      "default conn=10 prefix6=48\n"
      "2001:db8:5::/48 conn=2 each prefix6=56\n"
      "2001:db8:7::/48 conn=3\n"
      "192.0.2.0/24 conn=2 each prefix4=24\n");
  Lookup l;
  // the default's prefix6: clients of one /48 share a count
  ASSERT_EQ(b->table.lookup("2a00:1:2:3::1", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().key, "n:2a00:1:2::/48");
  ASSERT_EQ(b->table.lookup("2a00:1:2:ff::9", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().key, "n:2a00:1:2::/48");
  // each, with the entry's own prefix6
  ASSERT_EQ(b->table.lookup("2001:db8:5:1aa::1", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().key, "n:2001:db8:5:100::/56");
  // a block without each: the block, whatever prefix6 says
  ASSERT_EQ(b->table.lookup("2001:db8:7:1::1", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().key, "n:2001:db8:7::/48");
  // IPv4: per address, prefix4= is not used
  ASSERT_EQ(b->table.lookup("192.0.2.7", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client().key, "a:192.0.2.7");
  // relay budgets and authfail keep the /64
  EXPECT_EQ(b->table.lookup("2a00:1:2:3::1", "", l), LookupStatus::ok);
  EXPECT_EQ(l.client_key(), "n:2a00:1:2:3::/64");
  EXPECT_EQ(l.authfail().key, "n:2a00:1:2:3::/64");
}

TEST(SpamtClient, Explain) {
  auto b = build(
      "default conn=50 connrate=100/1m\n"
      "192.0.2.0/24 conn=3 inrcpt=50/1h\n"
      "10.0.0.0/8 exempt\n");
  std::string out;
  ASSERT_TRUE(explain(b->table, "192.0.2.7", "", out));
  EXPECT_TRUE(has(out, "  network 192.0.2.0/24: client limits (control/spamt:2)\n")) << out;
  EXPECT_TRUE(has(out, "client limits (every client: connections at once and rates; not per user):\n"
                       "  conn=3 inrcpt=50/1h from network 192.0.2.0/24 (control/spamt:2), counted as n:192.0.2.0/24\n"
                       "  connections at once are counted on this host only\n"))
      << out;
  ASSERT_TRUE(explain(b->table, "198.51.100.1", "", out));
  EXPECT_TRUE(has(out, "  conn=50 connrate=100/1m from default (control/spamt:1), counted as a:198.51.100.1\n")) << out;
  ASSERT_TRUE(explain(b->table, "10.0.0.1", "", out));
  EXPECT_TRUE(has(out, "  exempt from network 10.0.0.0/8 (control/spamt:3)\n")) << out;
  auto none = build("default rcpt=1/1h\n");
  ASSERT_TRUE(explain(none->table, "10.0.0.1", "", out));
  EXPECT_TRUE(has(out, "  no entry with client limits applies: not limited\n")) << out;
}
