// ip_address.cpp: see ip_address.h.

#include "ip_address.h"

#include "decimal.h"

namespace ip {

namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Exactly four decimal octets 0-255, no leading zeros, nothing else.
bool parse_v4(std::string_view s, std::uint8_t out[4]) noexcept {
  std::size_t pos = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (pos >= s.size() || s[pos] != '.') return false;
      ++pos;
    }
    std::size_t start = pos;
    unsigned value = 0;
    while (pos < s.size() && is_digit(s[pos]) && pos - start < 3) {
      value = value * 10 + static_cast<unsigned>(s[pos] - '0');
      ++pos;
    }
    std::size_t len = pos - start;
    if (len == 0 || value > 255) return false;
    if (len > 1 && s[start] == '0') return false;  // 010 would be octal to inet_aton
    out[octet] = static_cast<std::uint8_t>(value);
  }
  return pos == s.size();
}

// RFC 4291 text forms: eight groups of 1-4 hex digits, at most one "::",
// optionally ending in a dotted quad for the last 32 bits. One pass.
bool parse_v6(std::string_view s, std::uint8_t out[16]) noexcept {
  std::uint16_t groups[8] = {};
  int count = 0;  // groups written so far
  int gap = -1;   // index where "::" stands
  const std::size_t n = s.size();
  std::size_t i = 0;
  if (n < 2) return false;
  if (s[0] == ':') {
    if (s[1] != ':') return false;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    if (count == 8) return false;
    std::size_t start = i;
    unsigned value = 0;
    int h;
    while (i < n && i - start < 5 && (h = hex_value(s[i])) >= 0) {
      value = value << 4 | static_cast<unsigned>(h);
      ++i;
    }
    if (i < n && s[i] == '.') {  // a dotted quad stands for the last two groups
      std::uint8_t v4[4];
      if (count > 6 || !parse_v4(s.substr(start), v4)) return false;
      groups[count++] = static_cast<std::uint16_t>(v4[0] << 8 | v4[1]);
      groups[count++] = static_cast<std::uint16_t>(v4[2] << 8 | v4[3]);
      break;
    }
    if (i == start || i - start > 4) return false;
    groups[count++] = static_cast<std::uint16_t>(value);
    if (i == n) break;
    if (s[i] != ':') return false;
    ++i;
    if (i < n && s[i] == ':') {
      if (gap >= 0) return false;  // a second "::"
      gap = count;
      ++i;
    } else if (i == n) {
      return false;  // a single trailing ':'
    }
  }
  if (gap < 0) {
    if (count != 8) return false;
  } else {
    if (count > 7) return false;  // "::" stands for at least one group
    int move = count - gap;
    for (int k = 0; k < move; ++k) groups[7 - k] = groups[count - 1 - k];
    for (int k = gap; k < 8 - move; ++k) groups[k] = 0;
  }
  for (int k = 0; k < 8; ++k) {
    out[2 * k] = static_cast<std::uint8_t>(groups[k] >> 8);
    out[2 * k + 1] = static_cast<std::uint8_t>(groups[k] & 0xff);
  }
  return true;
}

bool is_v4_mapped(const std::uint8_t b[16]) noexcept {
  for (int i = 0; i < 10; ++i)
    if (b[i] != 0) return false;
  return b[10] == 0xff && b[11] == 0xff;
}


std::size_t put_hex_group(char* out, unsigned v) noexcept {
  static constexpr char digits[] = "0123456789abcdef";
  char tmp[4];
  std::size_t n = 0;
  do {
    tmp[n++] = digits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  for (std::size_t i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  return n;
}

}  // namespace

std::optional<Address> parse(std::string_view text) noexcept {
  Address a;
  if (text.find(':') == std::string_view::npos) {
    if (!parse_v4(text, a.bytes)) return std::nullopt;
    a.family = Family::v4;
    return a;
  }
  std::uint8_t b[16];
  if (!parse_v6(text, b)) return std::nullopt;
  if (is_v4_mapped(b)) {
    a.family = Family::v4;
    for (int i = 0; i < 4; ++i) a.bytes[i] = b[12 + i];
    return a;
  }
  a.family = Family::v6;
  for (int i = 0; i < 16; ++i) a.bytes[i] = b[i];
  return a;
}

std::optional<Network> parse_network(std::string_view text) noexcept {
  std::size_t slash = text.find('/');
  std::string_view addr_text = text.substr(0, slash);
  Network n;
  bool mapped = false;
  if (addr_text.find(':') == std::string_view::npos) {
    if (!parse_v4(addr_text, n.address.bytes)) return std::nullopt;
    n.address.family = Family::v4;
  } else {
    if (!parse_v6(addr_text, n.address.bytes)) return std::nullopt;
    n.address.family = Family::v6;
    mapped = is_v4_mapped(n.address.bytes);
  }
  unsigned bits = n.address.bits();
  if (slash == std::string_view::npos) {
    n.prefix = bits;
  } else {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) return std::nullopt;
    if (p.size() > 1 && p[0] == '0') return std::nullopt;
    unsigned v = 0;
    for (char c : p) {
      if (!is_digit(c)) return std::nullopt;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > bits) return std::nullopt;
    n.prefix = v;
  }
  if (mapped && n.prefix >= 96) {
    Address v4;
    v4.family = Family::v4;
    for (int i = 0; i < 4; ++i) v4.bytes[i] = n.address.bytes[12 + i];
    n.address = v4;
    n.prefix -= 96;
  }
  return n;
}

Address masked(const Address& a, unsigned prefix) noexcept {
  Address m = a;
  unsigned bits = a.bits();
  if (prefix >= bits) return m;
  std::size_t full = prefix / 8;
  unsigned rest = prefix % 8;
  std::size_t i = full;
  if (rest != 0) {
    m.bytes[i] = static_cast<std::uint8_t>(m.bytes[i] & (0xff << (8 - rest)));
    ++i;
  }
  for (; i < 16; ++i) m.bytes[i] = 0;
  return m;
}

bool host_bits_clear(const Network& n) noexcept { return masked(n.address, n.prefix) == n.address; }

bool contains(const Network& n, const Address& a) noexcept {
  if (n.address.family != a.family) return false;
  return masked(a, n.prefix) == masked(n.address, n.prefix);
}

std::size_t format(const Address& a, char* out) noexcept {
  std::size_t n = 0;
  if (a.family == Family::v4) {
    for (int i = 0; i < 4; ++i) {
      if (i > 0) out[n++] = '.';
      n += decimal::put(out + n, a.bytes[i]);
    }
    return n;
  }
  unsigned g[8];
  for (int i = 0; i < 8; ++i) g[i] = static_cast<unsigned>(a.bytes[2 * i] << 8 | a.bytes[2 * i + 1]);
  // the first longest run of two or more zero groups becomes "::"
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) best = -1;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out[n++] = ':';
      out[n++] = ':';
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best + best_len) out[n++] = ':';
    n += put_hex_group(out + n, g[i]);
  }
  return n;
}

std::size_t format(const Network& net, char* out) noexcept {
  std::size_t n = format(net.address, out);
  out[n++] = '/';
  n += decimal::put(out + n, net.prefix);
  return n;
}

}  // namespace ip
