// connection_policy.cpp: see connection_policy.h.

#include "connection_policy.h"

#include <cstring>

#include "helpers.h"
#include "logline.h"

namespace connection_policy {

namespace {

using helpers::period_text;

// "throttle: client limit address 192.0.2.7 ip 192.0.2.7 conn 3/3: 421"
std::string client_log(const spamt::ClientLimits& c, std::string_view ip, std::string_view what) {
  return "throttle: client limit " + relay_policy::describe_key(c.key) + " ip " + logline::field(ip) + " " +
         std::string(what);
}

}  // namespace

Needs needs(const spamt::ClientLimits& c) noexcept {
  Needs n;
  if (c.limits == nullptr || c.limits->exempt) return n;
  n.slot = c.limits->conn != 0;
  n.rate = !c.limits->connrate.empty();
  return n;
}

std::size_t counters_for_connection(const spamt::ClientLimits& c, store::Limit* out) noexcept {
  if (!needs(c).rate) return 0;
  std::size_t n = 0;
  for (const spamt::Window& w : c.limits->connrate)
    out[n++] = store::Limit{{c.key, connrate_metric, w.seconds}, w.limit};
  return n;
}

Decision after_slot(const spamt::ClientLimits& c, SlotOutcome slot, int slot_errno, std::string_view ip) {
  Decision d;
  if (slot == SlotOutcome::fault) {
    d.log = client_log(c, ip, "conn: cannot count connections (") + std::strerror(slot_errno) + "): not limited";
  } else if (slot == SlotOutcome::full) {
    const std::uint32_t limit = c.limits->conn;
    d.outcome = Outcome::refuse;
    d.verdict.code = 421;
    d.verdict.reply = "421 4.7.0 too many connections from " + std::string(ip) + "\r\n";
    d.verdict.log = client_log(c, ip, "conn " + std::to_string(limit) + "/" + std::to_string(limit) + ": 421");
  }
  return d;
}

Decision after_rate(const spamt::ClientLimits& c, const store::ChargeResult& r, const store::Limit* counters,
                    std::size_t n, bool fail_closed, std::string_view ip) {
  Decision d;
  if (!r.ok()) {
    std::string what = "connrate: store " + std::string(store::status_name(r.status)) + " (" + r.reason + ")";
    if (!fail_closed) {
      d.log = client_log(c, ip, what + ": not limited");
      return d;
    }
    d.outcome = Outcome::refuse;
    d.verdict.code = 421;
    d.verdict.reply = "421 4.3.0 temporary failure, try again later\r\n";
    d.verdict.log = client_log(c, ip, what + ": 421");
    return d;
  }
  if (r.accepted || r.refusal.index >= n) return d;
  const store::Limit& refused = counters[r.refusal.index];
  d.outcome = Outcome::refuse;
  d.verdict.code = 421;
  d.verdict.reply = "421 4.7.0 too many connections from " + std::string(ip) + "; try again in " +
                    relay_policy::describe_wait(r.refusal.retry_after_ms) + "\r\n";
  d.verdict.log = client_log(c, ip, "connrate " + std::to_string(r.refusal.used) + "/" +
                                        std::to_string(r.refusal.limit) + " per " +
                                        period_text(refused.key.window_seconds) + ": 421");
  return d;
}

}  // namespace connection_policy
