// teergrube_policy.cpp: see teergrube_policy.h.

#include "teergrube_policy.h"

#include <optional>

#include "logline.h"

namespace teergrube_policy {

namespace {

std::string ms(std::uint64_t v) { return std::to_string(v) + "ms"; }

}  // namespace

const spamt::TeergrubeSettings* applies(const spamt::Lookup* lookup, bool relay_client) noexcept {
  if (lookup == nullptr) return nullptr;
  const spamt::TeergrubeSettings& t = lookup->teergrube();
  if (!t.active()) return nullptr;
  if (relay_client && !t.tarpitrelay) return nullptr;
  return &t;
}

bool offers_pipelining(const spamt::TeergrubeSettings* settings) noexcept {
  return settings == nullptr || !settings->flush;
}

Delay decide(store::Store& store, const spamt::TeergrubeSettings& t, std::uint32_t rcpts, std::uint64_t now_ms,
             store::Result& result) {
  Delay d;
  d.rcpts = rcpts;
  d.tg_seconds = t.tg_seconds;
  d.flush = t.flush;
  d.text = t.text;
  d.state_key_len = t.state_key.copy(d.state_key_bytes, sizeof d.state_key_bytes);
  const teergrube::Params params{t.st_ms, t.stmax_ms, t.strcpt};
  teergrube::Outcome outcome;
  // `now` is read inside the store's atomic step (the store's clock:
  // Redis's for every host): sessions of a group are ordered.
  auto edit = [&](std::optional<std::string_view> current, std::uint64_t now) {
    std::optional<teergrube::State> previous;
    if (current) previous = teergrube::decode(*current);
    outcome = teergrube::compute(params, previous, rcpts, now);
    return store::RecordEdit::put(teergrube::encode(outcome.next), now + teergrube::reset_after_ms(params) + 1000);
  };
  result = store.update_record(teergrube::record_key(t.state_key), now_ms, edit);
  if (result.ok()) d.outcome = outcome;
  return d;
}

std::string delay_log(std::string_view ip, const Delay& d, std::uint64_t waited_ms, std::string_view how) {
  const teergrube::Outcome& o = d.outcome;
  return "throttle: teergrube ip " + logline::field(ip) + " key " + logline::field(d.state_key()) + " rcpt " +
         std::to_string(d.rcpts) + " interval " + (o.fresh ? std::string("none") : ms(o.interval_ms)) + " wait " +
         ms(o.next.wait_ms) + " delay " + ms(o.delay_ms) + " waited " + ms(waited_ms) + ": " + std::string(how);
}

std::string fault_log(std::string_view ip, const store::Result& r) {
  return "throttle: store fault ip " + logline::field(ip) + " teergrube: " + std::string(store::status_name(r.status)) +
         " (" + logline::text(r.reason) + "): no delay";
}

}  // namespace teergrube_policy
