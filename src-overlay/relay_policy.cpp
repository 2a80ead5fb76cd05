// relay_policy.cpp: see relay_policy.h.

#include "relay_policy.h"

#include "helpers.h"
#include "logline.h"

namespace relay_policy {

namespace {

std::size_t add_windows(const spamt::Budget& b, const spamt::Windows& windows, std::string_view metric,
                        store::Limit* out, CounterOrigin* origins, std::size_t n) noexcept {
  for (const spamt::Window& w : windows) {
    out[n] = store::Limit{{b.key, metric, w.seconds}, w.limit};
    origins[n] = CounterOrigin{&b, w, metric};
    ++n;
  }
  return n;
}

using helpers::period_text;

std::string unit_text(std::uint64_t n, const char* unit) {
  std::string s = "about " + std::to_string(n) + " " + unit;
  if (n != 1) s += "s";
  return s;
}

}  // namespace

std::size_t counters_for_rcpt(std::span<const spamt::Budget> budgets, bool first_in_transaction,
                              store::Limit* out, CounterOrigin* origins) noexcept {
  std::size_t n = 0;
  for (const spamt::Budget& b : budgets) {
    n = add_windows(b, *b.rcpt, rcpt_metric, out, origins, n);
    if (first_in_transaction) n = add_windows(b, *b.msg, msg_metric, out, origins, n);
  }
  return n;
}

std::size_t counters_for_authfail(const spamt::AuthFailLimit& limit, store::Limit* out) noexcept {
  std::size_t n = 0;
  for (const spamt::Window& w : *limit.windows)
    out[n++] = store::Limit{{limit.key, authfail_metric, w.seconds}, w.limit};
  return n;
}

std::string describe_key(std::string_view key) {
  std::string_view kind = "client";
  if (key.size() >= 2 && key[1] == ':') {
    switch (key[0]) {
      case 'u': kind = "user"; break;
      case 'd': kind = "domain"; break;
      case 'a': kind = "address"; break;
      case 'n': kind = "network"; break;
      default: break;
    }
    key.remove_prefix(2);
  }
  return std::string(kind) + " " + logline::field(key);
}

std::string describe_wait(std::uint64_t ms) {
  if (ms == window::never) return "a long time";
  std::uint64_t s = (ms + 999) / 1000;
  if (s < 60) return "a few seconds";
  if (s < 2 * 3600) return unit_text((s + 59) / 60, "minute");
  if (s < 2 * 86400) return unit_text((s + 1799) / 3600, "hour");
  return unit_text((s + 43199) / 86400, "day");
}

Verdict refusal(const CounterOrigin& origin, std::uint64_t used, std::uint32_t limit,
                std::uint64_t retry_after_ms, std::string_view ip) {
  Verdict v;
  v.code = origin.budget->action;
  if (v.code != 450 && v.code != 421) v.code = 451;
  std::string what = origin.metric == msg_metric ? "messages" : "recipients";
  std::string period = period_text(origin.window.seconds);
  std::string who = describe_key(origin.budget->key);

  v.reply = std::to_string(v.code) + " 4.7.1 relay limit reached: " + what + " per " + period + " for " + who;
  if (v.code == 421)
    v.reply += "; closing connection\r\n";
  else
    v.reply += "; try again in " + describe_wait(retry_after_ms) + "\r\n";

  v.log = "throttle: relay limit " + who + " ip " + logline::field(ip) + " " + std::string(origin.metric) + " " +
          std::to_string(used) + "/" + std::to_string(limit) + " per " + period + ": " + std::to_string(v.code);
  return v;
}

namespace {

constexpr const char auth_drop[] = "421 4.7.0 too many authentication failures, closing connection\r\n";

// "throttle: auth limit address 192.0.2.7 ip 192.0.2.7 authfail 3/3 per 1h: 454"
std::string auth_log(const spamt::AuthFailLimit& limit, std::string_view ip, std::uint64_t used, std::uint32_t max,
                     std::uint32_t window_seconds, unsigned code) {
  return "throttle: auth limit " + describe_key(limit.key) + " ip " + logline::field(ip) + " authfail " +
         std::to_string(used) + "/" + std::to_string(max) + " per " + period_text(window_seconds) + ": " +
         std::to_string(code);
}

}  // namespace

std::optional<Verdict> auth_attempt_refusal(const spamt::AuthFailLimit& limit,
                                            std::span<const store::CounterUsage> usage, std::string_view ip) {
  for (const spamt::Window& w : *limit.windows) {
    for (const store::CounterUsage& u : usage) {
      if (u.metric != authfail_metric || u.window_seconds != w.seconds || u.used < w.limit) continue;
      Verdict v;
      v.code = 454;
      v.log = auth_log(limit, ip, u.used, w.limit, w.seconds, v.code);
      v.reply = "454 4.7.0 too many authentication failures from your address; try again in " +
                describe_wait(u.next_release_ms) + "\r\n";
      return v;
    }
  }
  return std::nullopt;
}

Verdict auth_failure_refusal(const spamt::AuthFailLimit& limit, const store::Limit& counter,
                             const store::Refusal& refused, std::string_view ip) {
  Verdict v;
  v.code = 421;
  v.log = auth_log(limit, ip, refused.used, refused.limit, counter.key.window_seconds, v.code);
  v.reply = auth_drop;
  return v;
}

}  // namespace relay_policy
