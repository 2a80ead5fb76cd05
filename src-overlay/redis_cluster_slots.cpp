// redis_cluster_slots.cpp: see redis_cluster_slots.h.

#include "redis_cluster_slots.h"

#include "helpers.h"

namespace redis {

std::uint16_t crc16(std::string_view data) noexcept {
  // CRC-16/XMODEM: polynomial 0x1021, initial 0, no reflection (Redis
  // Cluster specification, "Keys distribution model").
  std::uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc ^= static_cast<std::uint16_t>(byte << 8);
    for (int i = 0; i < 8; ++i)
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

std::uint16_t key_slot(std::string_view key) noexcept {
  const std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close != open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return static_cast<std::uint16_t>(crc16(key) % cluster_slots);
}

namespace {

bool parse_host_port(std::string_view s, store_url::HostPort& out) {
  const std::size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = s.substr(0, colon), port = s.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  // "host:port@cport" (cluster bus port) is not used in redirections, but be lenient.
  port = port.substr(0, port.find('@'));
  const std::optional<std::uint16_t> v = helpers::parse_unsigned<std::uint16_t>(port);
  if (!v || *v == 0) return false;
  out.host.assign(host);
  out.port = *v;
  return true;
}

}  // namespace

std::optional<Redirect> parse_redirect(const Reply& r) {
  Redirect d;
  std::string_view rest;
  if (r.error_code_is("MOVED")) {
    rest = std::string_view(r.str).substr(6);
  } else if (r.error_code_is("ASK")) {
    d.ask = true;
    rest = std::string_view(r.str).substr(4);
  } else {
    return std::nullopt;
  }
  const std::size_t space = rest.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const std::optional<std::uint16_t> slot = helpers::parse_unsigned<std::uint16_t>(rest.substr(0, space));
  if (!slot || *slot >= cluster_slots || !parse_host_port(rest.substr(space + 1), d.to)) return std::nullopt;
  d.slot = *slot;
  return d;
}

void SlotMap::clear() noexcept {
  nodes_.clear();
  owner_.clear();
}

int SlotMap::index_of(const store_url::HostPort& hp) {
  for (std::size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i] == hp) return static_cast<int>(i);
  nodes_.push_back(hp);
  return static_cast<int>(nodes_.size() - 1);
}

bool SlotMap::load(const Reply& reply, const store_url::HostPort& asked) {
  clear();
  if (reply.type != Reply::Type::array) return false;
  owner_.assign(cluster_slots, -1);
  bool any = false;
  for (const Reply& range : reply.elements) {
    // [start, end, [host, port, id, ...] (primary), [replica]...]
    if (range.type != Reply::Type::array || range.elements.size() < 3) continue;
    const Reply& lo = range.elements[0];
    const Reply& hi = range.elements[1];
    const Reply& primary = range.elements[2];
    if (lo.type != Reply::Type::integer || hi.type != Reply::Type::integer || lo.integer < 0 ||
        hi.integer >= cluster_slots || lo.integer > hi.integer)
      continue;
    if (primary.type != Reply::Type::array || primary.elements.size() < 2 ||
        primary.elements[1].type != Reply::Type::integer)
      continue;
    store_url::HostPort hp;
    const Reply& host = primary.elements[0];
    hp.host = host.type == Reply::Type::string ? host.str : std::string();
    if (hp.host.empty() || hp.host == "?") hp.host = asked.host;
    const long long port = primary.elements[1].integer;
    if (port <= 0 || port > 65535) continue;
    hp.port = static_cast<std::uint16_t>(port);
    const int idx = index_of(hp);
    for (long long s = lo.integer; s <= hi.integer; ++s) owner_[static_cast<std::size_t>(s)] = static_cast<std::int16_t>(idx);
    any = true;
  }
  if (!any) clear();
  return any;
}

int SlotMap::node_of(std::uint16_t slot) const noexcept {
  if (owner_.empty() || slot >= cluster_slots) return -1;
  return owner_[slot];
}

void SlotMap::move(std::uint16_t slot, const store_url::HostPort& to) {
  if (owner_.empty()) owner_.assign(cluster_slots, -1);
  owner_[slot] = static_cast<std::int16_t>(index_of(to));
}

}  // namespace redis
