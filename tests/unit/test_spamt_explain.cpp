// spamt_explain: the admin's answer to "why was this client throttled?".
#include <gtest/gtest.h>

#include <string>

#include "spamt_explain.h"
#include "spamt_test_table.h"

using namespace spamt;
using spamt_test::build;

namespace {

bool has(const std::string& text, std::string_view needle) { return text.find(needle) != std::string::npos; }

constexpr std::string_view table_text =
    "default rcpt=1000/1d st=1500 stmax=120000 authfail=5/10m\n"  // line 1
    "alice@example.com rcpt=100/1h,1000/1d\n"                      // 2
    "@example.com rcpt=5000/1d action=421\n"                       // 3
    "192.0.2.0/24 rcpt=300/1h st=3000\n"                           // 4
    "192.0.0.0/16 rcpt=9/1h st=1 authfail=2/1h\n"                  // 5
    "10.0.0.0/8 exempt\n";                                         // 6

}  // namespace

TEST(SpamtExplain, NamesEveryMatchingEntryAndItsLine) {
  auto b = build(table_text);
  std::string out;
  ASSERT_TRUE(explain(b->table, "192.0.2.7", "Alice@Example.com", out));
  EXPECT_TRUE(has(out, "client 192.0.2.7 user Alice@Example.com")) << out;
  EXPECT_TRUE(has(out, "  user alice@example.com: relay (control/spamt:2)\n")) << out;
  EXPECT_TRUE(has(out, "  domain @example.com: relay (control/spamt:3)\n")) << out;
  EXPECT_TRUE(has(out, "  network 192.0.2.0/24: relay (control/spamt:4), teergrube (control/spamt:4)\n")) << out;
  EXPECT_TRUE(has(out, "  network 192.0.0.0/16: relay (control/spamt:5), teergrube (control/spamt:5), authfail (control/spamt:5)\n"
                       "    not used for relay limits: network 192.0.2.0/24 is more specific\n"
                       "    not used for teergrube: network 192.0.2.0/24 is more specific\n"))
      << out;
  EXPECT_TRUE(has(out, "  user alice@example.com: rcpt=100/1h,1000/1d msg=0 action=451, budget u:alice@example.com (control/spamt:2)\n"))
      << out;
  EXPECT_TRUE(has(out, "  domain @example.com: rcpt=5000/1d msg=0 action=421, budget d:example.com (control/spamt:3)\n")) << out;
  EXPECT_TRUE(has(out, "budget n:192.0.2.0/24 (control/spamt:4)")) << out;
  EXPECT_TRUE(has(out, "(the default does not apply: another entry matches)")) << out;
  EXPECT_TRUE(has(out, "a recipient is refused when any of these budgets is used up")) << out;
  EXPECT_TRUE(has(out, "  from network 192.0.2.0/24 (control/spamt:4): st=3000ms\n")) << out;
  EXPECT_TRUE(has(out, "  from default (control/spamt:1): stmax=120000ms\n")) << out;
  EXPECT_TRUE(has(out, "built in: flush=no strcpt=0 tg=0s tgtext=\"please wait\" prefix4=32 prefix6=64 group=(none) tarpitrelay=no"))
      << out;
  EXPECT_TRUE(has(out, "teergrube on, state key a:192.0.2.7")) << out;
  EXPECT_TRUE(has(out, "  2/1h from network 192.0.0.0/16 (control/spamt:5), budget a:192.0.2.7\n")) << out;
}

TEST(SpamtExplain, DefaultExemptAndNothing) {
  auto b = build(table_text);
  std::string out;
  ASSERT_TRUE(explain(b->table, "198.51.100.1", "", out));
  EXPECT_TRUE(has(out, "  default: rcpt=1000/1d msg=0 action=451, budget a:198.51.100.1 (control/spamt:1)\n")) << out;
  EXPECT_TRUE(has(out, "the default applies because no user, domain or IP entry with relay limits matches; its budget is per client address"))
      << out;
  EXPECT_TRUE(has(out, "  5/10m from default (control/spamt:1), budget a:198.51.100.1\n")) << out;

  ASSERT_TRUE(explain(b->table, "10.1.1.1", "alice@example.com", out));
  EXPECT_TRUE(has(out, "  exempt by network 10.0.0.0/8 (control/spamt:6): no relay limit applies\n")) << out;

  auto empty = build("192.0.2.9 st=1\n");
  ASSERT_TRUE(explain(empty->table, "2001:db8::1", "", out));
  EXPECT_TRUE(has(out, "matching entries:\n  (none)\n")) << out;
  EXPECT_TRUE(has(out, "no entry with relay limits applies: not limited")) << out;
  EXPECT_TRUE(has(out, "teergrube off (st=0), state key n:2001:db8::/64")) << out;
  EXPECT_TRUE(has(out, "authfail (failed AUTH per client address):\n  no limit\n")) << out;

  EXPECT_FALSE(explain(empty->table, "bogus", "", out));
  EXPECT_EQ(out, "not an IP address: bogus\n");
}

TEST(SpamtExplain, UnauthenticatedAndSpamthrottleNotes) {
  auto b = build("192.0.2.7 rcpt=1/1h unauthenticated\n10.0.0.0/8::100::::::\n");
  std::string out;
  ASSERT_TRUE(explain(b->table, "192.0.2.7", "alice", out));
  EXPECT_TRUE(has(out, "not used for relay limits: only for clients that did not authenticate")) << out;
  ASSERT_TRUE(explain(b->table, "10.2.3.4", "", out));
  EXPECT_TRUE(has(out, "(prefix4 16: spamthrottle's, for settings from its lines)")) << out;
  EXPECT_TRUE(has(out, "state key n:10.2.0.0/16")) << out;
}
