// window.cpp: sliding-window counting (window.h).

#include "window.h"

#include <cstring>
#include <ctime>

namespace window {

namespace {

std::uint64_t add_sat(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? never : r;
}

std::uint64_t mul_sat(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? never : r;
}

// Time at which slot i of `c` leaves the window: (newest - i + slots) * w.
std::uint64_t slot_end_ms(const Counter& c, std::uint64_t width_ms, unsigned i) noexcept {
  // newest >= i is not guaranteed for tiny bucket numbers; compute without
  // going below zero: newest + slots - i >= 1 always.
  return mul_sat(add_sat(c.newest, slots - i), width_ms);
}

}  // namespace

std::uint64_t bucket_ms(std::uint32_t seconds) noexcept {
  if (seconds == 0) seconds = 1;
  return (static_cast<std::uint64_t>(seconds) * 1000 + buckets - 1) / buckets;
}

std::uint64_t align(Counter& c, std::uint64_t width_ms, std::uint64_t now_ms) noexcept {
  if (width_ms == 0) width_ms = 1;
  const std::uint64_t now = now_ms / width_ms;
  if (now >= c.newest) {
    const std::uint64_t gap = now - c.newest;
    if (gap >= slots) {
      std::memset(c.slot, 0, sizeof c.slot);
    } else if (gap > 0) {
      const unsigned d = static_cast<unsigned>(gap);
      std::memmove(c.slot + d, c.slot, (slots - d) * sizeof c.slot[0]);
      std::memset(c.slot, 0, d * sizeof c.slot[0]);
    }
    c.newest = now;
  } else if (c.newest - now >= slots) {
    // The clock went back by more than a window: move the counter to the
    // new time as it stands.
    c.newest = now;
  }
  // else: went back by less than a window: keep charging the newest bucket.
  return c.newest;
}

std::uint64_t used(const Counter& c) noexcept {
  std::uint64_t sum = 0;
  for (std::uint32_t n : c.slot) sum += n;  // at most 61 * (2^32-1): no overflow
  return sum;
}

Room room(const Counter& c, std::uint64_t width_ms, std::uint64_t now_ms, std::uint32_t limit,
          std::uint32_t amount) noexcept {
  Room r;
  r.used = used(c);
  if (r.used + amount <= limit) {
    r.fits = true;
    return r;
  }
  if (amount > limit) {
    r.retry_after_ms = never;
    return r;
  }
  // Let the oldest buckets go one by one until the rest leaves room.
  std::uint64_t left = r.used;
  for (unsigned i = slots; i-- > 0;) {
    left -= c.slot[i];
    if (left + amount <= limit) {
      const std::uint64_t end = slot_end_ms(c, width_ms, i);
      r.retry_after_ms = end > now_ms ? end - now_ms : 0;
      if (r.retry_after_ms == 0) r.retry_after_ms = 1;
      return r;
    }
  }
  r.retry_after_ms = never;  // not reached: with every bucket gone, amount <= limit fits
  return r;
}

void charge(Counter& c, std::uint32_t amount) noexcept {
  const std::uint64_t sum = static_cast<std::uint64_t>(c.slot[0]) + amount;
  c.slot[0] = sum > 0xffffffffu ? 0xffffffffu : static_cast<std::uint32_t>(sum);
}

std::uint64_t refund(Counter& c, std::uint64_t bucket, std::uint64_t amount) noexcept {
  if (bucket > c.newest) return 0;  // from before a clock jump back: unknown bucket
  const std::uint64_t age = c.newest - bucket;
  if (age >= slots) return 0;  // has left the window already
  std::uint32_t& n = c.slot[age];
  const std::uint64_t back = amount < n ? amount : n;
  n -= static_cast<std::uint32_t>(back);
  return back;
}

std::uint64_t idle_at_ms(const Counter& c, std::uint64_t width_ms) noexcept {
  return slot_end_ms(c, width_ms, 0);
}

std::uint64_t next_release_ms(const Counter& c, std::uint64_t width_ms, std::uint64_t now_ms) noexcept {
  for (unsigned i = slots; i-- > 0;) {
    if (c.slot[i] == 0) continue;
    const std::uint64_t end = slot_end_ms(c, width_ms, i);
    return end > now_ms ? end - now_ms : 0;
  }
  return 0;
}

std::uint64_t clock_ms() noexcept {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec < 0) return 0;
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace window
