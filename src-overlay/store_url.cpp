// store_url.cpp: see store_url.h.

#include "store_url.h"

#include "helpers.h"

namespace store_url {

namespace {

constexpr std::string_view scheme_redis = "redis://";
constexpr std::string_view scheme_sentinel = "redis-sentinel://";
constexpr std::string_view scheme_cluster = "redis-cluster://";

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool fail(std::string* error, std::string why) {
  if (error != nullptr) *error = std::move(why);
  return false;
}

// A decimal number in [lo, hi].
bool number(std::string_view s, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  const std::optional<std::uint32_t> v = helpers::parse_u32(s);
  if (!v || *v < lo || *v > hi) return false;
  out = *v;
  return true;
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_';
}

// HOST[:PORT] or [V6][:PORT].
bool parse_host(std::string_view s, std::uint16_t default_port, HostPort& out, std::string* error) {
  std::string_view host, port;
  if (!s.empty() && s.front() == '[') {
    const std::size_t close = s.find(']');
    if (close == std::string_view::npos) return fail(error, "unclosed [ in " + std::string(s));
    host = s.substr(1, close - 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail(error, "expected :PORT after ] in " + std::string(s));
      port = rest.substr(1);
    }
    for (char c : host)
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
        return fail(error, "bad IPv6 address " + std::string(host));
  } else {
    const std::size_t colon = s.find(':');
    host = s.substr(0, colon);
    if (colon != std::string_view::npos) port = s.substr(colon + 1);
    for (char c : host)
      if (!host_char(c)) return fail(error, "bad host name " + std::string(host));
  }
  if (host.empty()) return fail(error, "no host in " + std::string(s));
  out.host.assign(host);
  out.port = default_port;
  if (!port.empty() || (s.size() > 0 && s.back() == ':')) {
    std::uint64_t p = 0;
    if (!number(port, 1, 65535, p)) return fail(error, "bad port in " + std::string(s));
    out.port = static_cast<std::uint16_t>(p);
  }
  return true;
}

bool parse_options(std::string_view q, Spec& spec, std::string* error) {
  while (!q.empty()) {
    const std::size_t amp = q.find('&');
    const std::string_view opt = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    const std::size_t eq = opt.find('=');
    const std::string_view name = opt.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : opt.substr(eq + 1);
    std::uint64_t ms = 0;
    if (name == "connect_timeout" || name == "timeout") {
      if (!number(value, 1, 60000, ms)) return fail(error, std::string(name) + " must be 1..60000 milliseconds");
      (name == "timeout" ? spec.timeout_ms : spec.connect_timeout_ms) = static_cast<std::uint32_t>(ms);
    } else if (name == "password" || name == "pass") {
      return fail(error, "a password does not belong in control/throttlestore: put it into "
                         "control/throttlestorepassword (mode 0400)");
    } else {
      return fail(error, "unknown option " + std::string(name));
    }
  }
  return true;
}

bool parse_db(std::string_view s, Spec& spec, std::string* error) {
  std::uint64_t db = 0;
  if (!number(s, 0, 15, db)) return fail(error, "bad database number " + std::string(s) + " (0..15)");
  spec.db = static_cast<unsigned>(db);
  return true;
}

}  // namespace

std::string HostPort::text() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<Spec> parse(std::string_view line, std::string* error) {
  line = trim(line);
  Spec spec;
  if (line.empty() || line == "lmdb") return spec;
  std::string_view rest;
  std::uint16_t default_port = 6379;
  if (line.substr(0, scheme_redis.size()) == scheme_redis) {
    spec.kind = Kind::redis;
    rest = line.substr(scheme_redis.size());
  } else if (line.substr(0, scheme_sentinel.size()) == scheme_sentinel) {
    spec.kind = Kind::sentinel;
    rest = line.substr(scheme_sentinel.size());
    default_port = 26379;
  } else if (line.substr(0, scheme_cluster.size()) == scheme_cluster) {
    spec.kind = Kind::cluster;
    rest = line.substr(scheme_cluster.size());
  } else {
    fail(error, "not lmdb, redis://, redis-sentinel:// or redis-cluster://");
    return std::nullopt;
  }
  const std::size_t question = rest.find('?');
  if (question != std::string_view::npos) {
    if (!parse_options(rest.substr(question + 1), spec, error)) return std::nullopt;
    rest = rest.substr(0, question);
  }
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view user = authority.substr(0, at);
    if (user.find(':') != std::string_view::npos) {
      fail(error, "a password does not belong in control/throttlestore: put it into control/throttlestorepassword "
                  "(mode 0400)");
      return std::nullopt;
    }
    if (user.empty()) {
      fail(error, "empty user name before @");
      return std::nullopt;
    }
    for (char c : user)
      if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '@') {
        fail(error, "bad user name");
        return std::nullopt;
      }
    spec.user.assign(user);
    authority = authority.substr(at + 1);
  }
  while (true) {
    const std::size_t comma = authority.find(',');
    HostPort hp;
    if (!parse_host(authority.substr(0, comma), default_port, hp, error)) return std::nullopt;
    spec.hosts.push_back(std::move(hp));
    if (comma == std::string_view::npos) break;
    authority = authority.substr(comma + 1);
  }
  switch (spec.kind) {
    case Kind::redis:
      if (spec.hosts.size() != 1) {
        fail(error, "redis:// takes one host (Sentinels: redis-sentinel://, a cluster: redis-cluster://)");
        return std::nullopt;
      }
      if (!path.empty() && !parse_db(path, spec, error)) return std::nullopt;
      break;
    case Kind::sentinel: {
      const std::size_t s2 = path.find('/');
      spec.master.assign(path.substr(0, s2));
      if (spec.master.empty()) {
        fail(error, "redis-sentinel:// needs /MASTERNAME");
        return std::nullopt;
      }
      for (char c : spec.master)
        if (static_cast<unsigned char>(c) <= ' ') {
          fail(error, "bad master name");
          return std::nullopt;
        }
      if (s2 != std::string_view::npos && !parse_db(path.substr(s2 + 1), spec, error)) return std::nullopt;
      break;
    }
    case Kind::cluster:
      if (!path.empty()) {
        fail(error, "a Redis Cluster has no databases: nothing may follow the hosts");
        return std::nullopt;
      }
      break;
    case Kind::lmdb:
      break;
  }
  return spec;
}

std::string masked(std::string_view line) {
  std::string out(line);
  const std::size_t scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  const std::size_t start = scheme + 3;
  const std::size_t end = out.find_first_of("/?", start);
  const std::size_t at = out.rfind('@', end == std::string::npos ? std::string::npos : end);
  if (at != std::string::npos && at >= start) {
    const std::size_t colon = out.find(':', start);
    if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  }
  for (std::string_view key : {"password=", "pass="}) {
    std::size_t p = out.find(key);
    if (p == std::string::npos) continue;
    p += key.size();
    const std::size_t e = out.find('&', p);
    out.replace(p, (e == std::string::npos ? out.size() : e) - p, "***");
  }
  return out;
}

std::string describe(const Spec& spec) {
  std::string out;
  switch (spec.kind) {
    case Kind::lmdb: return "lmdb";
    case Kind::redis: out = "redis://"; break;
    case Kind::sentinel: out = "redis-sentinel://"; break;
    case Kind::cluster: out = "redis-cluster://"; break;
  }
  if (!spec.user.empty()) out += spec.user + "@";
  for (std::size_t i = 0; i < spec.hosts.size(); ++i) {
    if (i != 0) out += ",";
    out += spec.hosts[i].text();
  }
  if (spec.kind == Kind::sentinel) out += "/" + spec.master;
  if (spec.kind != Kind::cluster) out += "/" + std::to_string(spec.db);
  return out;
}

}  // namespace store_url
