// spamt_settings.h: the values one entry of the limits table carries.
//
// Plain data shared by the parser (spamt_syntax.h), the cdb record format
// (spamt_format.h) and the reader (limits_table.h). An entry of the table
// has an identity and up to three kinds of settings ("aspects"), each
// optional and each from its own source line:
//   relay      rcpt=, msg=, exempt, action=, each, unauthenticated
//   teergrube  st=, stmax=, flush=, strcpt=, tg=, tgtext=, prefix4=,
//              prefix6=, group=, tarpitrelay
//   authfail   authfail=
//   client     conn=, connrate=, inmsg=, inrcpt=, tlsrate=, authrate=,
//              exempt, each (Postfix anvil's limits, issue 17)
// See doc/spamt.5 for what they mean.

#ifndef QT_SPAMT_SETTINGS_H
#define QT_SPAMT_SETTINGS_H

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "helpers.h"

namespace spamt {

// What an entry's identity names. Values are stored in the cdb.
enum class Kind : std::uint8_t {
  user = 1,      // an authenticated user: alice@example.com, or a bare login
  domain = 2,    // @example.com: every user of the domain, one budget
  address = 3,   // one IPv4 or IPv6 address
  network = 4,   // an IPv4 or IPv6 CIDR block
  fallback = 5,  // "default": applies to a client no other entry matches
};

// "user", "domain", "address", "network", "default"
std::string_view kind_name(Kind k) noexcept;

// The longest user name or domain in the table (bytes).
constexpr std::size_t name_max = 255;

// Up to this many windows per counter (rcpt=100/1h,1000/1d has two).
constexpr std::size_t max_windows = 4;
// The longest window: 366 days.
constexpr std::uint32_t max_period_seconds = 366u * 86400u;

// At most `limit` events in any `seconds`-long window.
struct Window {
  std::uint32_t limit = 0;
  std::uint32_t seconds = 0;
  bool operator==(const Window&) const = default;
};

// The windows of one counter, shortest first. count == 0: no limit.
struct Windows {
  std::uint8_t count = 0;
  Window at[max_windows] = {};

  const Window* begin() const noexcept { return at; }
  const Window* end() const noexcept { return at + count; }
  bool empty() const noexcept { return count == 0; }
  bool operator==(const Windows& o) const noexcept;
};

// Relay limits of one entry.
struct Relay {
  Windows rcpt;                 // relayed recipients
  Windows msg;                  // messages with at least one relayed recipient
  std::uint16_t action = 451;   // reply when over a limit: 451, 450 or 421
  bool exempt = false;          // a client this entry matches is never relay-limited
  bool each = false;            // network entries: one budget per client in the block
  bool unauthenticated = false; // IP entries: only for clients that did not AUTH
  bool operator==(const Relay&) const = default;
};

// Client limits of one entry (doc/DESIGN.md, "Client connection limits and
// inbound rates"): checked for every client, relay client or not.
struct Client {
  std::uint32_t conn = 0;  // sessions at once; 0 = no limit
  Windows connrate;        // new sessions
  Windows inmsg;           // messages accepted from a client that is not a relay client
  Windows inrcpt;          // recipients accepted from such a client
  Windows tlsrate;         // new STARTTLS/SMTPS sessions
  Windows authrate;        // AUTH commands
  bool exempt = false;     // a client this entry matches is never client-limited
  bool each = false;       // network entries: one count per client in the block
  bool operator==(const Client&) const = default;
  // No limit at all (exempt, or every setting 0).
  bool unlimited() const noexcept {
    return exempt || (conn == 0 && connrate.empty() && inmsg.empty() && inrcpt.empty() && tlsrate.empty() &&
                      authrate.empty());
  }
};

// Which teergrube fields an entry sets (Teergrube::set).
namespace field {
constexpr std::uint16_t st = 1 << 0;
constexpr std::uint16_t stmax = 1 << 1;
constexpr std::uint16_t flush = 1 << 2;
constexpr std::uint16_t strcpt = 1 << 3;
constexpr std::uint16_t tg = 1 << 4;
constexpr std::uint16_t tgtext = 1 << 5;
constexpr std::uint16_t prefix4 = 1 << 6;
constexpr std::uint16_t prefix6 = 1 << 7;
constexpr std::uint16_t group = 1 << 8;
constexpr std::uint16_t tarpitrelay = 1 << 9;
constexpr std::uint16_t all = (1 << 10) - 1;
// the fields that say how clients share teergrube state
constexpr std::uint16_t state = prefix4 | prefix6 | group;
}  // namespace field

// "st", "stmax", ... for one field bit.
std::string_view field_name(std::uint16_t bit) noexcept;

// Built-in values of fields that neither an entry nor the default sets.
namespace builtin {
constexpr std::uint8_t prefix4 = 32;
constexpr std::uint8_t prefix6 = 64;
// spamthrottle kept state per /16 when no dir was given: teergrube settings
// from a spamthrottle line keep that meaning (doc/spamt.5, COMPATIBILITY).
constexpr std::uint8_t spamthrottle_prefix4 = 16;
constexpr std::string_view tgtext = "please wait";
}  // namespace builtin

// The numeric teergrube fields of one entry; `set` says which are given.
// tgtext and group are strings kept beside this struct.
struct Teergrube {
  std::uint16_t set = 0;
  std::uint32_t st_ms = 0;       // base delay, 0 = teergrube off
  std::uint32_t stmax_ms = 0;    // longest delay, 0 = no maximum
  std::uint32_t strcpt = 0;      // spamthrottle's "reasonable recipients"
  std::uint32_t tg_seconds = 0;  // continuation line period, 0 = none
  bool flush = false;            // discard pipelined input after the delay
  bool tarpitrelay = false;      // also delay relay clients
  bool spamthrottle = false;     // from a spamthrottle line: prefix4 falls back to 16
  std::uint8_t prefix4 = builtin::prefix4;  // IPv4 state aggregation
  std::uint8_t prefix6 = builtin::prefix6;  // IPv6 state aggregation
  bool operator==(const Teergrube&) const = default;
};

// IPv6 clients are counted per /64 wherever a budget is per client
// (helpers.h).
using helpers::client_prefix6;

// Text of a period ("30s", "10m", "1h"; helpers.h).
using helpers::format_period;

// "100/1h,1000/1d"; "0" for no limit. `out` must hold windows_text_max bytes.
constexpr std::size_t windows_text_max = max_windows * 28;
std::size_t format_windows(const Windows& w, char* out) noexcept;

}  // namespace spamt

#endif
