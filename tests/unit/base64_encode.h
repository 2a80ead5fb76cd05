// base64_encode.h: RFC 4648 base64 encoding, for tests that play an SMTP
// client. Production only decodes (base64.h): qmail-smtpd never encodes.

#ifndef QT_TEST_BASE64_ENCODE_H
#define QT_TEST_BASE64_ENCODE_H

#include <string>
#include <string_view>

namespace test_util {

inline std::string base64_encode(std::string_view bytes) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t n = bytes.size() - i < 3 ? bytes.size() - i : 3;
    unsigned v = 0;
    for (std::size_t k = 0; k < 3; ++k)
      v = v << 8 | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    for (std::size_t k = 0; k < 4; ++k) out += k <= n ? alphabet[v >> (18 - 6 * k) & 63] : '=';
  }
  return out;
}

}  // namespace test_util

#endif
