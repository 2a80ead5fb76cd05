// inbound_policy.h: the inbound rates inmsg= and inrcpt= at RCPT (doc/DESIGN.md
// "Client connection limits and inbound rates"). Pure, beside
// connection_policy.h: the client limits from the table in, the store
// counters to charge out; a refusal in, the SMTP reply and the log line out.
//
// A recipient that is not relayed (the client is not a relay client) and
// passed every stock check is charged on every inrcpt window and, for the
// transaction's first such recipient, on every inmsg window too, in one
// atomic store::Store::charge under the client's budget key (the address, a
// shared network block, an IPv6 /64). The charges go into the transaction's
// receipt beside any relay charges, so a transaction that is not queued
// gives them back the same way.

#ifndef QT_INBOUND_POLICY_H
#define QT_INBOUND_POLICY_H

#include <cstddef>
#include <string_view>

#include "connection_policy.h"
#include "limits_table.h"
#include "relay_policy.h"
#include "store.h"

namespace inbound_policy {

using connection_policy::inmsg_metric;
using connection_policy::inrcpt_metric;

// The most counters one recipient can charge: every inrcpt and inmsg window.
inline constexpr std::size_t max_counters = 2 * spamt::max_windows;

// The answer to a recipient when the store fails and control/throttlefail
// says closed.
inline constexpr std::string_view fail_closed_reply = "451 4.3.0 temporary failure, try again later\r\n";

// Whether inmsg= or inrcpt= limit this client (not exempt, some window set).
bool applies(const spamt::ClientLimits& c) noexcept;

// Fills `out` (max_counters at least) with the counters of one inbound
// recipient: the inrcpt windows, then, when `first_in_transaction`, the
// inmsg windows. Returns how many (0 when nothing limits the client).
std::size_t counters_for_rcpt(const spamt::ClientLimits& c, bool first_in_transaction, store::Limit* out) noexcept;

// The refusal of `counter` (the one the store refused: `refused`) for a
// client at `ip`: "450 4.7.1 too much mail from IP" (inmsg) or "450 4.7.1 too
// many recipients from IP" (inrcpt), and the log line
// "throttle: client limit address IP ip IP inrcpt 3/3 per 1h: 450".
relay_policy::Verdict refusal(const spamt::ClientLimits& c, const store::Limit& counter,
                              const store::Refusal& refused, std::string_view ip);

}  // namespace inbound_policy

#endif
