// window.h: sliding-window counting, pure arithmetic with the clock passed in.
//
// A counter says how many events happened in the last W seconds. It keeps W
// cut into `buckets` (60) equal buckets of `bucket_ms(W)` milliseconds,
// aligned on the epoch so that every process agrees where a bucket starts,
// plus the bucket in progress: `slots` (61) counts in all. An event is
// charged to the bucket in progress and counts as long as its bucket is one
// of the last 61, so it stops counting at the end of the 61st bucket:
//
//   with w = bucket_ms(W) = ceil(W * 1000 / 60) ms, an event at time t in
//   bucket k = floor(t / w) counts until (k + 61) * w, that is for more than
//   60w >= W and at most 61w <= W + W/60 + 61 ms.
//
// So an event counts for at least the whole window and at most one bucket
// (a sixtieth of the window, rounded up to the millisecond) longer. Hence
// "at most N in any W seconds" holds exactly (every earlier event within W
// of a new one is still counted when the new one is checked), and a client
// at its limit regains room at most W/60 later than an ideal sliding window
// would give it. No reset at fixed hours, no cron.
//
// Times are milliseconds of the wall clock (CLOCK_REALTIME, since the counts
// are shared between processes and kept across restarts). When the clock goes
// back by less than a window, a counter keeps its newest bucket and charges
// there (events then count a little longer, never shorter); when it goes
// back further, the counter is moved to the new time as it stands (events
// keep the remaining part of their lifetime). A huge jump forward just
// empties the counter. Counts saturate at 2^32-1 per bucket; sums are 64-bit.
//
// Nothing here allocates or fails; all of it is noexcept.

#ifndef QT_WINDOW_H
#define QT_WINDOW_H

#include <cstdint>
#include <limits>

namespace window {

inline constexpr unsigned buckets = 60;           // a window is cut into this many buckets
inline constexpr unsigned slots = buckets + 1;    // ... plus the bucket in progress
inline constexpr std::uint64_t never = std::numeric_limits<std::uint64_t>::max();

// Length of one bucket of a window of `seconds` (at least 1): ceil(seconds*1000/60) ms.
std::uint64_t bucket_ms(std::uint32_t seconds) noexcept;

// The state of one counter: fixed size, plain data, stored as it is.
struct Counter {
  std::uint64_t newest = 0;            // bucket number (time / bucket_ms) of slot[0]
  std::uint32_t slot[slots] = {};      // slot[i]: events charged in bucket newest - i
};

// Brings `c` to time `now_ms` (see the clock rules above) and returns the
// bucket that a charge made now goes to (c.newest afterwards).
std::uint64_t align(Counter& c, std::uint64_t width_ms, std::uint64_t now_ms) noexcept;

// Events counted by an aligned counter.
std::uint64_t used(const Counter& c) noexcept;

// Whether `amount` more events fit under `limit`, and if not, in how many
// milliseconds from `now_ms` enough counted events will have left the window
// for them to fit (assuming nothing else is charged); `never` when amount >
// limit. `c` must be aligned to now_ms.
struct Room {
  bool fits = false;
  std::uint64_t used = 0;
  std::uint64_t retry_after_ms = 0;  // 0 when it fits
};
Room room(const Counter& c, std::uint64_t width_ms, std::uint64_t now_ms, std::uint32_t limit,
          std::uint32_t amount) noexcept;

// Adds `amount` to the bucket in progress of an aligned counter (saturating).
void charge(Counter& c, std::uint32_t amount) noexcept;

// Gives back up to `amount` charged to bucket number `bucket`, if that
// bucket is still one of the counter's slots; a bucket that has left the
// window is not touched (its events no longer count, and its slot may hold
// newer ones). The counter need not be aligned first. Returns how much was
// given back.
std::uint64_t refund(Counter& c, std::uint64_t bucket, std::uint64_t amount) noexcept;

// When the last counted event of `c` leaves the window: (newest + 61) * w,
// saturating. From then on the counter is empty and can be dropped.
std::uint64_t idle_at_ms(const Counter& c, std::uint64_t width_ms) noexcept;

// Time until the oldest counted event leaves the window (0 when none).
std::uint64_t next_release_ms(const Counter& c, std::uint64_t width_ms, std::uint64_t now_ms) noexcept;

// Milliseconds since the epoch, CLOCK_REALTIME: the clock the store uses.
std::uint64_t clock_ms() noexcept;

}  // namespace window

#endif
