// helpers.h: the small helpers qmail-smtpd's overlay and the tools share.
//
// Header-only and allocation-free where they can be (qmail-smtpd links
// them into code that runs while a session is held), ASCII whatever the
// locale. One copy each of: the monotonic clock in milliseconds, ASCII
// lower case, unsigned decimal numbers (parsed and printed by the C++
// library's from_chars/to_chars, which are exact and locale-free), periods
// as text ("30s", "10m", "1h") and the prefix an IPv6 client is counted by.

#ifndef QT_HELPERS_H
#define QT_HELPERS_H

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include <time.h>

namespace helpers {

// CLOCK_MONOTONIC in milliseconds: for timeouts and waits, never for dates.
inline std::uint64_t monotonic_ms() noexcept {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

inline char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline void lower_in_place(std::string& s) noexcept {
  for (char& c : s) c = lower(c);
}

inline std::string lowered(std::string_view s) {
  std::string out(s);
  lower_in_place(out);
  return out;
}

// a and b are equal but for ASCII case ("AUTH" and "auth").
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Decimal digits only: no sign, no blanks, nothing after; nullopt when
// empty, too big for T, or longer than T's largest value (leading zeros
// included: "00000000001" is not a uint32).
template <std::unsigned_integral T>
std::optional<T> parse_unsigned(std::string_view s) noexcept {
  if (s.empty() || s.size() > std::numeric_limits<T>::digits10 + 1u) return std::nullopt;
  T v = 0;
  const char* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, v);
  if (r.ec != std::errc() || r.ptr != end) return std::nullopt;
  return v;
}

inline std::optional<std::uint32_t> parse_u32(std::string_view s) noexcept {
  return parse_unsigned<std::uint32_t>(s);
}

// Longest decimal of a 64-bit number: 18446744073709551615.
constexpr std::size_t max_digits = 20;

// Writes v in decimal into out (room for max_digits), without a NUL;
// returns the number of characters.
template <std::unsigned_integral T>
std::size_t put_decimal(char* out, T v) noexcept {
  return static_cast<std::size_t>(std::to_chars(out, out + max_digits, v).ptr - out);
}

// Text of a period: the largest unit that divides it exactly ("30s",
// "10m", "1h", "1d", "2w", "90s"). `out` must hold 16 bytes. Returns the
// length.
inline std::size_t format_period(std::uint32_t seconds, char* out) noexcept {
  struct Unit {
    std::uint32_t seconds;
    char name;
  };
  static constexpr Unit units[] = {{604800, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}};
  for (const Unit& u : units) {
    if (seconds != 0 && seconds % u.seconds == 0) {
      std::size_t n = put_decimal(out, seconds / u.seconds);
      out[n++] = u.name;
      return n;
    }
  }
  std::size_t n = put_decimal(out, seconds);
  out[n++] = 's';
  return n;
}

inline std::string period_text(std::uint32_t seconds) {
  char buf[16];
  return std::string(buf, format_period(seconds, buf));
}

// IPv6 clients are counted per /64 wherever a budget is per client (the
// limits table's default entry, `each`, authfail): one end site, not one of
// its 2^64 addresses. IPv4 clients per address.
constexpr unsigned client_prefix6 = 64;
constexpr unsigned client_prefix(bool v4) noexcept { return v4 ? 32 : client_prefix6; }

}  // namespace helpers

#endif
