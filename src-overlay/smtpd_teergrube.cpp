// smtpd_teergrube.cpp: see smtpd_teergrube.h.

#include "smtpd_teergrube.h"

#include <cstdlib>
#include <cstring>

#include <malloc.h>

#include "logline.h"
#include "spamt_syntax.h"
#include "tarpit_budget.h"

namespace teergrube {

namespace {

// The continuation line, "354-TEXT\r\n" with TEXT at most spamt::tgtext_max
// bytes. Not on the heap: a held session keeps as little there as it can.
constexpr std::size_t text_at = 4;  // after "354-"
char line[text_at + spamt::tgtext_max + 3] = "354-";  // then CR, LF, NUL
static_assert(sizeof line - text_at - 3 == spamt::tgtext_max, "the line holds the longest tgtext the table accepts");

}  // namespace

const char* line_text() noexcept { return line; }

bool offer_pipelining(throttle::SessionThrottle& s) { return s.teergrube_offers_pipelining(); }

DataResult at_data(throttle::SessionThrottle& s, std::uint32_t rcpts, int fd, client_wait::Continuation continuation) {
  DataResult result;
  // The decision is teergrube_policy.h's; what the log line needs is kept
  // in `d`, off the heap while the session is held.
  const teergrube_policy::Delay d = s.teergrube_at_data(rcpts);
  if (d.outcome.delay_ms == 0) return result;
  auto log = [&](std::uint64_t waited, std::string_view how) { s.teergrube_log(d, waited, how); };

  tarpit::Slot slot;
  const std::uint32_t allowed = s.tarpit_budget();
  switch (slot.acquire(std::string(d.directory) + "/tarpit.slots", allowed)) {
    case tarpit::Slot::Outcome::spent:
      log(0, "over budget " + std::to_string(allowed));
      return result;
    case tarpit::Slot::Outcome::fault:
      log(0, "no budget slot (" + logline::text(std::string(std::strerror(slot.error()))) + ")");
      return result;
    case tarpit::Slot::Outcome::held:
      break;
  }

  const std::size_t text_len = d.text.copy(line + text_at, spamt::tgtext_max);
  line[text_at + text_len] = '\r';
  line[text_at + text_len + 1] = '\n';
  line[text_at + text_len + 2] = '\0';
  const std::uint32_t tg_seconds = d.tg_seconds;
  const bool flush = d.flush;
  // Held for minutes, by the thousand: give back what the wait does not
  // need (d.text points into the lookup: not used after this).
  s.release_for_wait();
  malloc_trim(0);
  client_wait::Result w = client_wait::wait(fd, d.outcome.delay_ms, tg_seconds, continuation);
  slot.release();
  result.delayed = true;
  result.continuations = w.continuations;
  result.client_gone = w.outcome != client_wait::Outcome::complete;
  result.flush = flush && !result.client_gone;
  log(w.waited_ms, client_wait::outcome_name(w.outcome));
  return result;
}

}  // namespace teergrube
