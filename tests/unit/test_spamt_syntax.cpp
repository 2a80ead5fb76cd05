// spamt_syntax: every form of control/spamt and control/relaylimits, and
// every error, reported as file:line.
#include <gtest/gtest.h>

#include <string>

#include "spamt_syntax.h"

using namespace spamt;

namespace {

ParsedFile spamt_text(std::string_view text) { return parse_spamt(text, "control/spamt"); }

// The one definition of a one-line file (fails the test otherwise).
Definition one(std::string_view line) {
  ParsedFile f = spamt_text(line);
  EXPECT_TRUE(f.ok()) << line << ": " << (f.diagnostics.empty() ? "" : f.diagnostics[0].text());
  EXPECT_EQ(f.definitions.size(), 1u) << line;
  return f.definitions.empty() ? Definition{} : f.definitions[0];
}

// The error text of a one-line file ("" when it has none).
std::string error_of(std::string_view line) {
  ParsedFile f = spamt_text(line);
  for (const Diagnostic& d : f.diagnostics)
    if (!d.warning) return d.text();
  return "";
}

bool has(const std::string& haystack, std::string_view needle) { return haystack.find(needle) != std::string::npos; }

Windows windows(std::initializer_list<Window> ws) {
  Windows w;
  for (const Window& x : ws) w.at[w.count++] = x;
  return w;
}

}  // namespace

// ---- identities -------------------------------------------------------------

TEST(SpamtSyntax, IdentityForms) {
  std::string err;
  auto u = parse_identity("Alice@Example.COM", &err);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->kind, Kind::user);
  EXPECT_EQ(u->name, "alice@example.com");  // the case rule: ASCII lower case, all of it
  EXPECT_EQ(u->text(), "alice@example.com");
  EXPECT_EQ(u->budget_key(), "u:alice@example.com");

  auto login = parse_identity("user:Postmaster", &err);
  ASSERT_TRUE(login);
  EXPECT_EQ(login->kind, Kind::user);
  EXPECT_EQ(login->budget_key(), "u:postmaster");
  EXPECT_EQ(*parse_identity("user:alice@example.com", &err), *u);

  auto d = parse_identity("@Example.com", &err);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, Kind::domain);
  EXPECT_EQ(d->text(), "@example.com");
  EXPECT_EQ(d->budget_key(), "d:example.com");

  auto a = parse_identity("192.0.2.7", &err);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, Kind::address);
  EXPECT_EQ(a->budget_key(), "a:192.0.2.7");
  EXPECT_EQ(parse_identity("192.0.2.7/32", &err)->kind, Kind::address);  // a /32 is an address

  auto n = parse_identity("192.0.2.0/24", &err);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->kind, Kind::network);
  EXPECT_EQ(n->budget_key(), "n:192.0.2.0/24");

  auto v6 = parse_identity("2001:DB8::/32", &err);
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->kind, Kind::network);
  EXPECT_EQ(v6->text(), "2001:db8::/32");
  EXPECT_EQ(parse_identity("2001:db8::1/128", &err)->kind, Kind::address);

  auto mapped = parse_identity("::ffff:192.0.2.7", &err);
  ASSERT_TRUE(mapped);
  EXPECT_EQ(mapped->text(), "192.0.2.7");

  EXPECT_EQ(parse_identity("default", &err)->kind, Kind::fallback);
  EXPECT_EQ(parse_identity("DEFAULT", &err)->kind, Kind::fallback);
  EXPECT_EQ(parse_identity("default", &err)->budget_key(), "");
}

TEST(SpamtSyntax, IdentityErrors) {
  struct Case {
    const char* word;
    const char* message;
  } cases[] = {
      {"192.0.2.7/24", "has host bits set; the block is 192.0.2.0/24"},
      {"2001:db8::1/32", "the block is 2001:db8::/32"},
      {"192.0.2.300", "is not an IP address or CIDR block"},
      {"192.0.2.0/33", "is not an IP address or CIDR block"},
      {"a@b@example.com", "more than one '@'"},
      {"alice@", "is not a domain name"},
      {"@", "is not a domain name"},
      {"@exa mple", "is not a domain name"},
      {"@example..com", "is not a domain name"},
      {"@.example.com", "is not a domain name"},
      {"alice@exam!ple.com", "is not a domain name"},
      {"al\"ice@example.com", "no '\"'"},
      {"defualt", "unknown identity 'defualt'"},
      {"user:", "user '': a login"},
      {"user:a@b@c", "a login of at most 255"},
      {"user:a@", "a login of at most 255"},
      {"user:@example.com", "a login of at most 255"},
  };
  for (const Case& c : cases) {
    std::string err;
    EXPECT_FALSE(parse_identity(c.word, &err)) << c.word;
    EXPECT_TRUE(has(err, c.message)) << c.word << " -> " << err;
  }
  std::string err;
  EXPECT_FALSE(parse_identity("user:" + std::string(256, 'a'), &err));
  EXPECT_TRUE(parse_identity("user:" + std::string(255, 'a'), &err));
  EXPECT_TRUE(parse_identity("user:\xc3\xa9lise", &err));  // UTF-8 logins are names too
}

// ---- values -----------------------------------------------------------------

TEST(SpamtSyntax, Periods) {
  std::string err;
  EXPECT_EQ(*parse_period("30s", &err), 30u);
  EXPECT_EQ(*parse_period("10m", &err), 600u);
  EXPECT_EQ(*parse_period("1h", &err), 3600u);
  EXPECT_EQ(*parse_period("h", &err), 3600u);
  EXPECT_EQ(*parse_period("1d", &err), 86400u);
  EXPECT_EQ(*parse_period("2w", &err), 1209600u);
  EXPECT_EQ(*parse_period("366d", &err), max_period_seconds);
  for (const char* bad : {"", "0s", "367d", "53w", "10", "1x", "-1h", "1.5h", "99999999999h", "1H"}) {
    EXPECT_FALSE(parse_period(bad, &err)) << bad;
  }
}

TEST(SpamtSyntax, Windows) {
  std::string err;
  EXPECT_EQ(*parse_windows("100/1h", &err), windows({{100, 3600}}));
  // sorted shortest first
  EXPECT_EQ(*parse_windows("1000/1d,10/1m,100/1h", &err), windows({{10, 60}, {100, 3600}, {1000, 86400}}));
  EXPECT_TRUE(parse_windows("0", &err)->empty());
  EXPECT_TRUE(parse_windows("0/1d", &err)->empty());
  EXPECT_EQ(*parse_windows("4294967295/1d", &err), windows({{4294967295u, 86400}}));
  struct Case {
    const char* value;
    const char* message;
  } cases[] = {
      {"", "expected N/PERIOD"},
      {"100", "needs a period"},
      {"x/1h", "must be a number"},
      {"4294967296/1h", "must be a number"},
      {"100/1h,", "must be a number"},
      {"10/1h,20/60m", "same period"},
      {"1/1s,2/2s,3/3s,4/4s,5/5s", "at most 4 windows"},
      {"0,100/1h", "cannot be combined"},
      {"100/1y", "needs a unit"},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(parse_windows(c.value, &err)) << c.value;
    EXPECT_TRUE(has(err, c.message)) << c.value << " -> " << err;
  }
}

// ---- native lines -----------------------------------------------------------

TEST(SpamtSyntax, NativeRelayLine) {
  Definition d = one("alice@example.com rcpt=100/1h,1000/1d msg=50/1d action=421");
  EXPECT_EQ(d.identity.kind, Kind::user);
  EXPECT_EQ(d.origin, "control/spamt:1");
  EXPECT_EQ(d.source, Source::native);
  ASSERT_TRUE(d.relay);
  EXPECT_EQ(d.relay->rcpt, windows({{100, 3600}, {1000, 86400}}));
  EXPECT_EQ(d.relay->msg, windows({{50, 86400}}));
  EXPECT_EQ(d.relay->action, 421);
  EXPECT_FALSE(d.relay->exempt);
  EXPECT_FALSE(d.teergrube);
  EXPECT_FALSE(d.authfail);

  EXPECT_EQ(one("@example.com rcpt=5000/1d").relay->action, 451);  // the default action
  EXPECT_EQ(one("192.0.2.0/24 rcpt=10/1m action=450").relay->action, 450);
  EXPECT_TRUE(one("10.0.0.0/8 exempt").relay->exempt);
  EXPECT_TRUE(one("192.0.2.0/24 rcpt=10/1h each").relay->each);
  EXPECT_TRUE(one("192.0.2.0/24 rcpt=10/1h unauthenticated").relay->unauthenticated);
  Definition unlimited = one("bob@example.com rcpt=0");
  ASSERT_TRUE(unlimited.relay);  // an entry that replaces the default with no limit
  EXPECT_TRUE(unlimited.relay->rcpt.empty());
  EXPECT_TRUE(unlimited.relay->msg.empty());
}

TEST(SpamtSyntax, NativeTeergrubeLine) {
  Definition d = one(
      "192.0.2.0/24 st=2000 stmax=120000 flush=yes strcpt=5 tg=10 tgtext=\"hold your horses: \\\"now\\\"\" "
      "prefix4=24 prefix6=48 tarpitrelay group=abuse");
  ASSERT_TRUE(d.teergrube);
  const Teergrube& t = *d.teergrube;
  EXPECT_EQ(t.set, field::all);
  EXPECT_EQ(t.st_ms, 2000u);
  EXPECT_EQ(t.stmax_ms, 120000u);
  EXPECT_TRUE(t.flush);
  EXPECT_EQ(t.strcpt, 5u);
  EXPECT_EQ(t.tg_seconds, 10u);
  EXPECT_EQ(d.tgtext, "hold your horses: \"now\"");
  EXPECT_EQ(t.prefix4, 24);
  EXPECT_EQ(t.prefix6, 48);
  EXPECT_TRUE(t.tarpitrelay);
  EXPECT_EQ(d.group, "abuse");
  EXPECT_FALSE(d.relay);

  Definition off = one("default st=0 flush=no tarpitrelay=no");
  EXPECT_EQ(off.teergrube->set, field::st | field::flush | field::tarpitrelay);
  EXPECT_FALSE(off.teergrube->tarpitrelay);
  Definition tabs = one("\t192.0.2.7\tst=1\t# a comment\t");
  EXPECT_EQ(tabs.teergrube->set, field::st);
}

TEST(SpamtSyntax, NativeAuthfailAndMixedLine) {
  Definition d = one("default rcpt=1000/1d authfail=5/10m,20/1d st=1500 # everyone else");
  EXPECT_EQ(d.identity.kind, Kind::fallback);
  ASSERT_TRUE(d.relay);
  ASSERT_TRUE(d.teergrube);
  ASSERT_TRUE(d.authfail);
  EXPECT_EQ(*d.authfail, windows({{5, 600}, {20, 86400}}));
  EXPECT_TRUE(one("192.0.2.7 authfail=0").authfail->empty());
}

TEST(SpamtSyntax, NativeErrors) {
  struct Case {
    const char* line;
    const char* message;
  } cases[] = {
      {"192.0.2.7", "no settings for 192.0.2.7"},
      {"192.0.2.7 # only a comment", "no settings"},
      {"192.0.2.7 rcpt", "rcpt needs a value"},
      {"192.0.2.7 rcpt=", "expected N/PERIOD"},
      {"192.0.2.7 rcpt=100", "needs a period"},
      {"192.0.2.7 speed=3", "unknown setting 'speed'"},
      {"192.0.2.7 rcpt=1/1h rcpt=2/1d", "rcpt is given twice"},
      {"192.0.2.7 exempt=yes", "exempt takes no value"},
      {"192.0.2.7 action=550 rcpt=1/1h", "must be 451, 450 or 421"},
      {"192.0.2.7 action=421", "action= needs rcpt= or msg="},
      {"192.0.2.7 exempt rcpt=1/1h", "exempt cannot be combined"},
      {"192.0.2.7 exempt action=421", "exempt cannot be combined"},
      {"192.0.2.7 rcpt=1/1h each", "each applies to network entries only"},
      {"default rcpt=1/1h each", "each applies to network entries only"},
      {"192.0.2.0/24 each", "each needs rcpt=, msg= or a client limit"},
      {"192.0.2.0/24 exempt each", "each needs rcpt=, msg= or a client limit"},
      {"alice@example.com rcpt=1/1h unauthenticated", "unauthenticated applies to IP entries only"},
      {"192.0.2.7 unauthenticated st=1", "unauthenticated needs rcpt=, msg= or exempt"},
      {"alice@example.com st=1000", "st= applies to IP entries and default only, not to user alice@example.com"},
      {"@example.com authfail=3/1h", "authfail= applies to IP entries and default only"},
      {"192.0.2.7 st=-1", "must be a number"},
      {"192.0.2.7 st=4294967296", "must be a number"},
      {"192.0.2.7 flush=1", "must be yes or no"},
      {"192.0.2.7 tarpitrelay=maybe", "must be yes or no"},
      {"192.0.2.7 prefix4=33", "must be a number 0 to 32"},
      {"192.0.2.7 prefix6=129", "must be a number 0 to 128"},
      {"192.0.2.7 tgtext=\"\"", "tgtext: must be 1 to 200"},
      {"192.0.2.7 tgtext=\"tab\there\"", "printable ASCII"},
      {"192.0.2.7 tgtext=\"unterminated", "unterminated quote"},
      {"192.0.2.7 tgtext=\"a\"b", "text after the closing quote"},
      {"192.0.2.7 tgtext=a\"b\"", "a quote may only start a value"},
      {"192.0.2.7 group=/abs", "must be 1 to 64"},
      {"192.0.2.7 group=a:b", "must be 1 to 64"},
      {".example.com rcpt=1/1h", "a line starting with '.'"},
      {"defualt st=1", "unknown identity 'defualt'"},
      {"192.0.2.7/24 st=1", "host bits set"},
  };
  for (const Case& c : cases) {
    std::string e = error_of(c.line);
    EXPECT_TRUE(has(e, c.message)) << c.line << " -> " << e;
    EXPECT_EQ(e.rfind("control/spamt:1: ", 0), 0u) << e;
  }
  std::string long_text = "192.0.2.7 tgtext=\"" + std::string(201, 'x') + "\"";
  EXPECT_TRUE(has(error_of(long_text), "tgtext: must be 1 to 200"));
  EXPECT_TRUE(error_of("192.0.2.7 tgtext=\"" + std::string(200, 'x') + "\"").empty());
}

TEST(SpamtSyntax, EveryBadLineIsReportedWithItsNumber) {
  ParsedFile f = spamt_text(
      "# limits\n"
      "default rcpt=1000/1d\n"
      "bogus st=1\n"
      "\n"
      "192.0.2.7 rcpt=5\n"
      "alice@example.com rcpt=10/1h\n"
      "192.0.2.0/24 st=1 st=2 flush=sometimes\n");
  EXPECT_FALSE(f.ok());
  std::vector<std::string> errors;
  for (const Diagnostic& d : f.diagnostics) errors.push_back(d.text());
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].rfind("control/spamt:3: ", 0), 0u);
  EXPECT_EQ(errors[1].rfind("control/spamt:5: ", 0), 0u);
  EXPECT_EQ(errors[2].rfind("control/spamt:7: st is given twice", 0), 0u);
  EXPECT_EQ(errors[3].rfind("control/spamt:7: flush=sometimes", 0), 0u);
  // good lines still parse
  ASSERT_EQ(f.definitions.size(), 2u);
  EXPECT_EQ(f.definitions[1].origin, "control/spamt:6");
}

TEST(SpamtSyntax, CommentsBlankLinesCrlfAndTheFinalDot) {
  ParsedFile f = spamt_text(
      "  # indented comment\r\n"
      "\r\n"
      "192.0.2.7 st=100\r\n"
      ".\n"
      "garbage that spamthrottle never read\n");
  EXPECT_TRUE(f.ok());
  ASSERT_EQ(f.definitions.size(), 1u);
  ASSERT_EQ(f.diagnostics.size(), 1u);
  EXPECT_TRUE(f.diagnostics[0].warning);
  EXPECT_EQ(f.diagnostics[0].text(), "control/spamt:5: warning: everything after the final '.' line is ignored");
  EXPECT_TRUE(spamt_text("").ok());
  EXPECT_TRUE(spamt_text("192.0.2.7 st=1").ok());  // no final newline
  EXPECT_TRUE(has(error_of(std::string("192.0.2.7 st=1\0", 15)), "NUL byte"));
}

// ---- spamthrottle lines -----------------------------------------------------

TEST(SpamtSyntax, SpamthrottleLines) {
  ParsedFile f = spamt_text(
      "# network:dir:st:stmax:flush:rcpt:tg:tg_resp:\n"
      ":public:1500:120000::::::\n"
      "192.168.0.0/24::0::::::\n"
      "10.1.0.0/16:/32:::::::\n"
      "10.1.2.1/32:abuse:5000:::1:2:hold your horses!:\n"
      "192.168.1.0/16:testing:10000:::1:2:hold your horses!:\n"
      ".\n");
  ASSERT_TRUE(f.ok()) << f.diagnostics[0].text();
  ASSERT_EQ(f.definitions.size(), 5u);
  for (const Definition& d : f.definitions) {
    EXPECT_EQ(d.source, Source::spamthrottle);
    EXPECT_TRUE(d.teergrube);
    EXPECT_FALSE(d.relay);
  }
  const Definition& def = f.definitions[0];
  EXPECT_EQ(def.identity.kind, Kind::fallback);
  EXPECT_EQ(def.group, "public");
  EXPECT_EQ(def.teergrube->set, field::group | field::st | field::stmax);
  EXPECT_EQ(def.teergrube->st_ms, 1500u);
  EXPECT_EQ(def.teergrube->stmax_ms, 120000u);

  const Definition& off = f.definitions[1];
  EXPECT_EQ(off.identity.text(), "192.168.0.0/24");
  EXPECT_EQ(off.teergrube->set, field::st);  // empty fields inherit
  EXPECT_EQ(off.teergrube->st_ms, 0u);

  EXPECT_EQ(f.definitions[2].teergrube->set, field::prefix4);  // dir /32
  EXPECT_EQ(f.definitions[2].teergrube->prefix4, 32);

  const Definition& abuse = f.definitions[3];
  EXPECT_EQ(abuse.identity.kind, Kind::address);
  EXPECT_EQ(abuse.identity.text(), "10.1.2.1");
  EXPECT_EQ(abuse.group, "abuse");
  EXPECT_EQ(abuse.teergrube->set, field::group | field::st | field::strcpt | field::tg | field::tgtext);
  EXPECT_FALSE(abuse.teergrube->flush);
  EXPECT_EQ(abuse.teergrube->strcpt, 1u);  // rcpt field: reasonable recipients
  EXPECT_EQ(abuse.teergrube->tg_seconds, 2u);
  EXPECT_EQ(abuse.tgtext, "hold your horses!");

  // spamthrottle used the first n bits of whatever was written
  EXPECT_EQ(f.definitions[4].identity.text(), "192.168.0.0/16");
  EXPECT_EQ(f.definitions[4].teergrube->tg_seconds, 2u);
}

TEST(SpamtSyntax, SpamthrottleDefaultWithoutDir) {
  // "::1501:120000::::::" is spamthrottle's own example; it is no IPv6 address
  Definition d = one("::1501:120000::::::");
  EXPECT_EQ(d.identity.kind, Kind::fallback);
  EXPECT_EQ(d.source, Source::spamthrottle);
  EXPECT_EQ(d.teergrube->st_ms, 1501u);
  EXPECT_EQ(d.teergrube->stmax_ms, 120000u);
  EXPECT_EQ(d.teergrube->set, field::st | field::stmax);
  Definition all_empty = one("192.0.2.0/24::::::::");
  EXPECT_EQ(all_empty.teergrube->set, 0);  // matches, sets nothing: everything from the default
}

TEST(SpamtSyntax, SpamthrottleErrors) {
  struct Case {
    const char* line;
    const char* message;
  } cases[] = {
      {"1.2.3.4:x:1:", "needs 8 fields"},
      {"1.2.3.4:::::::", "found 7"},
      {"1.2.3.400::1::::::", "ipblock '1.2.3.400' is not an IPv4 address"},
      {"1.2.3.4/0::1::::::", "prefix length 0 is not allowed"},
      {"1.2.3.4::fast::::::", "st field 'fast': must be a number"},
      {"1.2.3.4:::x:::::", "stmax field"},
      {"1.2.3.4::::yes::::", "flush field 'yes'"},
      {"1.2.3.4:::::x:::", "rcpt field"},
      {"1.2.3.4::::::x::", "tg field"},
      {"1.2.3.4:/33:::::::", "/n must give 1 to 32 bits"},
      {"1.2.3.4:/0:::::::", "/n must give 1 to 32 bits"},
      {"1.2.3.4:a b:::::::", "must be /n or a name"},
      {"1.2.3.4:::::::\x01:", "tg_resp field"},
  };
  for (const Case& c : cases) {
    std::string e = error_of(c.line);
    EXPECT_TRUE(has(e, c.message)) << c.line << " -> " << e;
  }
  ParsedFile trailing = spamt_text("1.2.3.4::1::::::extra");
  EXPECT_TRUE(trailing.ok());
  ASSERT_EQ(trailing.diagnostics.size(), 1u);
  EXPECT_TRUE(has(trailing.diagnostics[0].text(), "warning: text after the 8th ':' is ignored"));
}

TEST(SpamtSyntax, NativeIPv6IsNeverTakenForSpamthrottle) {
  EXPECT_EQ(one("::1 st=100").identity.text(), "::1");
  EXPECT_EQ(one("::ffff:1.2.3.4 st=100").identity.text(), "1.2.3.4");
  EXPECT_EQ(one("2001:db8::/32 rcpt=1/1h").identity.kind, Kind::network);
  EXPECT_EQ(one("::1:2:3:4:5:6:7 st=1").identity.text(), "0:1:2:3:4:5:6:7");
}

// ---- relaylimits ------------------------------------------------------------

TEST(SpamtSyntax, RelaylimitsLines) {
  ParsedFile f = parse_relaylimits(
      "# rcptcheck-overlimit limits\n"
      ":1000\n"
      "1.2.3.4:3000\n"
      "info@Example.com:5\n"
      "postmaster:0\n"
      "default:7\n"
      "2001:db8::1:50\n"
      "@example.net:100\n"
      "10.0.0.0/8:20\n"
      " key.with.spaces@example.org : 9 \n",
      "control/relaylimits");
  ASSERT_TRUE(f.ok()) << f.diagnostics[0].text();
  ASSERT_EQ(f.definitions.size(), 9u);
  auto check = [&](std::size_t i, Kind kind, const char* text, std::uint32_t limit) {
    const Definition& d = f.definitions[i];
    EXPECT_EQ(d.source, Source::relaylimits);
    EXPECT_EQ(d.identity.kind, kind) << text;
    EXPECT_EQ(d.identity.text(), text);
    ASSERT_TRUE(d.relay);
    EXPECT_EQ(d.relay->action, 421);  // rcptcheck-overlimit's exit 113: 421 and disconnect
    if (limit == 0) {
      EXPECT_TRUE(d.relay->rcpt.empty()) << text;
    } else {
      EXPECT_EQ(d.relay->rcpt, windows({{limit, 86400}})) << text;  // a day
    }
    EXPECT_EQ(d.relay->unauthenticated, kind == Kind::address || kind == Kind::network) << text;
  };
  check(0, Kind::fallback, "default", 1000);
  check(1, Kind::address, "1.2.3.4", 3000);
  check(2, Kind::user, "info@example.com", 5);
  check(3, Kind::user, "postmaster", 0);
  check(4, Kind::user, "default", 7);  // a user called "default", as it was
  check(5, Kind::address, "2001:db8::1", 50);  // the limit follows the last ':'
  check(6, Kind::domain, "@example.net", 100);
  check(7, Kind::network, "10.0.0.0/8", 20);
  check(8, Kind::user, "key.with.spaces@example.org", 9);
  EXPECT_EQ(f.definitions[1].origin, "control/relaylimits:3");
}

TEST(SpamtSyntax, RelaylimitsErrors) {
  ParsedFile f = parse_relaylimits(
      "nocolon\n"
      "1.2.3.4:lots\n"
      "1.2.3.4:\n"
      "1.2.3.300:5\n"
      "a@b@c:5\n"
      "1.2.3.4/24:5\n"
      "ok@example.com:4294967296\n",
      "control/relaylimits");
  std::vector<std::string> e;
  for (const Diagnostic& d : f.diagnostics) e.push_back(d.text());
  ASSERT_EQ(e.size(), 7u);
  EXPECT_TRUE(has(e[0], "control/relaylimits:1: expected key:N"));
  EXPECT_TRUE(has(e[1], "control/relaylimits:2: limit 'lots'"));
  EXPECT_TRUE(has(e[2], "control/relaylimits:3: limit ''"));
  EXPECT_TRUE(has(e[3], "control/relaylimits:4: '1.2.3.300' is not an IP address"));
  EXPECT_TRUE(has(e[4], "control/relaylimits:5: identity 'a@b@c' has more than one '@'"));
  EXPECT_TRUE(has(e[5], "control/relaylimits:6: '1.2.3.4/24' has host bits set"));
  EXPECT_TRUE(has(e[6], "control/relaylimits:7: limit '4294967296'"));
  EXPECT_TRUE(f.definitions.empty());
}
