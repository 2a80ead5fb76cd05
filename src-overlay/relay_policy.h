// relay_policy.h: from the limits table's budgets to store counters, and
// from a refusal to the SMTP reply and the log line. Pure: plain values in,
// plain values out, no files, no clock. The verdicts of the AUTH failure
// limit live here too: they count in the same store, per client address.
//
// A relayed recipient is charged on every window of every applicable budget
// in one atomic step (store::Store::charge): its recipient counters ("rcpt")
// and, for the first relayed recipient of a transaction, its message
// counters ("msg") too. The message is thus reserved when the transaction
// first relays, and counted for good when it is queued; a transaction that
// is not queued gives both back.

#ifndef QT_RELAY_POLICY_H
#define QT_RELAY_POLICY_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "limits_table.h"
#include "store.h"

namespace relay_policy {

inline constexpr std::string_view rcpt_metric = "rcpt";
inline constexpr std::string_view msg_metric = "msg";
inline constexpr std::string_view authfail_metric = "authfail";

// The most counters one decision can charge: 3 budgets x 4 windows x 2.
inline constexpr std::size_t max_counters = 3 * spamt::max_windows * 2;

// Where each counter came from, to explain a refusal.
struct CounterOrigin {
  const spamt::Budget* budget = nullptr;
  spamt::Window window;
  std::string_view metric;
};

// Fills `out` (and `origins`, same size, at least max_counters each) with
// the counters to charge for one relayed recipient; `first_in_transaction`
// adds the message counters. Returns how many.
std::size_t counters_for_rcpt(std::span<const spamt::Budget> budgets, bool first_in_transaction,
                              store::Limit* out, CounterOrigin* origins) noexcept;

// The authfail counters of a client (at most max_windows).
std::size_t counters_for_authfail(const spamt::AuthFailLimit& limit, store::Limit* out) noexcept;

// "user alice@example.com", "domain example.com", "address 192.0.2.7",
// "network 192.0.2.0/24" for a budget key ("u:...", "d:...", "a:...", "n:...").
std::string describe_key(std::string_view budget_key);

// "about 3 hours", "about 20 minutes", "a few seconds"; "a long time" when
// the charge can never fit.
std::string describe_wait(std::uint64_t retry_after_ms);

// What qmail-smtpd answers and logs when a recipient is refused.
struct Verdict {
  unsigned code = 451;  // 451, 450 or 421 (the budget's action)
  std::string reply;    // complete SMTP reply line(s), CRLF-terminated
  std::string log;      // one log line, without the "qmail-smtpd: " prefix
};

// The refusal of `origin`'s counter, `used` of `limit` in its window, for a
// client at `ip`. The reply names the kind of limit and roughly when it
// frees up, and nothing about other users; the log line has every detail.
Verdict refusal(const CounterOrigin& origin, std::uint64_t used, std::uint32_t limit,
                std::uint64_t retry_after_ms, std::string_view ip);

// --- AUTH failure limits (authfail=, per client address) ---------------------
// session_throttle.cpp charges and reads the counters; these decide.

// Before AUTH reads credentials: the 454 refusal when a window of `limit` is
// already full in `usage` (the client's counters, as Store::usage() gives
// them), else nothing.
std::optional<Verdict> auth_attempt_refusal(const spamt::AuthFailLimit& limit,
                                            std::span<const store::CounterUsage> usage, std::string_view ip);

// After refused credentials whose failure did not fit: the 421 that closes
// the connection. `counter` is the one the store refused.
Verdict auth_failure_refusal(const spamt::AuthFailLimit& limit, const store::Limit& counter,
                             const store::Refusal& refused, std::string_view ip);

}  // namespace relay_policy

#endif
