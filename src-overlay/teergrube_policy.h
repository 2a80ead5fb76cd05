// teergrube_policy.h: the teergrube's decisions, apart from the waiting.
//
// Whether a client is delayed at all (its table entry, relay clients only
// with tarpitrelay), whether EHLO may offer PIPELINING, how long one DATA
// waits (the client's state updated in the store in one atomic step,
// teergrube_delay.h's arithmetic) and the log lines that say so. No sockets
// and no clock of its own: the caller passes the time (SessionThrottle's
// injected clock, else the store's), so unit tests drive it without
// waiting. smtpd_teergrube.cpp takes the budget slot and waits.

#ifndef QT_TEERGRUBE_POLICY_H
#define QT_TEERGRUBE_POLICY_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "limits_table.h"
#include "store.h"
#include "teergrube_delay.h"

namespace teergrube_policy {

// The settings that delay this client, or null: none active in the table,
// or a relay client (RELAYCLIENT, AUTH) whose entry lacks tarpitrelay.
const spamt::TeergrubeSettings* applies(const spamt::Lookup* lookup, bool relay_client) noexcept;

// Whether EHLO may offer PIPELINING: not to a client delayed with flush.
bool offers_pipelining(const spamt::TeergrubeSettings* settings) noexcept;

// One DATA's delay.
struct Delay {
  teergrube::Outcome outcome;  // outcome.delay_ms 0: no delay
  std::uint32_t rcpts = 0;
  std::uint32_t tg_seconds = 0;  // the settings' tg=, flush=
  bool flush = false;
  // The continuation text: a view into the lookup, valid until
  // SessionThrottle::release_for_wait().
  std::string_view text;
  // Where the tarpit budget's slots live (the store's directory).
  std::string_view directory;
  // The state's key, copied: the delay's log line needs it after the wait.
  char state_key_bytes[256] = {};
  std::size_t state_key_len = 0;

  std::string_view state_key() const noexcept { return {state_key_bytes, state_key_len}; }
};

// Updates the state of `settings`' client or block in `store` for a DATA
// of `rcpts` recipients at `now_ms` (store::store_clock: the store's own
// time) and returns the delay due. On a store fault the delay is none and
// `result` says why.
Delay decide(store::Store& store, const spamt::TeergrubeSettings& settings, std::uint32_t rcpts,
             std::uint64_t now_ms, store::Result& result);

// "throttle: teergrube ip 192.0.2.7 key a:192.0.2.7 rcpt 1 interval 500ms
// wait 2000ms delay 2000ms waited 2000ms: complete"
std::string delay_log(std::string_view ip, const Delay& delay, std::uint64_t waited_ms, std::string_view how);

// "throttle: store fault ip 192.0.2.7 teergrube: STATUS (REASON): no delay"
std::string fault_log(std::string_view ip, const store::Result& result);

}  // namespace teergrube_policy

#endif
