// store_url.h: which store control/throttlestore names. Pure: text in,
// plain values out.
//
// The first line of control/throttlestore:
//   (absent, empty) or lmdb         the embedded LMDB store (QMAIL_HOME/throttle)
//   redis://[USER@]HOST[:PORT][/DB][?OPTIONS]
//                                   a standalone Redis, or a primary
//   redis-sentinel://[USER@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB][?OPTIONS]
//                                   the primary that Sentinel names MASTER
//   redis-cluster://[USER@]HOST[:PORT][,HOST[:PORT]...][?OPTIONS]
//                                   Redis Cluster, from these seed nodes
// HOST: a name, an IPv4 address or [an IPv6 address]. PORT: 6379 (26379 for
// Sentinels). DB: 0..15, not in a cluster. USER: a Redis ACL user. OPTIONS,
// `&`-separated: connect_timeout=MS (default 250) and timeout=MS (each
// command, default 250), 1..60000.
//
// Never a password: control/ is readable by everyone. A URL with
// USER:PASSWORD@ is refused (and what() masks it); the password goes into
// control/throttlestorepassword (redis_credentials.h).

#ifndef QT_STORE_URL_H
#define QT_STORE_URL_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace store_url {

enum class Kind : std::uint8_t { lmdb, redis, sentinel, cluster };

struct HostPort {
  std::string host;        // without brackets
  std::uint16_t port = 0;

  std::string text() const;  // "host:port", "[v6]:port"
  bool operator==(const HostPort&) const = default;
};

inline constexpr std::uint32_t default_connect_timeout_ms = 250;
inline constexpr std::uint32_t default_timeout_ms = 250;

struct Spec {
  Kind kind = Kind::lmdb;
  std::vector<HostPort> hosts;  // redis: one; sentinel: the Sentinels; cluster: seed nodes
  std::string master;           // sentinel: the master's name
  unsigned db = 0;
  std::string user;             // ACL user; empty: the default user
  std::uint32_t connect_timeout_ms = default_connect_timeout_ms;
  std::uint32_t timeout_ms = default_timeout_ms;
};

// Parses the first line of control/throttlestore. nullopt with *error
// (which never repeats a password) when it is not one of the forms above.
std::optional<Spec> parse(std::string_view line, std::string* error);

// The line as it may be shown (qmail-showctl, logs): a password someone put
// into it anyway is replaced by "***".
std::string masked(std::string_view line);

// "redis://127.0.0.1:6379/0" etc.: the spec as canonical text, no password.
std::string describe(const Spec& spec);

}  // namespace store_url

#endif
