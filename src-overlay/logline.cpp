// logline.cpp: see logline.h.

#include "logline.h"

#include <cstdlib>

#include <unistd.h>

namespace logline {

namespace {

std::string printable(std::string_view text, std::size_t max, unsigned char lowest) {
  if (text.empty()) return "-";
  std::string out;
  std::size_t n = text.size() < max ? text.size() : max;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    out.push_back(c >= lowest && c < 0x7f ? static_cast<char>(c) : '?');
  }
  return out;
}

}  // namespace

std::string field(std::string_view text, std::size_t max) { return printable(text, max, '!'); }

std::string text(std::string_view text, std::size_t max) { return printable(text, max, ' '); }

std::string_view remote_ip() noexcept {
  const char* ip = std::getenv("TCPREMOTEIP");
  return ip != nullptr && *ip != '\0' ? ip : "unknown";
}

void emit(std::string_view text) noexcept {
  static constexpr std::string_view prefix = "qmail-smtpd: ";
  std::string line;
  line.reserve(prefix.size() + text.size() + 1);
  line.append(prefix).append(text).push_back('\n');
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t w = write(2, p, left);
    if (w <= 0) return;  // nowhere to log: the session goes on regardless
    p += w;
    left -= static_cast<std::size_t>(w);
  }
}

}  // namespace logline
