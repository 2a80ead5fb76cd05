// store.h: where relay-limit counters live, behind an interface.
//
// Two backends: the embedded LMDB store of one host (store_lmdb.h, the
// default) and Redis shared by every host (store_redis.h); make_store()
// (store_factory.h) picks one from control/throttlestore. Everything a
// qmail-smtpd process needs from a store is one atomic step per decision:
//
//   store::Limit counters[] = {{{"u:alice@example.com", "rcpt", 86400}, 1000},
//                              {{"d:example.com", "rcpt", 3600}, 5000}};
//   store::Receipt receipt;    // what this transaction was charged
//   store::ChargeResult r = s.charge(counters, 1, store::store_clock, &receipt);
//   if (!r.ok())         ... store fault: log r.reason, apply fail-open/closed
//   else if (!r.accepted) ... counters[r.refusal.index] is full: 451, retry
//                            in about r.refusal.retry_after_ms
//   ...
//   s.refund(receipt, store::store_clock);  // RSET/QUIT/... before queueing;
//                                           // clears the receipt
//
// A charge checks every counter and either charges all of them or none: a
// refusal (or any fault) leaves the store as it was. Receipts record the
// bucket each charge went to, so a refund gives back exactly that, and does
// nothing for buckets that have left their window meanwhile.
//
// Every operation returns a Status and, unless ok, a short reason for the
// log line; the caller decides between fail-open and fail-closed. No
// operation throws (overlay C++ has no exceptions), aborts or waits without
// bound: lock waits and network round trips give up after the store's
// timeouts with `unavailable`.
//
// Time: every operation takes `now_ms`, the time of the event in
// milliseconds since the epoch. `store_clock` (what production passes) lets
// the store read its own clock at its atomic step: LMDB reads this host's
// CLOCK_REALTIME, Redis the server's TIME inside its script, so that hosts
// whose clocks differ still agree on windows. Tests pass explicit times and
// get the same answers from either backend.

#ifndef QT_STORE_H
#define QT_STORE_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "function_ref.h"
#include "window.h"  // window::never, window::clock_ms()

namespace store {

enum class Status : std::uint8_t {
  ok,
  unavailable,  // cannot open (missing, permission), lock wait timed out
  full,         // no room left for the data (map size, disk)
  corrupt,      // unreadable or of another format/version: never misread
  error,        // anything else, including a malformed request
};

// "ok", "unavailable", "full", "corrupt", "error"
std::string_view status_name(Status s) noexcept;

struct Result {
  Status status = Status::ok;
  std::string reason;  // short, for the log line; empty when ok

  bool ok() const noexcept { return status == Status::ok; }
  static Result failure(Status s, std::string reason) {
    return Result{s, std::move(reason)};
  }
};

// Limits on what a store accepts.
inline constexpr std::size_t max_identity = 400;        // bytes of a budget key
inline constexpr std::size_t max_metric = 32;           // bytes of a counter name
inline constexpr std::size_t max_counters = 32;         // counters in one charge
inline constexpr std::size_t max_record_key = 400;      // bytes of a record key
inline constexpr std::size_t max_record_value = 256;    // bytes of a record

// now_ms: "the store's own clock, read at its atomic step" (see above).
inline constexpr std::uint64_t store_clock = 0;

// One counter: who is counted (a budget key such as "u:alice@example.com",
// "a:192.0.2.7"), what ("rcpt", "msg", "authfail") and over which window.
// identity: non-empty, no NUL byte, at most max_identity bytes; metric: a
// name the program chose, 1..max_metric of a-z, 0-9, '_' and '-';
// window_seconds at least 1. Views: what they point to
// must outlive the call they are passed to (receipts keep copies).
struct CounterKey {
  std::string_view identity;
  std::string_view metric;
  std::uint32_t window_seconds = 0;
};

// A counter to charge and the most it may count in its window.
struct Limit {
  CounterKey key;
  std::uint32_t limit = 0;
};

// The counter that refused a charge. When several refuse, the one that
// frees up last (the charge needs all of them).
struct Refusal {
  std::size_t index = 0;              // into the counters passed to charge()
  std::uint64_t used = 0;             // its count in the window now
  std::uint32_t limit = 0;
  std::uint64_t retry_after_ms = 0;   // until the charge would fit; window::never if amount > limit
};

struct ChargeResult {
  Status status = Status::ok;
  std::string reason;
  bool accepted = false;  // meaningful when ok()
  Refusal refusal;        // when ok() && !accepted

  bool ok() const noexcept { return status == Status::ok; }
  static ChargeResult failure(Status s, std::string reason) {
    ChargeResult r;
    r.status = s;
    r.reason = std::move(reason);
    return r;
  }
};

// What was charged, to give it back. Owns copies of the keys; charges to the
// same counter and bucket are merged, so a transaction of many recipients
// keeps a few entries.
class Receipt {
 public:
  struct Entry {
    std::string identity;
    std::string metric;
    std::uint32_t window_seconds = 0;
    std::uint64_t bucket = 0;  // window bucket number the amount went to
    std::uint64_t amount = 0;
  };

  void add(const CounterKey& key, std::uint64_t bucket, std::uint64_t amount);
  void append(const Receipt& other);
  void clear() noexcept { entries_.clear(); }
  bool empty() const noexcept { return entries_.empty(); }
  const std::vector<Entry>& entries() const noexcept { return entries_; }

 private:
  std::vector<Entry> entries_;
};

// One counter as read back.
struct CounterUsage {
  std::string identity;
  std::string metric;
  std::uint32_t window_seconds = 0;
  std::uint64_t used = 0;             // events in the window now
  std::uint32_t limit = 0;            // the limit of its last charge
  std::uint64_t next_release_ms = 0;  // until its oldest counted event leaves the window
};

struct Stats {
  std::uint64_t counters = 0;    // counter entries held (idle ones until expired)
  std::uint64_t records = 0;     // opaque records held
  std::uint64_t bytes_used = 0;  // space its data takes now
  std::uint64_t bytes_max = 0;   // the most its data may take (0: unbounded)
  std::uint64_t file_bytes = 0;  // size of its file(s): what it ever took, plus free space (0: no files)
};

// Generic atomic read-modify-write of an opaque record (per-IP teergrube
// state and the like): the editor sees the current value (nullopt when
// there is none or it has expired) and the time of the step (the store's
// clock when store_clock was passed), and says what to do. It runs inside
// the store's atomic step, so it must be short and must not call the store.
// A store that updates optimistically (Redis: WATCH/MULTI/EXEC) calls it
// again when another process changed the record meanwhile; only the last
// call's answer is written.
struct RecordEdit {
  enum class Op : std::uint8_t { keep, put, erase };
  Op op = Op::keep;
  std::string value;               // put: at most max_record_value bytes
  std::uint64_t expires_at_ms = 0; // put: dropped from then on (no cron)

  static RecordEdit keep() { return {}; }
  static RecordEdit erase() { return {Op::erase, {}, 0}; }
  static RecordEdit put(std::string value, std::uint64_t expires_at_ms) {
    return {Op::put, std::move(value), expires_at_ms};
  }
};
using RecordEditor = FunctionRef<RecordEdit(std::optional<std::string_view> current, std::uint64_t now_ms)>;

class Store {
 public:
  virtual ~Store() = default;

  // Atomic check-and-charge of `amount` (at least 1) on every counter: all
  // have room and all are charged, or nothing is. On acceptance the charges
  // are added to *receipt (when given). At most max_counters counters, each
  // listed once.
  virtual ChargeResult charge(std::span<const Limit> counters, std::uint32_t amount, std::uint64_t now_ms,
                              Receipt* receipt) = 0;

  // Gives back what `receipt` records (one atomic step) and, when that
  // worked, clears it: a bucket does not know whose charges it holds, so
  // giving the same receipt back twice would take other charges away.
  // Buckets that left their window are skipped; counters that are gone are
  // left gone.
  virtual Result refund(Receipt& receipt, std::uint64_t now_ms) = 0;

  // Every counter of `identity` (all metrics and windows), replacing `out`.
  virtual Result usage(std::string_view identity, std::uint64_t now_ms, std::vector<CounterUsage>& out) = 0;

  // The `n` counters with the highest counts now (of `metric` only, unless
  // empty), highest first, replacing `out`.
  virtual Result top(std::size_t n, std::string_view metric, std::uint64_t now_ms,
                     std::vector<CounterUsage>& out) = 0;

  // Drops every counter of `identity`. *removed: how many (may be null).
  virtual Result reset(std::string_view identity, std::uint64_t now_ms, std::size_t* removed) = 0;

  // Drops up to `max` counters and records that are idle at `now_ms`. Writes
  // do this a few at a time anyway; this is for an explicit clean-up.
  virtual Result expire(std::uint64_t now_ms, std::size_t max, std::size_t* removed) = 0;

  // Atomic read-modify-write of the record `key` (1..max_record_key bytes).
  virtual Result update_record(std::string_view key, std::uint64_t now_ms, RecordEditor edit) = 0;

  // Reads the record `key`: nullopt when there is none or it has expired.
  virtual Result read_record(std::string_view key, std::uint64_t now_ms, std::optional<std::string>& out) = 0;

  virtual Result stats(Stats& out) = 0;

  // The store's clock (what store_clock stands for): this host's for LMDB,
  // the server's TIME for Redis.
  virtual Result clock(std::uint64_t& now_ms) = 0;

  // Where the store is, for people: a directory, a Redis URL (never a
  // password).
  virtual std::string describe() const = 0;
};

// Checks a charge request against the limits above (shared by backends).
// Returns an empty string when it is well formed, else what is wrong.
std::string check_request(std::span<const Limit> counters, std::uint32_t amount);
std::string check_key(const CounterKey& key);

// For top(): keeps the n busiest of `out` (most used first; ties by
// identity, metric, window) once it holds many more, so a scan of a big
// store needs bounded memory; final: sorted and cut to n.
void trim_top(std::vector<CounterUsage>& out, std::size_t n, bool final);

// now_ms, or this host's clock (window::clock_ms()) for store_clock.
std::uint64_t resolve_clock(std::uint64_t now_ms) noexcept;

}  // namespace store

#endif
