// redis_cluster_slots.h: which Redis Cluster node serves a key. Pure.
//
// A key's slot is CRC16 (XMODEM) of its hash tag - the text between its
// first '{' and the next '}', when that is not empty - or of the whole key,
// mod 16384. The store names every key of one identity "qt1:{IDENTITY}..."
// so that they share a slot and one script can update them atomically.
// A SlotMap is what CLUSTER SLOTS says (primaries only), corrected by MOVED
// redirections; ASK redirects one command once and changes nothing.

#ifndef QT_REDIS_CLUSTER_SLOTS_H
#define QT_REDIS_CLUSTER_SLOTS_H

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "redis_connection.h"
#include "store_url.h"

namespace redis {

inline constexpr unsigned cluster_slots = 16384;

std::uint16_t crc16(std::string_view data) noexcept;
std::uint16_t key_slot(std::string_view key) noexcept;

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381".
struct Redirect {
  bool ask = false;  // ASK (once, after ASKING) rather than MOVED (for good)
  std::uint16_t slot = 0;
  store_url::HostPort to;
};
std::optional<Redirect> parse_redirect(const Reply& r);

class SlotMap {
 public:
  // From a CLUSTER SLOTS reply: false when it is not one (or covers nothing).
  // A node given as "" (or "?") in the reply is `asked` (the node that
  // answered), as Redis documents for nodes that do not know their address.
  bool load(const Reply& cluster_slots, const store_url::HostPort& asked);
  void clear() noexcept;
  bool empty() const noexcept { return nodes_.empty(); }

  // The node serving `slot`, an index into nodes(); -1 when none is known.
  int node_of(std::uint16_t slot) const noexcept;
  void move(std::uint16_t slot, const store_url::HostPort& to);
  const std::vector<store_url::HostPort>& nodes() const noexcept { return nodes_; }
  // Index of `hp` in nodes(), adding it when new.
  int index_of(const store_url::HostPort& hp);

 private:
  std::vector<store_url::HostPort> nodes_;
  std::vector<std::int16_t> owner_;  // per slot: index into nodes_, -1: unknown
};

}  // namespace redis

#endif
