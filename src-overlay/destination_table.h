// destination_table.h: control/concurrencydomains, parsed and looked up.
//
// One line per destination, "DESTINATION LIMIT [key=value ...]", '#' starts a
// comment (concurrencydomains(5)):
//
//   *                          5                  every other domain, a budget each
//   example.com                10                 that domain
//   .example.net               20                 the domain and its subdomains, shared
//   yahoo.com,yahoo.ca,.ymail  30 rate=600/1h     a group, one shared budget
//   mx:.google.com             40 failures=3 pause=10m
//   mx:mx1.hoster.example      8                  domains whose mail goes to that host
//   ip:192.0.2.0/24            15                 ... or to an address in that block
//
// Lookups answer which line a domain falls under. Most specific wins, in
// this order: the domain itself (alone or as a member of a group), its
// longest listed suffix, the exact mx: host, the longest mx: suffix, the
// longest ip: block, then "*". The mx:/ip: lines need the route a delivery
// took (destination_scheduler.h learns it); the table itself is pure data.
//
// Names are compared in ASCII lower case, without a trailing dot.

#ifndef QT_DESTINATION_TABLE_H
#define QT_DESTINATION_TABLE_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ip_address.h"
#include "spamt_settings.h"  // spamt::Windows for rate=

namespace destinations {

enum class Kind : std::uint8_t {
  fallback,   // *
  domain,     // example.com
  suffix,     // .example.com
  group,      // a.example,b.example,.c.example
  mx_host,    // mx:mx1.example.net
  mx_suffix,  // mx:.google.com
  network,    // ip:192.0.2.0/24
};

// "default", "domain", "suffix", "group", "mx", "mx suffix", "ip"
std::string_view kind_name(Kind k) noexcept;

// After `failures` consecutive failed connections or greetings (0: never),
// a destination pauses for `pause_seconds`, then probes with one delivery.
struct Backoff {
  std::uint32_t failures = 5;
  std::uint32_t pause_seconds = 300;
  bool operator==(const Backoff&) const = default;
};

inline constexpr std::uint32_t max_limit = 65000;  // conf-spawn's ceiling
inline constexpr std::size_t max_name = 253;       // a DNS name, without the final dot

struct Line {
  Kind kind = Kind::fallback;
  std::string destination;  // canonical text: "*", "example.com", "mx:.google.com", ...
  std::uint32_t limit = 0;  // deliveries at once; 0 holds every delivery
  spamt::Windows rate;      // starts per window; empty: no rate limit
  Backoff backoff;
  unsigned line_no = 0;
  ip::Network network;      // Kind::network
  // The settings a budget takes from this line (not where it came from).
  bool same_settings(const Line& o) const noexcept {
    return limit == o.limit && rate == o.rate && backoff == o.backoff;
  }
};

struct Error {
  unsigned line_no = 0;
  std::string message;  // one line, without the location
};

// Lower case, one trailing dot removed: how domains and hosts are compared.
std::string canonical_name(std::string_view name);

// A line as understood, for people: "mx:.google.com (mx suffix) limit 40
// rate 3000/1h pause 10m after 3 failures".
std::string describe(const Line& l);

class Table {
 public:
  static constexpr int none = -1;

  // The lines of `text`, or nothing with every bad line in *errors (at
  // most max_errors of them; a line is reported once).
  static constexpr std::size_t max_errors = 20;
  static std::optional<Table> parse(std::string_view text, std::vector<Error>* errors);

  const std::vector<Line>& lines() const noexcept { return lines_; }
  bool empty() const noexcept { return lines_.empty(); }

  // The line of a domain by its name: exact or group member, else the
  // longest suffix. `domain` already canonical.
  int by_domain(std::string_view domain) const noexcept;
  // The line of a route: exact mx: host, longest mx: suffix, longest ip:
  // block. `host` canonical ("" if unknown), `address` may be null.
  int by_route(std::string_view host, const ip::Address* address) const noexcept;
  // The "*" line.
  int fallback() const noexcept { return fallback_; }
  // Whether any mx: or ip: line exists (routes are worth learning).
  bool has_route_lines() const noexcept { return route_lines_ != 0; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  using NameMap = std::unordered_map<std::string, int, Hash, std::equal_to<>>;

  static int longest_suffix(const NameMap& suffixes, std::string_view name) noexcept;

  std::vector<Line> lines_;
  NameMap exact_;      // domain -> line (domain lines and group members)
  NameMap suffix_;     // "example.com" for .example.com -> line
  NameMap mx_exact_;
  NameMap mx_suffix_;
  std::vector<int> networks_;  // ip: lines, longest prefix first
  int fallback_ = none;
  std::size_t route_lines_ = 0;

  friend class TableBuilder;
};

}  // namespace destinations

#endif
