// spamt_format.cpp: see spamt_format.h.
//
// Entry record, version 2 (all numbers little-endian):
//   0  u8   kind (spamt::Kind)
//   1  u8   aspects: 1 relay, 2 teergrube, 4 authfail, 8 client
//   2  u8   relay flags: 1 exempt, 2 each, 4 unauthenticated
//   3  u8   rcpt window count      4  u8  msg window count
//   5  u8   authfail window count  6  u16 action
//   8  u16  teergrube fields set  10  u8  prefix4   11 u8 prefix6
//  12  u8   teergrube flags: 1 flush, 2 tarpitrelay, 4 from a spamthrottle line
//  13  u8   address family: 0 (user, domain, default), 4 or 6
//  14  u8   network prefix        15  u8  client flags: 1 exempt, 2 each
//  16  u32  st, stmax, strcpt, tg (16 bytes)
//  32  8 x u16 string lengths: identity, budget key, tgtext, group, relay
//           origin, teergrube origin, authfail origin, client origin
//  48  [16] address, only when the family is 4 or 6
//  64  [5]  ancestor prefix lengths (Entry::ancestors), only with an address
//      windows: rcpt, msg, authfail, 8 bytes each (u32 limit, u32 seconds)
//      only with client limits: u32 conn, 5 x u8 window counts (connrate,
//      inmsg, inrcpt, tlsrate, authrate), 3 zero bytes, then their windows
//      the strings' bytes, in the order of their lengths
// The lengths come first so that decoding touches no string byte: a lookup
// reads the record's first cache lines only. Version 1 had no client
// limits, four ancestors and seven strings.
// Index record:
//   0  u32  entries  4 u8 flags: 1 default, 2 users, 4 domains
//   5  u8   zero                 6 u16 zero
//   8  4 x 3 x u64: IPv4 prefix sets (relay, teergrube, authfail, client)
// 104  4 x 3 x u64: IPv6 prefix sets

#include "spamt_format.h"

namespace spamt::format {

namespace {

constexpr std::size_t header_size = 48;
constexpr std::size_t index_size = 8 + 2 * aspects * 3 * 8;
constexpr int string_count = 8;

void put8(std::string& s, unsigned v) { s += static_cast<char>(v & 0xff); }
void put16(std::string& s, unsigned v) {
  put8(s, v);
  put8(s, v >> 8);
}
void put32(std::string& s, std::uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}
void put64(std::string& s, std::uint64_t v) {
  put32(s, static_cast<std::uint32_t>(v));
  put32(s, static_cast<std::uint32_t>(v >> 32));
}

// A bounds-checked little-endian reader over a record.
struct Reader {
  const unsigned char* p;
  std::size_t left;
  bool ok = true;

  explicit Reader(std::string_view b) noexcept
      : p(reinterpret_cast<const unsigned char*>(b.data())), left(b.size()) {}

  bool need(std::size_t n) noexcept {
    if (!ok || left < n) ok = false;
    return ok;
  }
  unsigned u8() noexcept {
    if (!need(1)) return 0;
    unsigned v = p[0];
    ++p;
    --left;
    return v;
  }
  unsigned u16() noexcept {
    unsigned lo = u8();
    return lo | u8() << 8;
  }
  std::uint32_t u32() noexcept {
    std::uint32_t lo = u16();
    return lo | static_cast<std::uint32_t>(u16()) << 16;
  }
  std::uint64_t u64() noexcept {
    std::uint64_t lo = u32();
    return lo | static_cast<std::uint64_t>(u32()) << 32;
  }
  std::string_view string(std::size_t n) noexcept {
    if (!need(n)) return {};
    std::string_view v(reinterpret_cast<const char*>(p), n);
    p += n;
    left -= n;
    return v;
  }
  void bytes(std::uint8_t* out, std::size_t n) noexcept {
    if (!need(n)) return;
    for (std::size_t i = 0; i < n; ++i) out[i] = p[i];
    p += n;
    left -= n;
  }
};

void put_windows(std::string& s, const Windows& w) {
  for (const Window& x : w) {
    put32(s, x.limit);
    put32(s, x.seconds);
  }
}

bool read_windows(Reader& r, unsigned count, Windows& w) noexcept {
  if (count > max_windows) return false;
  w = Windows{};
  w.count = static_cast<std::uint8_t>(count);
  std::uint32_t previous = 0;
  for (unsigned i = 0; i < count; ++i) {
    w.at[i].limit = r.u32();
    w.at[i].seconds = r.u32();
    if (!r.ok) return false;
    if (w.at[i].limit == 0 || w.at[i].seconds == 0 || w.at[i].seconds > max_period_seconds) return false;
    if (w.at[i].seconds <= previous) return false;  // shortest first, no duplicates
    previous = w.at[i].seconds;
  }
  return true;
}

}  // namespace

std::size_t user_key(std::string_view name, char* out) noexcept {
  out[0] = 'u';
  out[1] = ':';
  for (std::size_t i = 0; i < name.size(); ++i) out[2 + i] = name[i];
  return 2 + name.size();
}

std::size_t domain_key(std::string_view domain, char* out) noexcept {
  out[0] = 'd';
  out[1] = ':';
  for (std::size_t i = 0; i < domain.size(); ++i) out[2 + i] = domain[i];
  return 2 + domain.size();
}

std::size_t network_key(const ip::Address& a, unsigned prefix, char* out) noexcept {
  ip::Address m = ip::masked(a, prefix);
  out[0] = a.family == ip::Family::v4 ? '4' : '6';
  out[1] = static_cast<char>(prefix);
  std::size_t n = (prefix + 7) / 8;
  for (std::size_t i = 0; i < n; ++i) out[2 + i] = static_cast<char>(m.bytes[i]);
  return 2 + n;
}

std::string encode_index(const Index& index) {
  std::string s;
  s.reserve(index_size);
  put32(s, index.entries);
  put8(s, (index.has_default ? 1 : 0) | (index.has_users ? 2 : 0) | (index.has_domains ? 4 : 0));
  put8(s, 0);
  put16(s, 0);
  for (const PrefixSet* sets : {index.v4, index.v6})
    for (int a = 0; a < aspects; ++a)
      for (int i = 0; i < 3; ++i) put64(s, sets[a].bits[i]);
  return s;
}

bool decode_index(std::string_view bytes, Index& out) noexcept {
  if (bytes.size() != index_size) return false;
  Reader r(bytes);
  out = Index{};
  out.entries = r.u32();
  unsigned flags = r.u8();
  unsigned zero = r.u8();
  zero |= r.u16();
  if (flags > 7 || zero != 0) return false;
  out.has_default = flags & 1;
  out.has_users = flags & 2;
  out.has_domains = flags & 4;
  for (PrefixSet* sets : {out.v4, out.v6})
    for (int a = 0; a < aspects; ++a)
      for (int i = 0; i < 3; ++i) sets[a].bits[i] = r.u64();
  for (int a = 0; a < aspects; ++a) {
    // IPv4 prefixes stop at 32
    if (out.v4[a].bits[0] >> 33 != 0 || out.v4[a].bits[1] != 0 || out.v4[a].bits[2] != 0) return false;
    if (out.v6[a].bits[2] >> 1 != 0) return false;
  }
  return r.ok && r.left == 0;
}

std::string encode_entry(const Entry& e) {
  std::string s;
  s.reserve(header_size + 16 + ancestor_count + 12 + 32 * 8 + e.identity.size() + e.budget_key.size() +
            e.tgtext.size() + e.group.size() + e.relay_origin.size() + e.teergrube_origin.size() +
            e.authfail_origin.size() + e.client_origin.size());
  bool ip_kind = e.kind == Kind::address || e.kind == Kind::network;
  const Windows none;
  const Windows& rcpt = e.has_relay ? e.relay.rcpt : none;
  const Windows& msg = e.has_relay ? e.relay.msg : none;
  const Windows& authfail = e.has_authfail ? e.authfail : none;
  const Teergrube tg_none;
  const Teergrube& tg = e.has_teergrube ? e.teergrube : tg_none;
  put8(s, static_cast<unsigned>(e.kind));
  put8(s, (e.has_relay ? 1 : 0) | (e.has_teergrube ? 2 : 0) | (e.has_authfail ? 4 : 0) | (e.has_client ? 8 : 0));
  put8(s, e.has_relay ? ((e.relay.exempt ? 1 : 0) | (e.relay.each ? 2 : 0) | (e.relay.unauthenticated ? 4 : 0)) : 0);
  put8(s, rcpt.count);
  put8(s, msg.count);
  put8(s, authfail.count);
  put16(s, e.has_relay ? e.relay.action : 0);
  put16(s, tg.set);
  put8(s, tg.prefix4);
  put8(s, tg.prefix6);
  put8(s, (tg.flush ? 1 : 0) | (tg.tarpitrelay ? 2 : 0) | (tg.spamthrottle ? 4 : 0));
  put8(s, ip_kind ? static_cast<unsigned>(e.network.address.family) : 0);
  put8(s, ip_kind ? e.network.prefix : 0);
  put8(s, e.has_client ? ((e.client.exempt ? 1 : 0) | (e.client.each ? 2 : 0)) : 0);
  put32(s, tg.st_ms);
  put32(s, tg.stmax_ms);
  put32(s, tg.strcpt);
  put32(s, tg.tg_seconds);
  const std::string_view strings[string_count] = {e.identity,
                                       e.budget_key,
                                       e.has_teergrube ? e.tgtext : std::string_view(),
                                       e.has_teergrube ? e.group : std::string_view(),
                                       e.has_relay ? e.relay_origin : std::string_view(),
                                       e.has_teergrube ? e.teergrube_origin : std::string_view(),
                                       e.has_authfail ? e.authfail_origin : std::string_view(),
                                       e.has_client ? e.client_origin : std::string_view()};
  for (std::string_view v : strings) put16(s, static_cast<unsigned>(v.size() < 0xffff ? v.size() : 0xffff));
  if (ip_kind) {
    ip::Address m = ip::masked(e.network.address, e.network.prefix);
    s.append(reinterpret_cast<const char*>(m.bytes), 16);
    for (std::uint8_t a : e.ancestors) put8(s, a);
  }
  put_windows(s, rcpt);
  put_windows(s, msg);
  put_windows(s, authfail);
  if (e.has_client) {
    const Client& c = e.client;
    put32(s, c.conn);
    for (const Windows* w : {&c.connrate, &c.inmsg, &c.inrcpt, &c.tlsrate, &c.authrate}) put8(s, w->count);
    for (int i = 0; i < 3; ++i) put8(s, 0);
    for (const Windows* w : {&c.connrate, &c.inmsg, &c.inrcpt, &c.tlsrate, &c.authrate}) put_windows(s, *w);
  }
  for (std::string_view v : strings) s.append(v.data(), v.size() < 0xffff ? v.size() : 0xffff);
  return s;
}

bool decode_entry(std::string_view bytes, Entry& out) noexcept {
  Reader r(bytes);
  out = Entry{};
  if (bytes.size() < header_size) return false;
  unsigned kind = r.u8();
  unsigned aspects = r.u8();
  unsigned relay_flags = r.u8();
  unsigned rcpt_count = r.u8();
  unsigned msg_count = r.u8();
  unsigned authfail_count = r.u8();
  unsigned action = r.u16();
  unsigned tg_set = r.u16();
  unsigned prefix4 = r.u8();
  unsigned prefix6 = r.u8();
  unsigned tg_flags = r.u8();
  unsigned family = r.u8();
  unsigned prefix = r.u8();
  unsigned client_flags = r.u8();
  if (kind < 1 || kind > 5 || aspects == 0 || aspects > 15 || relay_flags > 7 || tg_set > field::all ||
      prefix4 > 32 || prefix6 > 128 || tg_flags > 7 || client_flags > 3)
    return false;
  out.kind = static_cast<Kind>(kind);
  out.has_relay = aspects & 1;
  out.has_teergrube = aspects & 2;
  out.has_authfail = aspects & 4;
  out.has_client = aspects & 8;
  if (!out.has_client && client_flags != 0) return false;
  out.client.exempt = client_flags & 1;
  out.client.each = client_flags & 2;
  if (!out.has_relay && (relay_flags != 0 || rcpt_count != 0 || msg_count != 0 || action != 0)) return false;
  if (out.has_relay && action != 451 && action != 450 && action != 421) return false;
  if (!out.has_teergrube && (tg_set != 0 || tg_flags != 0 || prefix4 != builtin::prefix4 ||
                             prefix6 != builtin::prefix6))
    return false;
  if (!out.has_authfail && authfail_count != 0) return false;
  out.relay.exempt = relay_flags & 1;
  out.relay.each = relay_flags & 2;
  out.relay.unauthenticated = relay_flags & 4;
  out.relay.action = static_cast<std::uint16_t>(out.has_relay ? action : 451);
  out.teergrube.set = static_cast<std::uint16_t>(tg_set);
  out.teergrube.prefix4 = static_cast<std::uint8_t>(prefix4);
  out.teergrube.prefix6 = static_cast<std::uint8_t>(prefix6);
  out.teergrube.flush = tg_flags & 1;
  out.teergrube.tarpitrelay = tg_flags & 2;
  out.teergrube.spamthrottle = tg_flags & 4;
  out.teergrube.st_ms = r.u32();
  out.teergrube.stmax_ms = r.u32();
  out.teergrube.strcpt = r.u32();
  out.teergrube.tg_seconds = r.u32();
  unsigned lengths[string_count];
  for (unsigned& n : lengths) n = r.u16();
  if (!out.has_teergrube && (out.teergrube.st_ms | out.teergrube.stmax_ms | out.teergrube.strcpt |
                             out.teergrube.tg_seconds) != 0)
    return false;

  bool ip_kind = out.kind == Kind::address || out.kind == Kind::network;
  if (ip_kind) {
    if (family != 4 && family != 6) return false;
    out.network.address.family = family == 4 ? ip::Family::v4 : ip::Family::v6;
    if (prefix > out.network.address.bits()) return false;
    if ((out.kind == Kind::address) != (prefix == out.network.address.bits())) return false;
    out.network.prefix = prefix;
    r.bytes(out.network.address.bytes, 16);
    if (!r.ok || !ip::host_bits_clear(out.network)) return false;
    if (family == 4)
      for (int i = 4; i < 16; ++i)
        if (out.network.address.bytes[i] != 0) return false;
    for (std::uint8_t& a : out.ancestors) {
      a = static_cast<std::uint8_t>(r.u8());
      if (a != no_ancestor && a >= prefix) return false;
    }
    if (!r.ok) return false;
  } else if (family != 0 || prefix != 0) {
    return false;
  }
  // the kinds of settings an identity may carry (see spamt_syntax.cpp)
  if ((out.kind == Kind::user || out.kind == Kind::domain) && (out.has_teergrube || out.has_authfail || out.has_client))
    return false;
  if ((out.relay.each || out.client.each) && out.kind != Kind::network) return false;
  if (out.relay.unauthenticated && !ip_kind) return false;

  if (!read_windows(r, rcpt_count, out.relay.rcpt)) return false;
  if (!read_windows(r, msg_count, out.relay.msg)) return false;
  if (!read_windows(r, authfail_count, out.authfail)) return false;
  if (out.has_client) {
    Client& c = out.client;
    c.conn = r.u32();
    Windows* rates[5] = {&c.connrate, &c.inmsg, &c.inrcpt, &c.tlsrate, &c.authrate};
    unsigned counts[5];
    for (unsigned& n : counts) n = r.u8();
    if ((r.u8() | r.u8() | r.u8()) != 0 || !r.ok) return false;
    for (int i = 0; i < 5; ++i)
      if (!read_windows(r, counts[i], *rates[i])) return false;
    // exempt carries no limits (spamt_syntax.cpp refuses both on one line)
    if (c.exempt && (c.conn != 0 || !c.connrate.empty() || !c.inmsg.empty() || !c.inrcpt.empty() ||
                     !c.tlsrate.empty() || !c.authrate.empty()))
      return false;
  }
  out.identity = r.string(lengths[0]);
  out.budget_key = r.string(lengths[1]);
  out.tgtext = r.string(lengths[2]);
  out.group = r.string(lengths[3]);
  out.relay_origin = r.string(lengths[4]);
  out.teergrube_origin = r.string(lengths[5]);
  out.authfail_origin = r.string(lengths[6]);
  out.client_origin = r.string(lengths[7]);
  if (!out.has_client && !out.client_origin.empty()) return false;
  if (!r.ok || r.left != 0) return false;
  if (out.identity.empty()) return false;
  if ((out.kind == Kind::fallback) != out.budget_key.empty()) return false;
  if (((tg_set & field::tgtext) != 0) != !out.tgtext.empty()) return false;
  if (((tg_set & field::group) != 0) != !out.group.empty()) return false;
  return true;
}

}  // namespace spamt::format
