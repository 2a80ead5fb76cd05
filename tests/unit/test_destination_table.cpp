// control/concurrencydomains: parsing and which line a domain or route falls under.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "destination_table.h"

namespace {

using destinations::Kind;
using destinations::Table;

Table parse_ok(std::string_view text) {
  std::vector<destinations::Error> errors;
  std::optional<Table> t = Table::parse(text, &errors);
  EXPECT_TRUE(t.has_value());
  for (const auto& e : errors) ADD_FAILURE() << "line " << e.line_no << ": " << e.message;
  return t ? std::move(*t) : Table{};
}

// The errors of a bad file, as "N: message".
std::vector<std::string> errors_of(std::string_view text) {
  std::vector<destinations::Error> errors;
  EXPECT_FALSE(Table::parse(text, &errors).has_value());
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(std::to_string(e.line_no) + ": " + e.message);
  return out;
}

std::string dest_of(const Table& t, int line) {
  return line == Table::none ? "none" : t.lines()[line].destination;
}

ip::Address addr(const char* text) { return *ip::parse(text); }

}  // namespace

TEST(DestinationTable, EveryKindOfLine) {
  Table t = parse_ok(
      "# comment line\n"
      "\n"
      "*   5\n"
      "Example.COM. 10 rate=100/1h failures=3 pause=10m   # trailing comment\n"
      ".example.net\t20\n"
      "yahoo.com,yahoo.co.uk,.ymail.com 30\n"
      "mx:.Google.com 40\n"
      "mx:mx1.hoster.example 8\n"
      "ip:192.0.2.0/24 15\n"
      "ip:2001:db8::/32 16\n");
  ASSERT_EQ(t.lines().size(), 8u);
  EXPECT_EQ(t.lines()[0].kind, Kind::fallback);
  EXPECT_EQ(t.lines()[0].limit, 5u);
  EXPECT_EQ(t.lines()[0].line_no, 3u);
  const auto& ex = t.lines()[1];
  EXPECT_EQ(ex.kind, Kind::domain);
  EXPECT_EQ(ex.destination, "example.com");
  EXPECT_EQ(ex.limit, 10u);
  ASSERT_EQ(ex.rate.count, 1u);
  EXPECT_EQ(ex.rate.at[0].limit, 100u);
  EXPECT_EQ(ex.rate.at[0].seconds, 3600u);
  EXPECT_EQ(ex.backoff.failures, 3u);
  EXPECT_EQ(ex.backoff.pause_seconds, 600u);
  EXPECT_EQ(t.lines()[2].kind, Kind::suffix);
  EXPECT_EQ(t.lines()[2].destination, ".example.net");
  EXPECT_EQ(t.lines()[3].kind, Kind::group);
  EXPECT_EQ(t.lines()[3].destination, "yahoo.com,yahoo.co.uk,.ymail.com");
  EXPECT_EQ(t.lines()[4].kind, Kind::mx_suffix);
  EXPECT_EQ(t.lines()[4].destination, "mx:.google.com");
  EXPECT_EQ(t.lines()[5].kind, Kind::mx_host);
  EXPECT_EQ(t.lines()[6].kind, Kind::network);
  EXPECT_EQ(t.lines()[6].destination, "ip:192.0.2.0/24");
  EXPECT_EQ(t.lines()[7].destination, "ip:2001:db8::/32");
  EXPECT_TRUE(t.has_route_lines());
  EXPECT_EQ(t.fallback(), 0);
}

TEST(DestinationTable, DefaultsWhenNoSettingIsGiven) {
  Table t = parse_ok("example.com 3\n");
  const auto& l = t.lines()[0];
  EXPECT_TRUE(l.rate.empty());
  EXPECT_EQ(l.backoff.failures, 5u);
  EXPECT_EQ(l.backoff.pause_seconds, 300u);
  EXPECT_FALSE(t.has_route_lines());
  EXPECT_EQ(t.fallback(), Table::none);
}

TEST(DestinationTable, AnEmptyFileHasNoLines) {
  EXPECT_TRUE(parse_ok("").empty());
  EXPECT_TRUE(parse_ok("# nothing\n   \n\t# still nothing\n").empty());
}

TEST(DestinationTable, MostSpecificWins) {
  Table t = parse_ok(
      "* 1\n"
      "a.example.com 2\n"
      ".example.com 3\n"
      ".b.example.com 4\n"
      "x.example,y.example 5\n"
      "mx:.google.com 6\n"
      "mx:aspmx.l.google.com 7\n"
      "ip:192.0.2.0/24 8\n"
      "ip:192.0.2.128/25 9\n");
  // domain lines: exact, then the longest suffix
  EXPECT_EQ(dest_of(t, t.by_domain("a.example.com")), "a.example.com");
  EXPECT_EQ(dest_of(t, t.by_domain("example.com")), ".example.com");  // the suffix covers its domain
  EXPECT_EQ(dest_of(t, t.by_domain("c.example.com")), ".example.com");
  EXPECT_EQ(dest_of(t, t.by_domain("z.b.example.com")), ".b.example.com");
  EXPECT_EQ(dest_of(t, t.by_domain("b.example.com")), ".b.example.com");
  EXPECT_EQ(dest_of(t, t.by_domain("y.example")), "x.example,y.example");
  EXPECT_EQ(dest_of(t, t.by_domain("notexample.com")), "none");  // labels, not bytes
  EXPECT_EQ(dest_of(t, t.by_domain("other.org")), "none");
  // routes: exact host, longest host suffix, then the longest block
  auto a = addr("192.0.2.200");
  auto b = addr("192.0.2.7");
  EXPECT_EQ(dest_of(t, t.by_route("aspmx.l.google.com", &a)), "mx:aspmx.l.google.com");
  EXPECT_EQ(dest_of(t, t.by_route("alt1.aspmx.l.google.com", &a)), "mx:.google.com");
  EXPECT_EQ(dest_of(t, t.by_route("mx.other.org", &a)), "ip:192.0.2.128/25");
  EXPECT_EQ(dest_of(t, t.by_route("mx.other.org", &b)), "ip:192.0.2.0/24");
  EXPECT_EQ(dest_of(t, t.by_route("", &b)), "ip:192.0.2.0/24");
  auto c = addr("198.51.100.1");
  EXPECT_EQ(dest_of(t, t.by_route("mx.other.org", &c)), "none");
  EXPECT_EQ(dest_of(t, t.by_route("mx.other.org", nullptr)), "none");
  EXPECT_EQ(dest_of(t, t.fallback()), "*");
}

TEST(DestinationTable, IPv6Blocks) {
  Table t = parse_ok("ip:2001:db8::/32 1\nip:2001:db8:1::/48 2\n");
  auto a = addr("2001:db8:1::25");
  auto b = addr("2001:db8:2::25");
  auto v4 = addr("192.0.2.1");
  EXPECT_EQ(dest_of(t, t.by_route("", &a)), "ip:2001:db8:1::/48");
  EXPECT_EQ(dest_of(t, t.by_route("", &b)), "ip:2001:db8::/32");
  EXPECT_EQ(dest_of(t, t.by_route("", &v4)), "none");
}

TEST(DestinationTable, CanonicalNames) {
  EXPECT_EQ(destinations::canonical_name("Example.COM."), "example.com");
  EXPECT_EQ(destinations::canonical_name("example.com"), "example.com");
}

TEST(DestinationTable, BadLinesAreReportedWithTheirNumbers) {
  auto e = errors_of(
      "example.com 5\n"
      "example.com\n"
      "bad..domain 3\n"
      "ok.example 70000\n"
      "ok2.example 3 speed=9\n"
      "ok3.example 3 rate=fast\n"
      "ok4.example 3 failures=-1\n"
      "ok5.example 3 pause=10\n"
      "ok6.example 3 rate=1/1h rate=2/1h\n"
      "example.com 4\n"
      "a.example,,b.example 2\n"
      "ip:192.0.2.7/24 2\n"
      "ip:300.1.1.1 2\n"
      "* 1\n"
      "* 2\n");
  std::vector<std::string> want_prefixes = {
      "2: expected DESTINATION LIMIT",
      "3: 'bad..domain' is not a valid domain",
      "4: limit '70000' must be a number 0 to 65000",
      "5: unknown setting 'speed=9'",
      "6: rate=fast: ",
      "7: failures=-1: must be a number",
      "8: pause=10: period '10' needs a unit",
      "9: rate= is given twice",
      "10: example.com is already on line 1",
      "11: 'a.example,,b.example' has an empty member",
      "12: 'ip:192.0.2.7/24' has host bits set; the block is ip:192.0.2.0/24",
      "13: 'ip:300.1.1.1' is not ip:ADDRESS",
      "15: '*' is already on line 14",
  };
  ASSERT_EQ(e.size(), want_prefixes.size()) << ::testing::PrintToString(e);
  for (std::size_t i = 0; i < e.size(); ++i)
    EXPECT_EQ(e[i].substr(0, want_prefixes[i].size()), want_prefixes[i]) << e[i];
}

TEST(DestinationTable, ANameMayBeListedOnceAcrossGroups) {
  auto e = errors_of("a.example,b.example 3\nc.example,b.example 4\nmx:m.example 1\nmx:M.example. 2\n");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0], "2: b.example is already on line 1");
  EXPECT_EQ(e[1], "4: mx:m.example is already on line 3");
  // a suffix and the same name as an exact domain are different claims
  Table t = parse_ok("example.com 1\n.example.com 2\n");
  EXPECT_EQ(dest_of(t, t.by_domain("example.com")), "example.com");
  EXPECT_EQ(dest_of(t, t.by_domain("www.example.com")), ".example.com");
}

TEST(DestinationTable, ErrorsAreCapped) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "bad!name 1\n";
  EXPECT_EQ(errors_of(text).size(), Table::max_errors);
}

TEST(DestinationTable, ZeroHoldsAndSeveralRateWindows) {
  Table t = parse_ok("paused.example 0\nlist.example 5 rate=10/1m,100/1h\n");
  EXPECT_EQ(t.lines()[0].limit, 0u);
  ASSERT_EQ(t.lines()[1].rate.count, 2u);
  EXPECT_EQ(t.lines()[1].rate.at[0].seconds, 60u);
  EXPECT_EQ(t.lines()[1].rate.at[1].seconds, 3600u);
}
