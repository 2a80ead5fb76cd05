// spamt_compile and spamt_format: combining sources, determinism, a
// byte-order independent record format that rejects what it did not write.
#include <gtest/gtest.h>

#include <string>

#include "spamt_compile.h"
#include "spamt_format.h"
#include "spamt_test_table.h"

using namespace spamt;
using spamt_test::compile_text;

namespace {

std::vector<std::string> texts(const Table& t, bool warnings) {
  std::vector<std::string> out;
  for (const Diagnostic& d : t.diagnostics)
    if (d.warning == warnings) out.push_back(d.text());
  return out;
}

const CompiledEntry* find(const Table& t, std::string_view identity) {
  for (const CompiledEntry& e : t.entries)
    if (e.identity_text == identity) return &e;
  return nullptr;
}

constexpr std::string_view rich =
    "default rcpt=1000/1d msg=100/1d authfail=5/10m st=1500 stmax=120000 tgtext=\"slow down\"\n"
    "alice@example.com rcpt=100/1h,1000/1d action=421\n"
    "user:postmaster rcpt=0\n"
    "@example.com rcpt=5000/1d\n"
    "192.0.2.7 exempt\n"
    "192.0.2.0/24 rcpt=10/1m each st=2000 flush=yes prefix4=24 authfail=3/1h\n"
    "2001:db8::/32 msg=50/1h unauthenticated group=v6pool prefix6=48 tarpitrelay\n"
    "10.0.0.0/8:abuse:5000:::1:2:hold your horses!:\n";

}  // namespace

TEST(SpamtCompile, OneNativeLinePerIdentity) {
  Table t = compile_text(
      "192.0.2.7 rcpt=1/1h\n"
      "alice@example.com rcpt=1/1h\n"
      "192.0.2.7/32 st=100\n"
      "::ffff:192.0.2.7 st=100\n"
      "ALICE@Example.Com msg=1/1d\n"
      "default st=1\n"
      "DEFAULT rcpt=1/1d\n");
  std::vector<std::string> e = texts(t, false);
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0], "control/spamt:3: 192.0.2.7 is already defined at control/spamt:1 (give all its settings on one line)");
  EXPECT_EQ(e[1].rfind("control/spamt:4: 192.0.2.7 is already defined at control/spamt:1", 0), 0u);
  EXPECT_EQ(e[2].rfind("control/spamt:5: alice@example.com is already defined at control/spamt:2", 0), 0u);
  EXPECT_EQ(e[3].rfind("control/spamt:7: default is already defined at control/spamt:6", 0), 0u);
  EXPECT_FALSE(t.ok());
}

TEST(SpamtCompile, SpamthrottleFirstBlockLineAndLastDefaultLineWin) {
  Table t = compile_text(
      "::100::::::\n"
      "192.0.2.0/24::200::::::\n"
      "192.0.2.0/24::300::::::\n"
      "192.0.2.9/24::400::::::\n"
      "::500::::::\n");
  EXPECT_TRUE(t.ok());
  std::vector<std::string> w = texts(t, true);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0], "control/spamt:3: warning: ignored: spamthrottle used the first line for 192.0.2.0/24, at control/spamt:2");
  EXPECT_EQ(w[1].rfind("control/spamt:4: warning: ignored:", 0), 0u);
  EXPECT_EQ(w[2], "control/spamt:5: warning: this default line replaces the one at control/spamt:1 (spamthrottle used the last default line)");
  EXPECT_EQ(find(t, "192.0.2.0/24")->teergrube->st_ms, 200u);
  EXPECT_EQ(find(t, "default")->teergrube->st_ms, 500u);
  EXPECT_TRUE(find(t, "default")->teergrube->spamthrottle);
  EXPECT_FALSE(compile_text("192.0.2.0/24 st=1\n").entries[0].teergrube->spamthrottle);
}

TEST(SpamtCompile, RelaylimitsLastLineWins) {
  Table t = compile_text("", ":1000\ninfo@example.com:5\nINFO@example.com:6\n:2000\n");
  EXPECT_TRUE(t.ok());
  std::vector<std::string> w = texts(t, true);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], "control/relaylimits:3: warning: info@example.com replaces the line at control/relaylimits:2 (the last line for a key wins)");
  EXPECT_EQ(find(t, "info@example.com")->relay->rcpt.at[0].limit, 6u);
  EXPECT_EQ(find(t, "default")->relay->rcpt.at[0].limit, 2000u);
  EXPECT_EQ(find(t, "default")->relay_origin, "control/relaylimits:4");
}

TEST(SpamtCompile, SourcesCombinePerKindOfSetting) {
  // different kinds of settings for one identity merge
  Table ok = compile_text(
      "default st=1000\n"
      "192.0.2.0/24::2000::::::\n"
      "192.0.2.0/24 rcpt=10/1h\n",
      ":1000\n");
  EXPECT_TRUE(ok.ok()) << texts(ok, false)[0];
  const CompiledEntry* net = find(ok, "192.0.2.0/24");
  ASSERT_TRUE(net);
  EXPECT_TRUE(net->relay);
  EXPECT_EQ(net->relay_origin, "control/spamt:3");
  EXPECT_EQ(net->teergrube->st_ms, 2000u);
  EXPECT_EQ(net->teergrube_origin, "control/spamt:2");
  const CompiledEntry* def = find(ok, "default");
  EXPECT_EQ(def->relay_origin, "control/relaylimits:1");
  EXPECT_EQ(def->teergrube_origin, "control/spamt:1");

  // the same kind from two sources is an error naming both
  Table bad = compile_text(
      "alice@example.com rcpt=10/1h\n"
      "default rcpt=1/1d\n"
      "192.0.2.0/24 st=5\n"
      "192.0.2.0/24::2000::::::\n",
      "alice@example.com:5\n:1000\n");
  std::vector<std::string> e = texts(bad, false);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0], "control/spamt:4: 192.0.2.0/24 already has teergrube settings from control/spamt:3 (control/spamt)");
  EXPECT_EQ(e[1], "control/relaylimits:1: alice@example.com already has relay limits from control/spamt:1 (control/spamt)");
  EXPECT_EQ(e[2], "control/relaylimits:2: default already has relay limits from control/spamt:2 (control/spamt)");
}

TEST(SpamtCompile, EntriesAreSortedAndIndexed) {
  Table t = compile_text(rich);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t.entries.size(), 8u);
  for (std::size_t i = 1; i < t.entries.size(); ++i) EXPECT_LT(t.entries[i - 1].key(), t.entries[i].key());
  format::Index ix = t.index();
  EXPECT_EQ(ix.entries, 8u);
  EXPECT_TRUE(ix.has_default && ix.has_users && ix.has_domains);
  EXPECT_TRUE(ix.v4[format::relay].has(32));
  EXPECT_TRUE(ix.v4[format::relay].has(24));
  EXPECT_FALSE(ix.v4[format::relay].has(8));  // 10.0.0.0/8 is teergrube only
  EXPECT_TRUE(ix.v4[format::teergrube].has(8));
  EXPECT_TRUE(ix.v4[format::teergrube].has(24));
  EXPECT_FALSE(ix.v4[format::teergrube].has(32));
  EXPECT_TRUE(ix.v4[format::authfail].has(24));
  EXPECT_TRUE(ix.v6[format::relay].has(32));
  EXPECT_FALSE(ix.v6[format::relay].has(24));
}

TEST(SpamtCompile, IpEntriesKnowTheirAncestors) {
  Table t = compile_text(
      "10.0.0.0/8 rcpt=8/1h unauthenticated\n"
      "10.0.0.0/7 rcpt=7/1h\n"
      "10.1.0.0/16 st=100\n"
      "10.1.2.0/24 authfail=1/1h\n"
      "10.1.2.3 exempt\n"
      "2001:db8::/32 st=1\n"
      "2001:db8:1::/48 rcpt=1/1h\n");
  ASSERT_TRUE(t.ok());
  auto up = [&](std::string_view id) {
    const CompiledEntry* e = find(t, id);
    return std::vector<int>(e->ancestors, e->ancestors + 4);
  };
  const int none = format::no_ancestor;
  // relay, relay for authenticated clients, teergrube, authfail
  EXPECT_EQ(up("10.1.2.3"), (std::vector<int>{8, 7, 16, 24}));
  EXPECT_EQ(up("10.1.2.0/24"), (std::vector<int>{8, 7, 16, none}));
  EXPECT_EQ(up("10.0.0.0/8"), (std::vector<int>{7, 7, none, none}));
  EXPECT_EQ(up("10.0.0.0/7"), (std::vector<int>{none, none, none, none}));
  EXPECT_EQ(up("2001:db8:1::/48"), (std::vector<int>{none, none, 32, none}));
  EXPECT_EQ(up("2001:db8::/32"), (std::vector<int>{none, none, none, none}));
}

TEST(SpamtCompile, Deterministic) {
  Table a = compile_text(rich, ":1000\nbob@example.com:7\n");
  Table b = compile_text(rich, ":1000\nbob@example.com:7\n");
  std::string ba = spamt_test::cdb_bytes(a);
  std::string bb = spamt_test::cdb_bytes(b);
  EXPECT_EQ(ba, bb);
  EXPECT_GT(ba.size(), 2048u);
}

TEST(SpamtFormat, RecordsRoundTrip) {
  Table t = compile_text(rich, "bob@example.com:7\n");
  ASSERT_TRUE(t.ok());
  for (const CompiledEntry& e : t.entries) {
    Entry view = e.view();
    std::string bytes = format::encode_entry(view);
    Entry back;
    ASSERT_TRUE(format::decode_entry(bytes, back)) << e.identity_text;
    EXPECT_EQ(back, view) << e.identity_text;
  }
  format::Index ix = t.index();
  format::Index back;
  ASSERT_TRUE(format::decode_index(format::encode_index(ix), back));
  EXPECT_EQ(back, ix);
}

TEST(SpamtFormat, ExplicitLittleEndian) {
  Table t = compile_text("192.0.2.0/24 rcpt=258/1h st=65536\n");
  Entry v = t.entries[0].view();
  std::string b = format::encode_entry(v);
  auto byte = [&b](std::size_t i) { return static_cast<unsigned>(static_cast<unsigned char>(b[i])); };
  EXPECT_EQ(byte(0), 4u);                   // kind network
  EXPECT_EQ(byte(1), 3u);                   // relay + teergrube
  EXPECT_EQ(byte(6) | byte(7) << 8, 451u);  // action, little-endian
  EXPECT_EQ(byte(13), 4u);                  // IPv4
  EXPECT_EQ(byte(14), 24u);                 // prefix
  EXPECT_EQ(byte(16), 0u);                  // st = 65536 = 00 00 01 00
  EXPECT_EQ(byte(18), 1u);
  EXPECT_EQ(byte(32) | byte(33) << 8, 12u);  // length of "192.0.2.0/24"
  EXPECT_EQ(byte(48), 192u);  // address
  EXPECT_EQ(byte(64), 255u);  // no ancestors
  EXPECT_EQ(byte(68), 255u);  // (five ancestors since version 2)
  EXPECT_EQ(byte(69), 2u);    // first rcpt window: 258 = 02 01 00 00
  EXPECT_EQ(byte(70), 1u);
  std::string ix = format::encode_index(t.index());
  EXPECT_EQ(ix.substr(0, 4), std::string("\x01\x00\x00\x00", 4));  // one entry
  // IPv4 relay prefix set: bit 24 of the first u64 = byte 3 of it, value 1
  EXPECT_EQ(static_cast<unsigned char>(ix[8 + 3]), 1u);
}

TEST(SpamtFormat, RejectsEveryTruncationAndBadFields) {
  Table t = compile_text(rich);
  for (const CompiledEntry& e : t.entries) {
    std::string b = format::encode_entry(e.view());
    Entry out;
    for (std::size_t n = 0; n < b.size(); ++n) EXPECT_FALSE(format::decode_entry(b.substr(0, n), out)) << n;
    EXPECT_FALSE(format::decode_entry(b + "x", out));
  }
  std::string b = format::encode_entry(find(t, "192.0.2.0/24")->view());
  Entry out;
  auto mutated = [&](std::size_t at, char value) {
    std::string m = b;
    m[at] = value;
    return format::decode_entry(m, out);
  };
  EXPECT_TRUE(mutated(0, 4));
  EXPECT_FALSE(mutated(0, 0));   // kind
  EXPECT_FALSE(mutated(0, 6));
  EXPECT_FALSE(mutated(0, 1));   // a user with teergrube settings
  EXPECT_FALSE(mutated(1, 0));   // no settings at all
  EXPECT_FALSE(mutated(2, 8));   // unknown relay flag
  EXPECT_FALSE(mutated(3, 5));   // too many windows
  EXPECT_FALSE(mutated(6, 0x2c));  // action 556
  EXPECT_FALSE(mutated(10, 33));   // prefix4
  EXPECT_FALSE(mutated(13, 5));    // family
  EXPECT_FALSE(mutated(14, 33));   // network prefix
  EXPECT_FALSE(mutated(15, 1));    // reserved
  EXPECT_FALSE(mutated(48 + 3, 1));  // host bits set in 192.0.2.0/24
  EXPECT_FALSE(mutated(46, 1));      // reserved
  EXPECT_FALSE(mutated(32, 40));     // a string length beyond the record
  format::Index ix;
  EXPECT_FALSE(format::decode_index("short", ix));
  std::string good = format::encode_index(t.index());
  EXPECT_TRUE(format::decode_index(good, ix));
  EXPECT_FALSE(format::decode_index(good.substr(1), ix));
  std::string bad = good;
  bad[8 + 4] = 2;  // IPv4 prefix 33
  EXPECT_FALSE(format::decode_index(bad, ix));
}

TEST(SpamtFormat, PrefixSetHighest) {
  format::PrefixSet s;
  EXPECT_EQ(s.highest(128), -1);
  for (unsigned p : {0u, 8u, 63u, 64u, 127u, 128u}) s.add(p);
  EXPECT_EQ(s.highest(128), 128);
  EXPECT_EQ(s.highest(127), 127);
  EXPECT_EQ(s.highest(126), 64);
  EXPECT_EQ(s.highest(64), 64);
  EXPECT_EQ(s.highest(63), 63);
  EXPECT_EQ(s.highest(62), 8);
  EXPECT_EQ(s.highest(7), 0);
  EXPECT_EQ(s.highest(0), 0);
  EXPECT_EQ(s.highest(-1), -1);
}
