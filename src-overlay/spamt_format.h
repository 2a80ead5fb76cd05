// spamt_format.h: how control/spamt.cdb stores the limits table.
//
// A tinycdb file (cdb(5)) with these keys:
//   "!format"   "qmail-throttle spamt 2": readers refuse any other value
//               (and a file without it, such as spamthrottle's qmail-newst
//               output), so a table is never misread. It is the first record,
//               "!index" the second and "!default" (if any) the third, so a
//               reader finds them in the file's first page without hashing.
//   "!index"    which prefix lengths hold IP entries (per family and kind of
//               setting), whether users/domains/default exist, counts
//   "!default"  the default entry
//   "u:NAME"    a user entry (NAME in lower case)
//   "d:DOMAIN"  a domain entry
//   '4' or '6', one byte prefix length, the first ceil(prefix/8) bytes of
//               the masked address: an address or network entry
// Every number is little-endian and every field has a fixed width, so the
// file reads the same on any machine; identical input gives identical bytes.
// The record layout is in spamt_format.cpp. Record values also carry the
// readable identity, budget key and source lines, so `cdb -d` shows them.

#ifndef QT_SPAMT_FORMAT_H
#define QT_SPAMT_FORMAT_H

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ip_address.h"
#include "spamt_settings.h"

namespace spamt {

// One entry of the table, as stored: string views point into the record
// (for a table, into the mapped cdb file; valid while it stays open).
struct Entry {
  Kind kind = Kind::fallback;
  std::string_view identity;    // "alice@example.com", "@example.com", "192.0.2.0/24", "default"
  std::string_view budget_key;  // "u:alice@example.com", "d:example.com", "a:192.0.2.7",
                                // "n:192.0.2.0/24"; empty for default
  ip::Network network;          // address and network kinds
  // Address and network kinds: for each kind of setting (format::up_relay
  // ...), the prefix length of the most specific less specific block in the
  // table that carries it, or format::no_ancestor. A lookup that finds this
  // entry first needs no more probing than these.
  std::uint8_t ancestors[5] = {0xff, 0xff, 0xff, 0xff, 0xff};

  bool has_relay = false;
  Relay relay;
  std::string_view relay_origin;  // "control/spamt:12", "control/relaylimits:3"

  bool has_teergrube = false;
  Teergrube teergrube;            // teergrube.set says which fields are given
  std::string_view tgtext;        // when teergrube.set has field::tgtext
  std::string_view group;         // when teergrube.set has field::group
  std::string_view teergrube_origin;

  bool has_authfail = false;
  Windows authfail;
  std::string_view authfail_origin;

  bool has_client = false;
  Client client;
  std::string_view client_origin;

  bool operator==(const Entry&) const = default;
};

namespace format {

constexpr std::string_view version_key = "!format";
// 2: client limits (issue 17): a fourth kind of setting, a fifth ancestor.
// A table of version 1 is refused too: qmail-newspamt rewrites it.
constexpr std::string_view version = "qmail-throttle spamt 2";
constexpr std::string_view index_key = "!index";
constexpr std::string_view default_key = "!default";

// The longest key: "u:" and a name of name_max bytes.
constexpr std::size_t key_max = 2 + name_max;

// The largest record value (qmail-newspamt refuses to write a larger one;
// a reader treats one as corrupt). The largest possible is about 1.2 KB.
constexpr std::size_t record_max = 2048;

// "u:" + name; "d:" + domain. `name` must already be in lower case and at
// most name_max bytes. Return the key length.
std::size_t user_key(std::string_view name, char* out) noexcept;
std::size_t domain_key(std::string_view domain, char* out) noexcept;
// '4'/'6', prefix, masked address bytes. `out` holds at least 18 bytes.
std::size_t network_key(const ip::Address& a, unsigned prefix, char* out) noexcept;

// Prefix lengths 0..128 as a bit set.
struct PrefixSet {
  std::uint64_t bits[3] = {0, 0, 0};
  void add(unsigned prefix) noexcept { bits[prefix / 64] |= std::uint64_t{1} << (prefix % 64); }
  bool has(unsigned prefix) const noexcept { return (bits[prefix / 64] >> (prefix % 64)) & 1; }
  bool any() const noexcept { return (bits[0] | bits[1] | bits[2]) != 0; }
  // The largest prefix length in the set that is <= limit, or -1.
  int highest(int limit) const noexcept {
    if (limit < 0) return -1;
    if (limit > 128) limit = 128;
    for (int w = limit / 64; w >= 0; --w) {
      std::uint64_t b = bits[w];
      if (w == limit / 64 && limit % 64 != 63) b &= (std::uint64_t{1} << (limit % 64 + 1)) - 1;
      if (b != 0) return w * 64 + 63 - std::countl_zero(b);
    }
    return -1;
  }
  PrefixSet operator|(const PrefixSet& o) const noexcept {
    return PrefixSet{{bits[0] | o.bits[0], bits[1] | o.bits[1], bits[2] | o.bits[2]}};
  }
  bool operator==(const PrefixSet&) const = default;
};

// Aspects, as indexes into Index::v4/v6.
constexpr int relay = 0, teergrube = 1, authfail = 2, client = 3;
constexpr int aspects = 4;

// Indexes into Entry::ancestors: relay limits (for any client), relay limits
// that are not `unauthenticated` (for authenticated clients), teergrube,
// authfail, client limits.
constexpr int up_relay = 0, up_relay_authenticated = 1, up_teergrube = 2, up_authfail = 3, up_client = 4;
constexpr int ancestor_count = 5;
constexpr std::uint8_t no_ancestor = 0xff;

struct Index {
  std::uint32_t entries = 0;      // records besides !format, !index
  bool has_default = false;
  bool has_users = false;
  bool has_domains = false;
  PrefixSet v4[aspects];          // prefix lengths of IPv4 entries per aspect
  PrefixSet v6[aspects];
  // Prefix lengths of entries of any kind of setting.
  static PrefixSet any(const PrefixSet* sets) noexcept {
    return sets[relay] | sets[teergrube] | sets[authfail] | sets[client];
  }
  bool operator==(const Index&) const = default;
};

std::string encode_index(const Index& index);
bool decode_index(std::string_view bytes, Index& out) noexcept;

// Record value of one entry. decode_entry() accepts exactly what
// encode_entry() writes and rejects anything else (false, out unspecified).
std::string encode_entry(const Entry& e);
bool decode_entry(std::string_view bytes, Entry& out) noexcept;

}  // namespace format
}  // namespace spamt

#endif
