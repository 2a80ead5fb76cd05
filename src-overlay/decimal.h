// decimal.h: unsigned numbers as decimal text into a caller's buffer,
// without allocating (for code linked into qmail-smtpd).

#ifndef QT_DECIMAL_H
#define QT_DECIMAL_H

#include <cstddef>
#include <cstdint>

namespace decimal {

// Longest output: 4294967295.
constexpr std::size_t max_digits = 10;

// Writes v without a NUL; returns the number of characters.
inline std::size_t put(char* out, std::uint32_t v) noexcept {
  char tmp[max_digits];
  std::size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

}  // namespace decimal

#endif
