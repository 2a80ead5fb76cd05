// ip_address.h: IPv4 and IPv6 addresses and networks, parsed and printed.
//
// What tcpserver hands qmail-smtpd in TCPREMOTEIP ("192.0.2.7", "2001:db8::7",
// or "::ffff:192.0.2.7" from an IPv6 socket) and what control files write
// ("192.0.2.0/24", "2001:db8::/32") become an ip::Address or ip::Network.
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) IS the IPv4 address a.b.c.d:
// parse() returns it as IPv4, so a client is the same client whichever
// socket it came in on.
//
// Strict on purpose: no zone ids ("%eth0"), no leading zeros in IPv4 octets
// (inet_aton would read 010 as octal 8), no short IPv4 forms ("10.1").
// Nothing here allocates or throws; text goes into caller buffers.

#ifndef QT_IP_ADDRESS_H
#define QT_IP_ADDRESS_H

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace ip {

enum class Family : std::uint8_t { v4 = 4, v6 = 6 };

// An address; IPv4 uses bytes[0..3] in network order, the rest stays zero.
struct Address {
  Family family = Family::v4;
  std::uint8_t bytes[16] = {};

  // 32 or 128
  unsigned bits() const noexcept { return family == Family::v4 ? 32 : 128; }
  // 4 or 16
  std::size_t size() const noexcept { return family == Family::v4 ? 4 : 16; }
  bool operator==(const Address&) const = default;
};

// An address block: the first `prefix` bits of `address` (the others are
// zero when it comes from parse_network() or masked()).
struct Network {
  Address address;
  unsigned prefix = 0;
  bool operator==(const Network&) const = default;
};

// Longest text format() writes: a full IPv6 address with a /128.
constexpr std::size_t text_max = 64;

// "192.0.2.7", "2001:db8::7", "::ffff:192.0.2.7" (-> IPv4 192.0.2.7).
std::optional<Address> parse(std::string_view text) noexcept;

// "192.0.2.0/24", "2001:db8::/32", or a plain address (prefix 32 or 128).
// The address part is returned as written: host bits are NOT cleared (see
// host_bits_clear()). An IPv4-mapped block with prefix >= 96
// ("::ffff:192.0.2.0/120") becomes the IPv4 block (192.0.2.0/24).
std::optional<Network> parse_network(std::string_view text) noexcept;

// `a` with every bit after the first `prefix` bits cleared.
Address masked(const Address& a, unsigned prefix) noexcept;

// The block has no bit set after its prefix (192.0.2.0/24, not 192.0.2.7/24).
bool host_bits_clear(const Network& n) noexcept;

// `a` lies in `n` (same family, same first n.prefix bits).
bool contains(const Network& n, const Address& a) noexcept;

// Canonical text without a NUL: dotted quad, or RFC 5952 for IPv6 (lower
// case, no leading zeros, the longest run of two or more zero groups as
// "::"). `out` must hold text_max bytes. Returns the length written.
// Parsing is inet_pton's; printing is not inet_ntop's, which writes
// ::a.b.c.d for IPv4-compatible and -mapped IPv6 addresses: these texts
// are store keys and log fields, and an address keeps one text, hex
// groups only (tests/unit/test_ip_address.cpp, FormatIsNotInetNtop).
std::size_t format(const Address& a, char* out) noexcept;

// "address/prefix", same rules.
std::size_t format(const Network& n, char* out) noexcept;

}  // namespace ip

#endif
