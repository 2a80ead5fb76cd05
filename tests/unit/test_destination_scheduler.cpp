// The per-destination scheduler of qmail-send, driven like qmail-send drives
// it, with the clock injected.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "destination_scheduler.h"

namespace {

using Admit = destinations::Scheduler::Admit;
using destinations::Held;
using destinations::Ms;
using destinations::Route;
using destinations::Scheduler;
using destinations::Table;

class Lines : public destinations::LogSink {
 public:
  void line(std::string_view text) override { lines.emplace_back(text); }
  std::vector<std::string> lines;
  std::size_t count(std::string_view needle) const {
    std::size_t n = 0;
    for (const auto& l : lines) n += l.find(needle) != std::string::npos;
    return n;
  }
};

Table table(std::string_view text) {
  std::vector<destinations::Error> errors;
  std::optional<Table> t = Table::parse(text, &errors);
  EXPECT_TRUE(t.has_value()) << (errors.empty() ? "" : errors[0].message);
  return t ? std::move(*t) : Table{};
}

Route route(const char* host, const char* address, int greeting = 220) {
  Route r;
  r.host = host;
  if (address) r.address = ip::parse(address);
  r.greeting = greeting;
  return r;
}

// qmail-send in miniature: delivery slots, recipients started at once,
// held, or left for later, and held ones started as next() offers them.
struct Send {
  explicit Send(std::string_view text, Scheduler::Settings settings = {}) : s(log, settings) {
    s.configure(table(text), now);
  }

  Lines log;
  Scheduler s;
  Ms now = 1'000'000;
  std::map<unsigned, std::string> inflight;  // slot -> recipient
  std::vector<std::string> started;          // in the order they started
  std::vector<std::string> later;
  int job = 0;
  bool parking = false;                      // one-recipient messages park when held
  std::map<std::uint64_t, std::string> parked;  // message -> its recipient ("the queue file")
  std::vector<std::string> reread;           // parked messages handed back, in order

  unsigned free_slot() const {
    unsigned i = 0;
    while (inflight.count(i)) ++i;
    return i;
  }
  void start(const std::string& recip) {
    unsigned slot = free_slot();
    inflight[slot] = recip;
    started.push_back(recip);
    s.started(slot, recip, now);
  }
  // A recipient read from a message: returns what admit() said.
  Admit offer(const std::string& recip) { return offer_message(recip, static_cast<std::uint64_t>(job + 1)); }
  // A one-recipient message read by the pass (again, for a parked one).
  Admit offer_message(const std::string& recip, std::uint64_t message) {
    const int j = ++job;
    Admit a = s.admit(recip, j, 0, message, now);
    if (a == Admit::start) start(recip);
    if (a == Admit::later) later.push_back(recip);
    if (a == Admit::hold && parking && s.park(j, message, 0, 2)) parked[message] = recip;
    return a;
  }
  // Held recipients that may start now, as qmail-send's pass_do starts them.
  std::size_t dispatch() {
    std::size_t n = 0;
    while (auto h = s.next(now)) {
      if (h->is_parked()) {  // qmail-send puts the message back in its queue
        std::uint64_t message = 0;
        std::int64_t birth = 0;
        EXPECT_TRUE(Scheduler::parked_message(h->recip, &message, &birth));
        s.taken(now);
        reread.push_back(parked[message]);
        n += offer_message(parked[message], message) == Admit::start;
        continue;
      }
      start(std::string(h->recip));
      s.taken(now);
      ++n;
    }
    return n;
  }
  // The delivery of `recip` (the oldest in flight) ends with `r`.
  void finish(const std::string& recip, const std::optional<Route>& r = std::nullopt,
              std::string_view report = "accepted") {
    for (auto it = inflight.begin(); it != inflight.end(); ++it)
      if (it->second == recip) {
        unsigned slot = it->first;
        inflight.erase(it);
        s.finished(slot, r, report, now);
        return;
      }
    ADD_FAILURE() << recip << " is not in flight";
  }
  std::size_t in_flight_to(std::string_view domain) const {
    std::size_t n = 0;
    for (const auto& [slot, r] : inflight) n += Scheduler::domain_of(r) == domain;
    return n;
  }
};

std::string rcpt(int i, const char* domain) { return "u" + std::to_string(i) + "@" + domain; }

}  // namespace

TEST(DestinationScheduler, WithoutLinesEverythingStarts) {
  Send q("");
  EXPECT_FALSE(q.s.active());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(q.offer(rcpt(i, "a.example")), Admit::start);
  EXPECT_EQ(q.s.held(), 0u);
}

TEST(DestinationScheduler, TheDefaultCapsEveryDomainOnItsOwn) {
  Send q("* 2\n");
  EXPECT_EQ(q.offer(rcpt(1, "a.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(2, "a.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(3, "A.Example.")), Admit::hold);  // the same domain, whatever its case
  EXPECT_EQ(q.offer(rcpt(4, "a.example")), Admit::hold);
  // another domain has a budget of its own
  EXPECT_EQ(q.offer(rcpt(1, "b.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(2, "b.example")), Admit::start);
  EXPECT_EQ(q.in_flight_to("a.example"), 2u);
  EXPECT_EQ(q.s.held(), 2u);
  EXPECT_EQ(q.dispatch(), 0u);  // nothing may start: both at their cap
  q.finish(rcpt(1, "a.example"));
  EXPECT_EQ(q.dispatch(), 1u);
  EXPECT_EQ(q.started.back(), rcpt(3, "A.Example."));  // the oldest held first
  EXPECT_EQ(q.in_flight_to("a.example"), 2u);
  q.finish(rcpt(2, "a.example"));
  q.finish(rcpt(3, "A.Example."));
  EXPECT_EQ(q.dispatch(), 1u);
  EXPECT_EQ(q.started.back(), rcpt(4, "a.example"));
  EXPECT_EQ(q.s.held(), 0u);
  EXPECT_EQ(q.log.count("destination a.example: holding recipients: at its limit of 2 deliveries at once"), 1u);
}

TEST(DestinationScheduler, NewRecipientsQueueBehindHeldOnes) {
  Send q("* 1\n");
  q.offer(rcpt(1, "a.example"));
  q.offer(rcpt(2, "a.example"));  // held
  q.finish(rcpt(1, "a.example"));
  // room now, but rcpt 2 waits longer: a new one may not pass it
  EXPECT_EQ(q.offer(rcpt(3, "a.example")), Admit::hold);
  q.dispatch();
  EXPECT_EQ(q.started.back(), rcpt(2, "a.example"));
}

TEST(DestinationScheduler, NoHeadOfLineBlocking) {
  // 5000 recipients of one capped domain come first; recipients of a
  // hundred other domains after them start at once, all of them.
  Send q("big.example 10\n* 5\n");
  for (int i = 0; i < 5000; ++i) q.offer(rcpt(i, "big.example"));
  EXPECT_EQ(q.in_flight_to("big.example"), 10u);
  EXPECT_EQ(q.s.held(), 4990u);
  for (int d = 0; d < 100; ++d)
    for (int i = 0; i < 5; ++i)
      EXPECT_EQ(q.offer(rcpt(i, ("small" + std::to_string(d) + ".example").c_str())), Admit::start);
  EXPECT_EQ(q.inflight.size(), 10u + 500u);
}

TEST(DestinationScheduler, ReadyDestinationsTakeTurns) {
  Send q("* 1\n");
  for (int i = 0; i < 3; ++i) {
    q.offer(rcpt(i, "a.example"));
    q.offer(rcpt(i, "b.example"));
  }
  q.finish(rcpt(0, "a.example"));
  q.finish(rcpt(0, "b.example"));
  q.started.clear();
  q.dispatch();
  EXPECT_EQ(q.started, (std::vector<std::string>{rcpt(1, "a.example"), rcpt(1, "b.example")}));
}

TEST(DestinationScheduler, GroupsAndSuffixesShareOneBudget) {
  Send q("x.example,y.example,.z.example 3\n.hoster.example 2\n");
  EXPECT_EQ(q.offer(rcpt(1, "x.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(1, "y.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(1, "mail.z.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(2, "z.example")), Admit::hold);
  EXPECT_EQ(q.offer(rcpt(1, "a.hoster.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(1, "hoster.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(1, "b.hoster.example")), Admit::hold);
  // a domain no line covers (no "*"): no limit at all
  for (int i = 0; i < 50; ++i) EXPECT_EQ(q.offer(rcpt(i, "free.example")), Admit::start);
  q.finish(rcpt(1, "x.example"));
  EXPECT_EQ(q.dispatch(), 1u);
  EXPECT_EQ(q.started.back(), rcpt(2, "z.example"));
}

TEST(DestinationScheduler, RateLimitsStartsPerWindow) {
  Send q("r.example 10 rate=3/1m\n");
  for (int i = 0; i < 5; ++i) q.offer(rcpt(i, "r.example"));
  EXPECT_EQ(q.started.size(), 3u);
  for (int i = 0; i < 3; ++i) q.finish(rcpt(i, "r.example"));
  EXPECT_EQ(q.dispatch(), 0u);  // finished, but the window is full
  std::optional<Ms> wake = q.s.wakeup();
  ASSERT_TRUE(wake.has_value());
  // the window's rule (window.h): an event counts for at least the window
  // and at most one bucket (1/60 of it) longer
  EXPECT_GE(*wake, q.now + 60'000);
  EXPECT_LE(*wake, q.now + 61'000 + 1);
  q.now = *wake - 1;
  EXPECT_EQ(q.dispatch(), 0u);
  q.now = *wake;
  EXPECT_EQ(q.dispatch(), 2u);
  EXPECT_EQ(q.log.count("destination r.example: holding recipients: at its rate limit of 3/1m"), 1u);
}

TEST(DestinationScheduler, NeverMoreThanTheRateInAnyWindow) {
  // Deliveries finish at once; every 100 ms held recipients are offered
  // the chance to start. No 60 s window ever sees more than 20 starts.
  Send q("r.example 100 rate=20/1m\n");
  for (int i = 0; i < 200; ++i) q.offer(rcpt(i, "r.example"));
  std::vector<Ms> starts(q.started.size(), q.now);
  const Ms t0 = q.now;
  while (q.started.size() < 200 && q.now < t0 + 3'600'000) {
    for (auto [slot, r] : std::map<unsigned, std::string>(q.inflight)) q.finish(r);
    q.now += 100;
    std::size_t before = q.started.size();
    q.dispatch();
    starts.insert(starts.end(), q.started.size() - before, q.now);
  }
  ASSERT_EQ(q.started.size(), 200u);
  for (std::size_t i = 20; i < starts.size(); ++i) EXPECT_GE(starts[i] - starts[i - 20], 60'000) << i;
  // and it does not wait much longer than it must: 200 at 20 a minute
  EXPECT_LE(starts.back() - t0, 9 * 61'000 + 1000);
}

TEST(DestinationScheduler, PauseAfterConsecutiveFailuresThenProbe) {
  Send q("f.example 5 failures=3 pause=5m\n");
  for (int i = 0; i < 8; ++i) q.offer(rcpt(i, "f.example"));
  EXPECT_EQ(q.started.size(), 5u);
  auto refused = route("mx.f.example", "192.0.2.7", -1);
  auto busy = route("mx.f.example", "192.0.2.7", 421);
  const std::string greeting = "Connected to 192.0.2.7 but greeting failed.\nRemote host said: 421 busy\n";
  q.finish(rcpt(0, "f.example"), refused, "Sorry, I wasn't able to establish an SMTP connection.");
  q.finish(rcpt(1, "f.example"), route("mx.f.example", "192.0.2.7", 220));  // a success resets the count
  q.finish(rcpt(2, "f.example"), busy, greeting);
  q.finish(rcpt(3, "f.example"), refused, "no");
  EXPECT_EQ(q.dispatch(), 3u) << "two failures in a row: not yet a pause";
  EXPECT_EQ(q.log.count("paused"), 0u);
  q.finish(rcpt(4, "f.example"), busy, greeting);
  ASSERT_EQ(q.log.count("destination f.example: paused for 5m after 3 consecutive failures; last: "
                        "Connected_to_192.0.2.7_but_greeting_failed./Remote_host_said:_421_busy/"),
            1u)
      << q.log.lines.back();
  for (int i = 8; i < 12; ++i) EXPECT_EQ(q.offer(rcpt(i, "f.example")), Admit::hold);
  // deliveries started before the pause end meanwhile: they neither count
  // nor start anything
  for (int i = 5; i < 8; ++i) q.finish(rcpt(i, "f.example"), refused, "no");
  EXPECT_EQ(q.log.count("paused"), 1u);
  EXPECT_EQ(q.dispatch(), 0u);
  ASSERT_EQ(q.s.wakeup(), std::optional<Ms>(q.now + 300'000));
  q.now += 299'999;
  EXPECT_EQ(q.dispatch(), 0u);
  q.now += 1;
  EXPECT_EQ(q.dispatch(), 1u) << "one probing delivery";
  EXPECT_EQ(q.log.count("destination f.example: probing with one delivery"), 1u);
  EXPECT_EQ(q.dispatch(), 0u);
  q.finish(rcpt(8, "f.example"), route("mx.f.example", "192.0.2.7", 220));
  EXPECT_EQ(q.log.count("destination f.example: resumed"), 1u);
  EXPECT_EQ(q.dispatch(), 3u) << "back to the full limit";
  EXPECT_EQ(q.s.held(), 0u);
}

TEST(DestinationScheduler, AFailedProbePausesAgain) {
  Send q("f.example 5 failures=1 pause=1m\n");
  q.offer(rcpt(0, "f.example"));
  q.offer(rcpt(1, "f.example"));
  q.finish(rcpt(0, "f.example"), route("mx.f.example", "192.0.2.7", -1), "refused");
  // rcpt 1 started before the pause: its failure says nothing new
  q.finish(rcpt(1, "f.example"), route("mx.f.example", "192.0.2.7", -1), "refused");
  EXPECT_EQ(q.log.count("paused"), 1u);
  q.offer(rcpt(2, "f.example"));
  q.offer(rcpt(3, "f.example"));
  q.now += 60'000;
  EXPECT_EQ(q.dispatch(), 1u);
  q.finish(rcpt(2, "f.example"), route("mx.f.example", "192.0.2.7", 421), "busy");
  EXPECT_EQ(q.log.count("destination f.example: paused for 1m the probe failed; last: busy"), 1u);
  EXPECT_EQ(q.dispatch(), 0u);
  q.now += 60'000;
  EXPECT_EQ(q.dispatch(), 1u);
}

TEST(DestinationScheduler, FailuresZeroMeansNoBackoff) {
  Send q("f.example 2 failures=0\n");
  for (int i = 0; i < 20; ++i) {
    q.offer(rcpt(i, "f.example"));
    q.dispatch();
    q.finish(rcpt(i, "f.example"), route("mx.f.example", "192.0.2.7", -1), "refused");
  }
  EXPECT_EQ(q.log.count("paused"), 0u);
  EXPECT_EQ(q.started.size(), 20u);
}

TEST(DestinationScheduler, SweepHandsOverRecipientsHeldByAPause) {
  Send q("f.example 1 failures=1 pause=1h\n");
  q.offer(rcpt(0, "f.example"));
  q.offer(rcpt(1, "f.example"));
  q.offer(rcpt(2, "f.example"));
  q.finish(rcpt(0, "f.example"), route("mx.f.example", "192.0.2.7", -1), "no connection");
  ASSERT_TRUE(q.s.needs_sweep());
  std::vector<std::string> seen;
  q.s.sweep(q.now, [&](const Held& h, std::string_view report) {
    seen.push_back(std::string(h.recip) + " " + std::string(report));
    return h.recip == rcpt(1, "f.example");  // this one's message is past its lifetime
  });
  EXPECT_FALSE(q.s.needs_sweep());
  EXPECT_EQ(seen, (std::vector<std::string>{rcpt(1, "f.example") + " no connection",
                                            rcpt(2, "f.example") + " no connection"}));
  EXPECT_EQ(q.s.held(), 1u);
  q.now += 3'600'000;
  q.dispatch();
  EXPECT_EQ(q.started.back(), rcpt(2, "f.example"));
}

TEST(DestinationScheduler, DomainsJoinTheirMxGroupOnceLearned) {
  // Without "*", a domain not yet learned goes one delivery at a time.
  Send q("mx:.hoster.example 3\n");
  EXPECT_EQ(q.offer(rcpt(0, "d1.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(1, "d1.example")), Admit::hold);
  EXPECT_EQ(q.log.count("destination d1.example: holding recipients: learning its route"), 1u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q.offer(rcpt(i, "d2.example")), i == 0 ? Admit::start : Admit::hold);
  q.finish(rcpt(0, "d1.example"), route("mx1.hoster.example", "192.0.2.1"));
  q.finish(rcpt(0, "d2.example"), route("mx2.hoster.example", "192.0.2.2"));
  // both are now in mx:.hoster.example: 3 at once between them
  q.dispatch();
  EXPECT_EQ(q.in_flight_to("d1.example") + q.in_flight_to("d2.example"), 3u);
  EXPECT_EQ(q.s.held(), 1u);
  const destinations::Domain* d1 = q.s.domain("d1.example");
  ASSERT_NE(d1, nullptr);
  EXPECT_TRUE(d1->learned);
  EXPECT_EQ(d1->mx, "mx1.hoster.example");
  EXPECT_EQ(d1->budget->name, "mx:.hoster.example");
  // a domain elsewhere is unlimited once learned
  q.offer(rcpt(0, "free.example"));
  q.finish(rcpt(0, "free.example"), route("mx.free.example", "198.51.100.1"));
  for (int i = 1; i < 20; ++i) EXPECT_EQ(q.offer(rcpt(i, "free.example")), Admit::start);
}

TEST(DestinationScheduler, WithADefaultUnlearnedDomainsUseTheirOwnBudget) {
  Send q("* 2\nip:192.0.2.0/24 3\n");
  EXPECT_EQ(q.offer(rcpt(0, "d1.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(1, "d1.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(2, "d1.example")), Admit::hold);
  EXPECT_EQ(q.offer(rcpt(0, "d2.example")), Admit::start);
  EXPECT_EQ(q.offer(rcpt(1, "d2.example")), Admit::start);
  // d1 is learned: its two deliveries in flight move with it (one is done)
  q.finish(rcpt(0, "d1.example"), route("", "192.0.2.10"));
  EXPECT_EQ(q.s.domain("d1.example")->budget->name, "ip:192.0.2.0/24");
  q.finish(rcpt(0, "d2.example"), route("mx.d2.example", "192.0.2.20"));
  // in the block: d1 1 + d2 1 in flight; one more may start
  EXPECT_EQ(q.dispatch(), 1u);
  EXPECT_EQ(q.offer(rcpt(3, "d1.example")), Admit::hold);
  EXPECT_EQ(q.in_flight_to("d1.example") + q.in_flight_to("d2.example"), 3u);
}

TEST(DestinationScheduler, ALearnedRouteIsForgottenAfterItsTtl) {
  Scheduler::Settings settings;
  settings.route_ttl = 3'600'000;
  Send q("* 1\nmx:.hoster.example 5\n", settings);
  q.offer(rcpt(0, "d.example"));
  q.finish(rcpt(0, "d.example"), route("mx.hoster.example", "192.0.2.1"));
  EXPECT_EQ(q.s.domain("d.example")->budget->name, "mx:.hoster.example");
  q.now += 3'600'001;
  EXPECT_EQ(q.offer(rcpt(1, "d.example")), Admit::start);
  EXPECT_FALSE(q.s.domain("d.example")->learned);
  EXPECT_EQ(q.s.domain("d.example")->budget->name, "d.example");
}

TEST(DestinationScheduler, AMovedRouteMovesTheDomain) {
  Send q("mx:.one.example 1\nmx:.two.example 1\n");
  q.offer(rcpt(0, "d.example"));
  q.finish(rcpt(0, "d.example"), route("mx.one.example", "192.0.2.1"));
  EXPECT_EQ(q.s.domain("d.example")->budget->name, "mx:.one.example");
  q.offer(rcpt(1, "d.example"));
  q.offer(rcpt(2, "d.example"));  // held in mx:.one.example
  q.finish(rcpt(1, "d.example"), route("mx.two.example", "192.0.2.2"));
  EXPECT_EQ(q.s.domain("d.example")->budget->name, "mx:.two.example");
  EXPECT_EQ(q.dispatch(), 1u);  // the held recipient came along
}

TEST(DestinationScheduler, ReconfigureMovesEverythingAndKeepsUnchangedLines) {
  Send q("a.example 1 failures=1 pause=1h\nb.example 1\n");
  q.offer(rcpt(0, "a.example"));
  q.finish(rcpt(0, "a.example"), route("mx.a.example", "192.0.2.1", -1), "refused");
  q.offer(rcpt(1, "a.example"));  // held: paused
  q.offer(rcpt(0, "b.example"));
  q.offer(rcpt(1, "b.example"));  // held: at limit
  q.offer(rcpt(2, "b.example"));  // held
  // b.example's limit goes up; a.example's line is unchanged: still paused
  q.s.configure(table("a.example 1 failures=1 pause=1h\nb.example 3\n"), q.now);
  EXPECT_EQ(q.dispatch(), 2u);
  EXPECT_EQ(q.in_flight_to("b.example"), 3u);
  EXPECT_EQ(q.s.held(), 1u);
  EXPECT_EQ(q.s.domain("a.example")->budget->state, destinations::Budget::State::paused);
  // the file is emptied: nothing is limited and what was held starts
  q.s.configure(table(""), q.now);
  EXPECT_FALSE(q.s.active());
  EXPECT_EQ(q.dispatch(), 1u);
  EXPECT_EQ(q.s.held(), 0u);
}

TEST(DestinationScheduler, ReconfigureCountsDeliveriesInFlightWhereTheyNowBelong) {
  Send q("* 3\n");
  for (int i = 0; i < 3; ++i) q.offer(rcpt(i, "a.example"));
  for (int i = 0; i < 3; ++i) q.offer(rcpt(i, "b.example"));
  // now a group of 4: six in flight already, nothing may start until two finish
  q.s.configure(table("a.example,b.example 4\n"), q.now);
  EXPECT_EQ(q.offer(rcpt(9, "a.example")), Admit::hold);
  q.finish(rcpt(0, "a.example"));
  q.finish(rcpt(1, "a.example"));
  EXPECT_EQ(q.dispatch(), 0u);
  q.finish(rcpt(2, "a.example"));
  EXPECT_EQ(q.dispatch(), 1u);
}

TEST(DestinationScheduler, LimitZeroHoldsUntilRaised) {
  Send q("a.example 0\n");
  EXPECT_EQ(q.offer(rcpt(0, "a.example")), Admit::hold);
  EXPECT_EQ(q.log.count("holding recipients: limit 0 holds every delivery"), 1u);
  EXPECT_EQ(q.dispatch(), 0u);
  EXPECT_FALSE(q.s.wakeup().has_value());
  q.s.configure(table("a.example 1\n"), q.now);
  EXPECT_EQ(q.dispatch(), 1u);
}

TEST(DestinationScheduler, TooMuchHeldIsLeftForLater) {
  Scheduler::Settings settings;
  settings.max_held = 3;
  Send q("* 1\n", settings);
  q.offer(rcpt(0, "a.example"));
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(q.offer(rcpt(i, "a.example")), Admit::hold);
  EXPECT_EQ(q.offer(rcpt(4, "a.example")), Admit::later);
  EXPECT_EQ(q.offer(rcpt(0, "b.example")), Admit::start);  // room elsewhere still starts
  EXPECT_EQ(q.offer(rcpt(1, "b.example")), Admit::later);
}

TEST(DestinationScheduler, HoldingIsLoggedOncePerIntervalNotPerRecipient) {
  Send q("* 1\n");
  q.offer(rcpt(0, "a.example"));
  for (int i = 1; i < 100; ++i) q.offer(rcpt(i, "a.example"));
  EXPECT_EQ(q.log.count("holding"), 1u);
  // drained, then at the limit again a second later: no new line yet
  for (int i = 0; i < 100; ++i) {
    q.finish(rcpt(i, "a.example"));
    q.dispatch();
  }
  q.now += 1000;
  q.offer(rcpt(100, "a.example"));
  q.offer(rcpt(101, "a.example"));
  EXPECT_EQ(q.log.count("holding"), 1u);
  q.finish(rcpt(100, "a.example"));
  q.dispatch();
  q.finish(rcpt(101, "a.example"));
  q.now += 60'000;
  q.offer(rcpt(102, "a.example"));
  q.offer(rcpt(103, "a.example"));
  EXPECT_EQ(q.log.count("holding"), 2u);
}

TEST(DestinationScheduler, DomainsAreBoundedAndIdleOnesForgotten) {
  Scheduler::Settings settings;
  settings.max_domains = 100;
  Send q("* 1\nmx:.hoster.example 2\n", settings);
  // a domain that taught nothing is dropped when its delivery ends
  q.offer(rcpt(0, "gone.example"));
  q.finish(rcpt(0, "gone.example"));
  EXPECT_EQ(q.s.domain("gone.example"), nullptr);
  // learned domains stay, at most 100 of them, the least recently used go
  for (int i = 0; i < 300; ++i) {
    std::string d = "d" + std::to_string(i) + ".example";
    q.offer(rcpt(0, d.c_str()));
    q.finish(rcpt(0, d.c_str()), route("mx.hoster.example", "192.0.2.1"));
  }
  EXPECT_LE(q.s.domain_count(), 100u);
  EXPECT_NE(q.s.domain("d299.example"), nullptr);
  EXPECT_EQ(q.s.domain("d0.example"), nullptr);
  // a busy domain is never dropped
  q.offer(rcpt(0, "busy.example"));
  for (int i = 300; i < 600; ++i) {
    std::string d = "d" + std::to_string(i) + ".example";
    q.offer(rcpt(0, d.c_str()));
    q.finish(rcpt(0, d.c_str()), route("mx.hoster.example", "192.0.2.1"));
  }
  ASSERT_NE(q.s.domain("busy.example"), nullptr);
  q.finish(rcpt(0, "busy.example"));
}

TEST(DestinationScheduler, RecipientsWithoutADomainAreNotLimited) {
  Send q("* 1\n");
  EXPECT_EQ(q.offer("nobody"), Admit::start);
  EXPECT_EQ(q.offer("nobody"), Admit::start);
  EXPECT_EQ(q.offer("x@"), Admit::start);
}

TEST(DestinationScheduler, ParkedMessagesKeepTheirTurnWithoutAJob) {
  Send q("* 2\n");
  q.parking = true;
  for (int i = 0; i < 6; ++i) q.offer(rcpt(i, "a.example"));
  EXPECT_EQ(q.started.size(), 2u);
  EXPECT_EQ(q.parked.size(), 4u);  // every held one parked
  EXPECT_EQ(q.s.held(), 4u);
  q.finish(rcpt(0, "a.example"));
  EXPECT_EQ(q.dispatch(), 1u);
  EXPECT_EQ(q.reread, (std::vector<std::string>{rcpt(2, "a.example")}));
  EXPECT_EQ(q.started.back(), rcpt(2, "a.example"));
  q.finish(rcpt(1, "a.example"));
  q.finish(rcpt(2, "a.example"));
  EXPECT_EQ(q.dispatch(), 2u);
  EXPECT_EQ(q.started.back(), rcpt(4, "a.example"));  // in order
  EXPECT_EQ(q.s.held(), 1u);
}

TEST(DestinationScheduler, AReservedSlotIsKeptForTheParkedMessage) {
  Send q("* 1\n");
  q.parking = true;
  q.offer(rcpt(0, "a.example"));
  q.offer(rcpt(1, "a.example"));  // parked
  q.finish(rcpt(0, "a.example"));
  // the parked message is handed back; before it is read again, another
  // message for the domain comes: it must not take the reserved slot
  auto h = q.s.next(q.now);
  ASSERT_TRUE(h && h->is_parked());
  q.s.taken(q.now);
  EXPECT_EQ(q.s.admit(rcpt(2, "a.example"), 100, 0, 100, q.now), Admit::hold);
  EXPECT_EQ(q.s.admit(rcpt(1, "a.example"), 101, 0, 2, q.now), Admit::start);  // message 2, read again
}

TEST(DestinationScheduler, AnUnusedReservationExpires) {
  Send q("* 1\n");
  q.parking = true;
  q.offer(rcpt(0, "a.example"));
  q.offer(rcpt(1, "a.example"));  // parked
  q.offer(rcpt(2, "a.example"));  // parked
  q.finish(rcpt(0, "a.example"));
  auto h = q.s.next(q.now);
  ASSERT_TRUE(h && h->is_parked());
  q.s.taken(q.now);  // handed back, but its queue file is gone: never read again
  EXPECT_FALSE(q.s.next(q.now).has_value());
  ASSERT_EQ(q.s.wakeup(), std::optional<Ms>(q.now + Scheduler::reservation_ttl));
  q.now += Scheduler::reservation_ttl;
  EXPECT_EQ(q.dispatch(), 1u);
  EXPECT_EQ(q.started.back(), rcpt(2, "a.example"));
}

TEST(DestinationScheduler, OnlyAMessageWhoseOneRecipientWasHeldParks) {
  Send q("* 1\nb.example 1\n");
  q.offer(rcpt(0, "a.example"));
  q.offer(rcpt(0, "b.example"));
  // two recipients held for one job: stays pinned
  EXPECT_EQ(q.s.admit(rcpt(1, "a.example"), 50, 0, 50, q.now), Admit::hold);
  EXPECT_EQ(q.s.admit(rcpt(2, "a.example"), 50, 0, 50, q.now), Admit::hold);
  EXPECT_FALSE(q.s.park(50, 50, 0, 3));
  // one held, but another recipient of it started (refs 3)
  EXPECT_EQ(q.s.admit(rcpt(3, "a.example"), 51, 0, 51, q.now), Admit::hold);
  EXPECT_FALSE(q.s.park(51, 51, 0, 3));
  // held in two budgets
  EXPECT_EQ(q.s.admit(rcpt(4, "a.example"), 52, 0, 52, q.now), Admit::hold);
  EXPECT_EQ(q.s.admit(rcpt(1, "b.example"), 52, 0, 52, q.now), Admit::hold);
  EXPECT_FALSE(q.s.park(52, 52, 0, 3));
  // the one that may
  EXPECT_EQ(q.s.admit(rcpt(5, "a.example"), 53, 0, 53, q.now), Admit::hold);
  EXPECT_TRUE(q.s.park(53, 53, 1234, 2));
  EXPECT_FALSE(q.s.park(53, 53, 1234, 2));  // once
  std::vector<std::string> seen;
  q.s.for_each_budget([&](const destinations::Budget& b) {
    b.queue.for_each([&](const Held& h) { seen.push_back(h.is_parked() ? "parked " + std::string(h.recip) : std::string(h.recip)); });
  });
  EXPECT_EQ(seen.back(), "parked 53 1234");
}
