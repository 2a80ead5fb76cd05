// redis_functions.h: the server side of the Redis store - a Redis 7
// function library (Lua) that does what window.h does in C++, atomically on
// the server, with the server's clock.
//
// Library qmail_throttle_1_DIGEST, functions qt1_NAME_DIGEST: DIGEST is a
// hash of the library's source, so a qmail-throttle with other Lua finds
// its functions missing and loads its own, while the old ones go on serving
// the old binaries during an upgrade (1 follows the key format "qt1:"; a
// change of that makes a new prefix). Functions (without the digest):
//   qt1_charge  KEYS identity keys; ARGV now amount token hold_ms n
//               {key_index field window_seconds limit}*n
//               -> {1, now, bucket*n} or {0, now, index, used, limit, retry_ms}
//               (retry_ms -1: never). token "": a charge; else a reservation
//               kept as "~token" until settled or hold_ms passed (then given
//               back by the next function that touches the key). hold_ms 0:
//               not a cluster (no reservations exist; none is looked for).
//   qt1_settle  KEYS key; ARGV token commit(1|0) -> 1, or 0 when it is gone
//   qt1_refund  KEYS identity keys; ARGV n {key_index field bucket amount}*n
//   qt1_usage   KEYS key; ARGV now -> {now, {field used limit next_ms}...} (no writes)
//   qt1_reset   KEYS key -> counters dropped
//   qt1_expire  KEYS key; ARGV now -> entries dropped (idle counters, expired record)
// now "0": the server's TIME. A counter is the hash field "METRIC/WINDOW" of
// the identity's key "qt1:{IDENTITY}", value "NEWEST LIMIT S0 S1 ... SK"
// (window.h's Counter; slots after SK are 0). Every key a function writes
// is given an expiry of at least the idle time of what it holds plus a
// minute; no function leaves a key without one.

#ifndef QT_REDIS_FUNCTIONS_H
#define QT_REDIS_FUNCTIONS_H

#include <cstdint>
#include <string>
#include <string_view>

namespace redis_functions {

inline constexpr std::string_view key_prefix = "qt1:";        // "qt1:{IDENTITY}"
inline constexpr std::string_view record_prefix = "qt1:r:";   // "qt1:r:{KEY}"

enum class Function : std::uint8_t { charge, settle, refund, usage, reset, expire };

// "qt1_charge_1a2b3c4d": what FCALL calls.
std::string name(Function f);

// The library's source, for FUNCTION LOAD REPLACE.
std::string_view source();

}  // namespace redis_functions

#endif
