// The state file qmail-send writes on SIGUSR1 and qmail-destinations reads.
#include <gtest/gtest.h>

#include "destination_state.h"

namespace {

class Quiet : public destinations::LogSink {
 public:
  void line(std::string_view) override {}
};

destinations::Table table(std::string_view text) {
  std::vector<destinations::Error> errors;
  return *destinations::Table::parse(text, &errors);
}

}  // namespace

TEST(DestinationState, WrittenAndReadBack) {
  Quiet quiet;
  destinations::Scheduler s(quiet);
  const destinations::Ms now = 5'000'000;
  s.configure(table("* 1\nmx:.hoster.example 2 rate=10/1m\n"), now);
  s.admit("u1@a.example", 1, 0, 1, now);  // start
  s.started(0, "u1@a.example", now);
  EXPECT_EQ(s.admit("u2@a.example", 2, 10, 2, now), destinations::Scheduler::Admit::hold);
  destinations::Route r;
  r.host = "mx1.hoster.example";
  r.address = ip::parse("192.0.2.1");
  r.greeting = 220;
  s.admit("u1@b.example", 3, 0, 3, now);
  s.started(1, "u1@b.example", now);
  s.finished(1, r, "ok", now + 2000);

  std::string text = destinations::state_text(s, now + 5000);
  std::optional<destinations::State> st = destinations::parse_state(text);
  ASSERT_TRUE(st.has_value()) << text;
  EXPECT_EQ(st->header["held"], "1");
  EXPECT_EQ(st->header["lines"], "2");
  const destinations::StateRecord* a = nullptr;
  const destinations::StateRecord* group = nullptr;
  for (const auto& b : st->budgets) {
    if (b.name == "a.example") a = &b;
    if (b.name == "mx:.hoster.example") group = &b;
  }
  ASSERT_NE(a, nullptr) << text;
  EXPECT_EQ(a->get("kind"), "default");
  EXPECT_EQ(a->get("line"), "1");
  EXPECT_EQ(a->get("limit"), "1");
  EXPECT_EQ(a->get("inflight"), "1");
  EXPECT_EQ(a->get("held"), "1");
  EXPECT_EQ(a->get("why"), "concurrency");
  ASSERT_NE(group, nullptr) << text;
  EXPECT_EQ(group->get("rate"), "10/1m");
  EXPECT_EQ(group->get("line"), "2");
  const destinations::StateRecord* b = nullptr;
  for (const auto& d : st->domains)
    if (d.name == "b.example") b = &d;
  ASSERT_NE(b, nullptr) << text;
  EXPECT_EQ(b->get("budget"), "mx:.hoster.example");
  EXPECT_EQ(b->get("mx"), "mx1.hoster.example");
  EXPECT_EQ(b->get("ip"), "192.0.2.1");
  EXPECT_EQ(b->get("learned"), "3");
}

TEST(DestinationState, CutShortOrForeignIsRefused) {
  std::string whole = destinations::state_text_off();
  EXPECT_TRUE(destinations::parse_state(whole).has_value());
  EXPECT_FALSE(destinations::parse_state(whole.substr(0, whole.size() - 4)).has_value());
  EXPECT_FALSE(destinations::parse_state("something else\nend\n").has_value());
  EXPECT_FALSE(destinations::parse_state("").has_value());
  EXPECT_FALSE(destinations::parse_state(std::string(destinations::state_magic) + "\nbudget x odd\nend\n").has_value());
}
