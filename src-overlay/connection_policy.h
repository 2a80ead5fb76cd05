// connection_policy.h: the greeting's decision on a client's connections
// (conn=, connrate=), and the rates of its TLS sessions and AUTH commands
// (tlsrate=, authrate=; doc/DESIGN.md "Client connection limits and inbound
// rates"). Pure, beside relay_policy.h: the client limits from the table,
// the outcome of taking a connection slot (client_slots.h) and of charging
// the connection-rate counters (store::Store::charge, whose time the caller
// passes: store_clock in production, explicit times in tests) in; the
// decision, the SMTP reply and the log line out.
//
// Order at the greeting: a slot first (conn=, per host, freed at exit), then
// the rate charge (connrate=, in the store, shared by hosts on Redis). A
// session refused for its slot is not charged; one refused by the rate
// gives its slot back when it exits right after the 421.

#ifndef QT_CONNECTION_POLICY_H
#define QT_CONNECTION_POLICY_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "client_slots.h"
#include "limits_table.h"
#include "relay_policy.h"
#include "store.h"

namespace connection_policy {

inline constexpr std::string_view connrate_metric = "conn";
inline constexpr std::string_view tlsrate_metric = "tls";
inline constexpr std::string_view authrate_metric = "auth";
inline constexpr std::string_view inmsg_metric = "inmsg";
inline constexpr std::string_view inrcpt_metric = "inrcpt";

// What the greeting needs for this client.
struct Needs {
  bool slot = false;  // conn= is set: take a slot of limits.conn
  bool rate = false;  // connrate= is set: charge counters_for_connection()
};
Needs needs(const spamt::ClientLimits& c) noexcept;

// The connrate counters of a new session (at most spamt::max_windows).
std::size_t counters_for_connection(const spamt::ClientLimits& c, store::Limit* out) noexcept;

// Appends one counter per window of `windows` under the client's key with
// `metric` to out[n...]; returns the new count (inbound_policy's too).
std::size_t add_counters(const spamt::ClientLimits& c, const spamt::Windows& windows, std::string_view metric,
                         store::Limit* out, std::size_t n) noexcept;

// The log line of a client limit: "throttle: client limit address
// 192.0.2.7 ip 192.0.2.7 " followed by `what`.
std::string client_log(const spamt::ClientLimits& c, std::string_view ip, std::string_view what);
// ... of a rate's refusal: `what` is "SETTING USED/LIMIT per PERIOD: OUTCOME"
// ("connrate 3/3 per 1m: 421", "inrcpt 500/500 per 1h: 450").
std::string rate_refusal_log(const spamt::ClientLimits& c, std::string_view ip, std::string_view setting,
                             const store::Refusal& refused, std::uint32_t window_seconds, std::string_view outcome);

enum class Outcome : std::uint8_t { accept, refuse };

struct Decision {
  Outcome outcome = Outcome::accept;
  relay_policy::Verdict verdict;  // refuse: 421 reply and log line
  std::string log;                // accept: a line to log anyway (a fault), or empty
};

// The decision after taking the slot (before any rate charge): refuse when
// the slots are full. A slot fault is logged and lets the session in (the
// fail-open/closed choice for the store applies to the store only: no file
// fault here may keep every client out).
Decision after_slot(const spamt::ClientLimits& c, client_slots::Slot::Outcome slot, int slot_errno,
                    std::string_view ip);

// The decision after the rate charge `r` of `counters` (n of them).
// Store faults: `fail_closed` refuses (421 4.3.0), else accept and log.
Decision after_rate(const spamt::ClientLimits& c, const store::ChargeResult& r, const store::Limit* counters,
                    std::size_t n, bool fail_closed, std::string_view ip);

// tlsrate= and authrate=: one new TLS session (before its handshake,
// STARTTLS or SMTPS) or one AUTH command (successful or not), charged like
// connrate under the client's key with metric "tls" or "auth". The session
// goes on when one is refused: a STARTTLS or AUTH command is answered
// verdict.reply (454), an SMTPS connection is closed without a handshake.
enum class Event : std::uint8_t { starttls, smtps, auth };

// The counters of one such event (at most spamt::max_windows); none for an
// exempt client or one without the setting.
std::size_t counters_for_event(const spamt::ClientLimits& c, Event e, store::Limit* out) noexcept;

// The decision after the charge `r` of those counters: over the limit,
// "454 4.7.0 too many TLS sessions from ADDRESS" or "... AUTH commands ...";
// store faults as for after_rate (fail-closed: 454 4.3.0).
Decision after_event(const spamt::ClientLimits& c, Event e, const store::ChargeResult& r,
                     const store::Limit* counters, std::size_t n, bool fail_closed, std::string_view ip);

}  // namespace connection_policy

#endif
