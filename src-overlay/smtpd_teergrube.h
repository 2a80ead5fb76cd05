// smtpd_teergrube.h: the teergrube of one qmail-smtpd session.
//
// At DATA, before qmail-queue is started and before the 354: look up the
// client's teergrube settings (spamt(5): st, stmax, strcpt, tg, tgtext,
// flush, tarpitrelay), update its block's state in the store in one atomic
// step, and when the computed delay is due, take a slot of the global budget
// (tarpit_budget.h) and wait (client_wait.h), sending continuation lines.
// One log line per delay. Store faults never delay anyone (logged once).
//
// Relay clients and authenticated users are not delayed unless the entry
// says tarpitrelay; NOTHROTTLE turns it off like every other limit.

#ifndef QT_SMTPD_TEERGRUBE_H
#define QT_SMTPD_TEERGRUBE_H

#include <cstdint>
#include <string>

#include "client_wait.h"
#include "session_throttle.h"

namespace teergrube {

struct DataResult {
  bool delayed = false;
  bool client_gone = false;  // closed or reset
  bool flush = false;        // discard pipelined input now
  unsigned continuations = 0;
};

// Whether EHLO may offer PIPELINING: not when this client would be delayed
// with flush.
bool offer_pipelining(throttle::SessionThrottle& s);

// The DATA of a transaction of `rcpts` recipients. `fd`: the client
// socket; `continuation`: sends one "354-TEXT" line (see line_text()).
DataResult at_data(throttle::SessionThrottle& s, std::uint32_t rcpts, int fd, client_wait::Continuation continuation);

// The continuation line the last at_data() sends: "354-TEXT\r\n".
const char* line_text() noexcept;

}  // namespace teergrube

#endif
