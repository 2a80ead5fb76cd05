// teergrube_delay.cpp: see teergrube_delay.h.

#include "teergrube_delay.h"

#include <limits>

namespace teergrube {

namespace {

constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();

std::uint64_t mul_sat(std::uint64_t a, std::uint64_t b) noexcept {
  if (a != 0 && b > u64_max / a) return u64_max;
  return a * b;
}

std::uint64_t stmax_or_default(const Params& p) noexcept {
  return p.stmax_ms != 0 ? p.stmax_ms : max_delay_ms;
}

}  // namespace

std::uint64_t reset_after_ms(const Params& p) noexcept {
  return mul_sat(stmax_or_default(p), p.strcpt > 1 ? p.strcpt : 1);
}

Outcome compute(const Params& p, std::optional<State> previous, std::uint32_t rcpts, std::uint64_t now_ms) noexcept {
  Outcome o;
  const std::uint64_t r = rcpts != 0 ? rcpts : 1;

  // rcpt factor: R - (R >> (R / strcpt)), at least 1
  std::uint64_t factor = 1;
  if (p.strcpt != 0) {
    const std::uint64_t shift = r / p.strcpt;
    const std::uint64_t f = shift >= 64 ? r : r - (r >> shift);
    factor = f > 1 ? f : 1;
  }

  std::uint64_t wait = base_wait_ms;
  // A release time ahead of now: another session of the block is being
  // held right now (T counts as 0: as fast as it gets); ahead by more than
  // any delay: the clock went back, start afresh.
  const bool ahead = previous && now_ms < previous->last_ms;
  if (previous && (!ahead || previous->last_ms - now_ms <= stmax_or_default(p) + clock_slack_ms)) {
    const std::uint64_t t = ahead ? 0 : now_ms - previous->last_ms;
    o.interval_ms = t;
    if (t <= reset_after_ms(p)) {
      const std::uint64_t tt = t != 0 ? t : 1;
      // W * st * R / T without overflow: divide as early as exactness allows
      std::uint64_t v = mul_sat(previous->wait_ms, p.st_ms);
      v = v == u64_max ? u64_max : mul_sat(v, r) / tt;
      if (v > wait) wait = v;
    } else {
      o.fresh = true;
    }
  } else {
    o.fresh = true;  // no state, or a clock that went back: start afresh
  }

  const std::uint64_t stmax = stmax_or_default(p);
  const std::uint64_t w = mul_sat(factor, wait);
  const std::uint64_t cap = mul_sat(stmax, stored_cap_factor);
  o.next.wait_ms = w < cap ? w : cap;
  if (p.st_ms != 0 && w >= min_delay_ms) o.delay_ms = w < stmax ? w : stmax;
  // T of the next message counts from the end of this delay: how soon the
  // client comes back once released, not how long it was held.
  o.next.last_ms = now_ms + o.delay_ms;
  return o;
}

std::string encode(const State& s) {
  std::string out(16, '\0');
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>((s.last_ms >> (8 * i)) & 0xff);
    out[8 + i] = static_cast<char>((s.wait_ms >> (8 * i)) & 0xff);
  }
  return out;
}

std::optional<State> decode(std::string_view bytes) noexcept {
  if (bytes.size() != 16) return std::nullopt;
  State s;
  for (int i = 7; i >= 0; --i) {
    s.last_ms = (s.last_ms << 8) | static_cast<unsigned char>(bytes[i]);
    s.wait_ms = (s.wait_ms << 8) | static_cast<unsigned char>(bytes[8 + i]);
  }
  return s;
}

std::string record_key(std::string_view state_key) { return "tg:" + std::string(state_key); }

}  // namespace teergrube
