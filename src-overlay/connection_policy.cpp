// connection_policy.cpp: see connection_policy.h.

#include "connection_policy.h"

#include <cstring>

#include "helpers.h"
#include "logline.h"

namespace connection_policy {

std::string client_log(const spamt::ClientLimits& c, std::string_view ip, std::string_view what) {
  return "throttle: client limit " + relay_policy::describe_key(c.key) + " ip " + logline::field(ip) + " " +
         std::string(what);
}

std::string rate_refusal_log(const spamt::ClientLimits& c, std::string_view ip, std::string_view setting,
                             const store::Refusal& refused, std::uint32_t window_seconds, std::string_view outcome) {
  return client_log(c, ip, std::string(setting) + " " + std::to_string(refused.used) + "/" +
                               std::to_string(refused.limit) + " per " + helpers::period_text(window_seconds) + ": " +
                               std::string(outcome));
}

std::size_t add_counters(const spamt::ClientLimits& c, const spamt::Windows& windows, std::string_view metric,
                         store::Limit* out, std::size_t n) noexcept {
  for (const spamt::Window& w : windows) out[n++] = store::Limit{{c.key, metric, w.seconds}, w.limit};
  return n;
}

Needs needs(const spamt::ClientLimits& c) noexcept {
  Needs n;
  if (c.limits == nullptr || c.limits->exempt) return n;
  n.slot = c.limits->conn != 0;
  n.rate = !c.limits->connrate.empty();
  return n;
}

std::size_t counters_for_connection(const spamt::ClientLimits& c, store::Limit* out) noexcept {
  if (!needs(c).rate) return 0;
  return add_counters(c, c.limits->connrate, connrate_metric, out, 0);
}

Decision after_slot(const spamt::ClientLimits& c, client_slots::Slot::Outcome slot, int slot_errno,
                    std::string_view ip) {
  Decision d;
  if (slot == client_slots::Slot::Outcome::fault) {
    d.log = client_log(c, ip, "conn: cannot count connections (") + std::strerror(slot_errno) + "): not limited";
  } else if (slot == client_slots::Slot::Outcome::full) {
    const std::uint32_t limit = c.limits->conn;
    d.outcome = Outcome::refuse;
    d.verdict.code = 421;
    d.verdict.reply = "421 4.7.0 too many connections from " + std::string(ip) + "\r\n";
    d.verdict.log = client_log(c, ip, "conn " + std::to_string(limit) + "/" + std::to_string(limit) + ": 421");
  }
  return d;
}

namespace {

// How one rate refuses: its name in log lines, the reply code, the reply
// over the limit (without CRLF) and the word that ends the log line.
struct RateSpeech {
  std::string_view setting;
  std::uint16_t code;
  std::string over;          // "421 4.7.0 too many connections from 192.0.2.7"
  std::string_view outcome;  // "421", "454", "closed"
};

Decision rate_decision(const spamt::ClientLimits& c, const RateSpeech& how, const store::ChargeResult& r,
                       const store::Limit* counters, std::size_t n, bool fail_closed, std::string_view ip) {
  Decision d;
  if (!r.ok()) {
    std::string what = std::string(how.setting) + ": store " + std::string(store::status_name(r.status)) + " (" +
                       r.reason + ")";
    if (!fail_closed) {
      d.log = client_log(c, ip, what + ": not limited");
      return d;
    }
    d.outcome = Outcome::refuse;
    d.verdict.code = how.code;
    d.verdict.reply = std::to_string(how.code) + " 4.3.0 temporary failure, try again later\r\n";
    d.verdict.log = client_log(c, ip, what + ": " + std::string(how.outcome));
    return d;
  }
  if (r.accepted || r.refusal.index >= n) return d;
  const store::Limit& refused = counters[r.refusal.index];
  d.outcome = Outcome::refuse;
  d.verdict.code = how.code;
  d.verdict.reply = how.over + "; try again in " + relay_policy::describe_wait(r.refusal.retry_after_ms) + "\r\n";
  d.verdict.log = rate_refusal_log(c, ip, how.setting, r.refusal, refused.key.window_seconds, how.outcome);
  return d;
}

const spamt::Windows* event_windows(const spamt::ClientLimits& c, Event e) noexcept {
  if (c.limits == nullptr || c.limits->exempt) return nullptr;
  return e == Event::auth ? &c.limits->authrate : &c.limits->tlsrate;
}

}  // namespace

Decision after_rate(const spamt::ClientLimits& c, const store::ChargeResult& r, const store::Limit* counters,
                    std::size_t n, bool fail_closed, std::string_view ip) {
  const RateSpeech how{"connrate", 421, "421 4.7.0 too many connections from " + std::string(ip), "421"};
  return rate_decision(c, how, r, counters, n, fail_closed, ip);
}

std::size_t counters_for_event(const spamt::ClientLimits& c, Event e, store::Limit* out) noexcept {
  const spamt::Windows* windows = event_windows(c, e);
  if (windows == nullptr) return 0;
  return add_counters(c, *windows, e == Event::auth ? authrate_metric : tlsrate_metric, out, 0);
}

Decision after_event(const spamt::ClientLimits& c, Event e, const store::ChargeResult& r,
                     const store::Limit* counters, std::size_t n, bool fail_closed, std::string_view ip) {
  const std::string who = " from " + std::string(ip);
  const RateSpeech how = e == Event::auth
                             ? RateSpeech{"authrate", 454, "454 4.7.0 too many AUTH commands" + who, "454"}
                             : RateSpeech{"tlsrate", 454, "454 4.7.0 too many TLS sessions" + who,
                                          e == Event::smtps ? "closed" : "454"};
  return rate_decision(c, how, r, counters, n, fail_closed, ip);
}

}  // namespace connection_policy
