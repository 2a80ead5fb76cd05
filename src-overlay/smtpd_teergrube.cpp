// smtpd_teergrube.cpp: see smtpd_teergrube.h.

#include "smtpd_teergrube.h"

#include <cstdlib>
#include <cstring>

#include <malloc.h>

#include "logline.h"
#include "tarpit_budget.h"
#include "teergrube_delay.h"
#include "throttle_controls.h"

namespace teergrube {

namespace {

// The continuation line, "354-TEXT\r\n" (tgtext is at most 200 bytes). Not
// on the heap: a held session keeps as little there as it can.
char line[4 + 256 + 3] = "354-";
bool store_fault_logged = false;

const spamt::TeergrubeSettings* settings_for(throttle::SessionThrottle& s) {
  if (s.settings().disabled) return nullptr;
  const spamt::Lookup* l = s.lookup();
  if (l == nullptr) return nullptr;
  const spamt::TeergrubeSettings& t = l->teergrube();
  if (!t.active()) return nullptr;
  if (s.relay_client() && !t.tarpitrelay) return nullptr;
  return &t;
}

// control/tarpitbudget (throttle_controls.h); a value that is not valid is
// logged and the default applies.
std::uint32_t budget(throttle::SessionThrottle& s) {
  const throttle_controls::Number& n = throttle_controls::tarpit_budget;
  const throttle_controls::Reading r = throttle_controls::read(n, "control/tarpitbudget");
  using Status = throttle_controls::Reading::Status;
  if (r.status == Status::invalid || r.status == Status::unreadable) s.emit(throttle_controls::log_line(n, r));
  return r.value;
}

std::string ms(std::uint64_t v) { return std::to_string(v) + "ms"; }

}  // namespace

const char* line_text() noexcept { return line; }

bool offer_pipelining(throttle::SessionThrottle& s) {
  const spamt::TeergrubeSettings* t = settings_for(s);
  return t == nullptr || !t->flush;
}

DataResult at_data(throttle::SessionThrottle& s, std::uint32_t rcpts, int fd, client_wait::Continuation continuation) {
  DataResult result;
  const spamt::TeergrubeSettings* t = settings_for(s);
  if (t == nullptr) return result;

  const Params params{t->st_ms, t->stmax_ms, t->strcpt};
  Outcome outcome;
  // `now` is read inside the store's atomic step (the store's clock:
  // Redis's for every host): sessions of a group are ordered.
  auto edit = [&](std::optional<std::string_view> current, std::uint64_t now) {
    std::optional<State> previous;
    if (current) previous = decode(*current);
    outcome = compute(params, previous, rcpts, now);
    return store::RecordEdit::put(encode(outcome.next), now + reset_after_ms(params) + 1000);
  };
  store::Result r = s.store()->update_record(record_key(t->state_key), s.now(), edit);
  if (!r.ok()) {
    if (!store_fault_logged)
      s.emit("throttle: store fault ip " + logline::field(s.ip()) + " teergrube: " +
             std::string(store::status_name(r.status)) + " (" + logline::text(r.reason) + "): no delay");
    store_fault_logged = true;
    return result;
  }
  if (outcome.delay_ms == 0) return result;

  // What the log line needs, kept off the heap while the session is held.
  char state_key[256];
  const std::size_t key_len = t->state_key.copy(state_key, sizeof state_key);
  auto log = [&](std::uint64_t waited, std::string_view how) {
    s.emit("throttle: teergrube ip " + logline::field(s.ip()) + " key " +
           logline::field(std::string_view(state_key, key_len)) + " rcpt " + std::to_string(rcpts) + " interval " +
           (outcome.fresh ? std::string("none") : ms(outcome.interval_ms)) + " wait " + ms(outcome.next.wait_ms) +
           " delay " + ms(outcome.delay_ms) + " waited " + ms(waited) + ": " + std::string(how));
  };

  tarpit::Slot slot;
  const std::uint32_t allowed = budget(s);
  switch (slot.acquire(s.settings().store.directory + "/tarpit.slots", allowed)) {
    case tarpit::Slot::Outcome::spent:
      log(0, "over budget " + std::to_string(allowed));
      return result;
    case tarpit::Slot::Outcome::fault:
      log(0, "no budget slot (" + logline::text(std::string(std::strerror(slot.error()))) + ")");
      return result;
    case tarpit::Slot::Outcome::held:
      break;
  }

  const std::size_t text_len = t->text.copy(line + 4, sizeof line - 7);
  line[4 + text_len] = '\r';
  line[5 + text_len] = '\n';
  line[6 + text_len] = '\0';
  const std::uint32_t tg_seconds = t->tg_seconds;
  const bool flush = t->flush;
  // Held for minutes, by the thousand: give back what the wait does not
  // need (t points into the lookup: not used after this).
  s.release_for_wait();
  malloc_trim(0);
  client_wait::Result w = client_wait::wait(fd, outcome.delay_ms, tg_seconds, continuation);
  slot.release();
  result.delayed = true;
  result.continuations = w.continuations;
  result.client_gone = w.outcome != client_wait::Outcome::complete;
  result.flush = flush && !result.client_gone;
  log(w.waited_ms, client_wait::outcome_name(w.outcome));
  return result;
}

}  // namespace teergrube
