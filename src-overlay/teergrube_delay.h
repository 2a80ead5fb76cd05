// teergrube_delay.h: spamthrottle's delay, as pure arithmetic.
//
// At DATA, a client (or the block or group it shares state with) that sends
// faster than its table entry allows is delayed before the 354. The state
// kept per client block is the time its last message was released (its DATA
// plus the delay applied) and the wait that message computed. For a message of R recipients, T milliseconds after the
// block's previous one whose wait was W:
//
//   rcpt factor  F = R - (R >> (R / strcpt)), at least 1   (1 when strcpt is 0)
//   wait         V = W * st * R / T, at least 100 ms;
//                V = 100 ms when there is no state or T > reset = stmax * max(strcpt, 1)
//   new wait     W' = F * V
//   delay        min(W', stmax) when W' >= 1000 ms, else none
//
// That is spamthrottle 2.0x's controller: the wait grows by st/T with every
// message sent less than st apart and shrinks when they come slower, more
// recipients per message weigh more, and an idle client starts afresh.
// Where this differs from spamthrottle, on purpose:
// - 64-bit arithmetic that saturates, and the stored wait is capped at
//   64 * stmax: spamthrottle stored it in 32 bits, where it wrapped around
//   to a small value, releasing the fastest senders;
// - stmax = 0 ("no maximum") delays at most max_delay_ms (an hour), and
//   resets state after an hour of silence (spamthrottle's reset would have
//   been 0 ms: every message a fresh start);
// - T is at least 1 ms (spamthrottle could divide by zero).

#ifndef QT_TEERGRUBE_DELAY_H
#define QT_TEERGRUBE_DELAY_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace teergrube {

inline constexpr std::uint64_t base_wait_ms = 100;     // the least wait
inline constexpr std::uint64_t min_delay_ms = 1000;    // shorter waits are not applied
inline constexpr std::uint64_t max_delay_ms = 3600000; // when stmax is 0
inline constexpr std::uint64_t stored_cap_factor = 64; // stored wait <= 64 * stmax
inline constexpr std::uint64_t clock_slack_ms = 10000; // clocks of processes may differ this much

// What is kept per client block between messages.
struct State {
  std::uint64_t last_ms = 0;  // when its last message was released (DATA + delay)
  std::uint64_t wait_ms = 0;  // the wait that message computed (uncapped by stmax)
};

struct Params {
  std::uint32_t st_ms = 0;     // 0: off
  std::uint32_t stmax_ms = 0;  // 0: no maximum (max_delay_ms)
  std::uint32_t strcpt = 0;    // reasonable recipients per message; 0: ignore recipients
};

struct Outcome {
  State next;                   // to store
  std::uint64_t interval_ms = 0;  // T (0 when there was no state)
  std::uint64_t delay_ms = 0;     // to apply now (0: none)
  bool fresh = false;             // no state, or idle past the reset
};

// The delay for a message of `rcpts` recipients at `now_ms`, given the
// block's state (nullopt: none). Pure.
Outcome compute(const Params& p, std::optional<State> previous, std::uint32_t rcpts, std::uint64_t now_ms) noexcept;

// How long a state is worth keeping after `now_ms`: past it, compute()
// starts afresh anyway.
std::uint64_t reset_after_ms(const Params& p) noexcept;

// The store record of the state kept under `state_key` ("a:192.0.2.7",
// "n:192.0.2.0/24", "g:NAME"): "tg:" and the key.
std::string record_key(std::string_view state_key);

// The stored form: 16 bytes, little-endian. decode() rejects anything else.
std::string encode(const State& s);
std::optional<State> decode(std::string_view bytes) noexcept;

}  // namespace teergrube

#endif
