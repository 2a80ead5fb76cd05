// redis_router.h: which Redis node runs a command, and keeping nodes usable.
//
//   redis::Router r({spec, password, redis_functions::source()});
//   redis::Call a{slot_of_a, {"FCALL", ...}}, b{slot_of_b, {"FCALL", ...}};
//   redis::Call* calls[] = {&a, &b};
//   store::Result res = r.run(calls);   // a.reply, b.reply
//
// run() sends every call to the node that serves it - the one Redis, the
// primary Sentinel names, or the cluster node that owns the call's slot -
// all nodes' calls before any reply is read, so calls on several nodes cost
// one round trip together. It then handles, by running the calls concerned
// again (a few rounds at most):
//   MOVED / ASK                 the slot map is corrected / ASKING is sent;
//   "Function not found"        the function library is loaded on that node
//                               (a restarted Redis without persistence, a
//                               new node, FUNCTION FLUSH);
//   READONLY, refused connect   (Sentinel) the primary is asked for again,
//                               once per run: after a failover the next run
//                               finds the new primary;
//   a node that cannot be reached (cluster) the slot map is read again, once.
// Nothing that was sent is sent again after a transport fault (its effect is
// unknown): that call stays without a reply and run() returns the fault.
// Nodes are connected lazily, on their first call; a connection sends
// AUTH/SELECT ahead of its first command (no extra round trip).

#ifndef QT_REDIS_ROUTER_H
#define QT_REDIS_ROUTER_H

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "redis_cluster_slots.h"
#include "redis_connection.h"
#include "store.h"
#include "store_url.h"

namespace redis {

struct Call {
  int slot = -1;                           // cluster: its key's slot; -1: any node
  std::vector<std::string> args;
  std::optional<store_url::HostPort> at;   // run on this node (SCAN, INFO), whatever the slot
  Reply reply;
  bool done = false;                       // reply holds the node's answer
};

struct RouterOptions {
  store_url::Spec spec;
  std::string password;             // "" when none (never logged)
  std::string_view (*library)() = nullptr;  // FUNCTION LOAD source, made only when a node lacks it
};

class Router {
 public:
  explicit Router(RouterOptions options);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  store::Result run(std::span<Call* const> calls);
  store::Result run(Call& call) {
    Call* one[] = {&call};
    return run(one);
  }

  // The primaries that hold the data (for SCAN, INFO): the one node, or
  // every cluster node that owns slots.
  store::Result primaries(std::vector<store_url::HostPort>& out);

  void close() noexcept;
  // "redis://host:port/0", "redis-sentinel://.../mymaster (primary host:port)".
  std::string describe() const;

  // For tests and the bench: how often the primary was asked of Sentinel
  // or the slot map read; how many round trips run() made (calls to several
  // nodes at once count as one).
  unsigned discoveries() const noexcept { return discoveries_; }
  unsigned long round_trips() const noexcept { return round_trips_; }

 private:
  struct Node {
    store_url::HostPort where;
    Connection conn;
  };

  Node& node(const store_url::HostPort& where);
  std::optional<store_url::HostPort> target(const Call& c, std::string& why);
  store::Result connect(Node& n);
  store::Result discover_primary();
  store::Result load_slot_map();
  store::Result load_library(Node& n);

  RouterOptions options_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::optional<store_url::HostPort> primary_;  // standalone: the host; sentinel: as discovered
  SlotMap slots_;
  unsigned discoveries_ = 0;
  unsigned long round_trips_ = 0;
};

}  // namespace redis

#endif
