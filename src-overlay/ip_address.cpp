// ip_address.cpp: see ip_address.h.

#include "ip_address.h"

#include <charconv>

#include <arpa/inet.h>

#include "helpers.h"

namespace ip {

namespace {

// The C library's parsers, as strict as this needs: exactly four decimal
// octets 0-255 without leading zeros (inet_aton would read 010 as octal 8)
// or short forms ("10.1"); RFC 4291 IPv6 text (1-4 hex digits a group, at
// most one "::", a dotted quad only for the last 32 bits), no zone id.
// inet_pton wants a C string: the longest valid text is 45 bytes
// ("0000:0000:0000:0000:0000:ffff:255.255.255.255"), and a NUL inside
// would cut the text short.
bool pton(int af, std::string_view s, std::uint8_t* out) noexcept {
  char buf[46];
  if (s.size() >= sizeof buf || s.find('\0') != std::string_view::npos) return false;
  s.copy(buf, s.size());
  buf[s.size()] = '\0';
  return inet_pton(af, buf, out) == 1;
}

bool parse_v4(std::string_view s, std::uint8_t out[4]) noexcept { return pton(AF_INET, s, out); }
bool parse_v6(std::string_view s, std::uint8_t out[16]) noexcept { return pton(AF_INET6, s, out); }

bool is_v4_mapped(const std::uint8_t b[16]) noexcept {
  for (int i = 0; i < 10; ++i)
    if (b[i] != 0) return false;
  return b[10] == 0xff && b[11] == 0xff;
}

// 1-4 lower-case hex digits, no leading zeros.
std::size_t put_hex_group(char* out, unsigned v) noexcept {
  return static_cast<std::size_t>(std::to_chars(out, out + 4, v, 16).ptr - out);
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
    if (p.size() > 3 || (p.size() > 1 && p[0] == '0')) return std::nullopt;
    const std::optional<std::uint32_t> v = helpers::parse_u32(p);
    if (!v || *v > bits) return std::nullopt;
    n.prefix = *v;
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
      n += helpers::put_decimal(out + n, a.bytes[i]);
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
  n += helpers::put_decimal(out + n, net.prefix);
  return n;
}

}  // namespace ip
