// redis_router.cpp: see redis_router.h.

#include "redis_router.h"


namespace redis {

namespace {

store::Result unavailable(std::string why) { return store::Result::failure(store::Status::unavailable, std::move(why)); }

bool function_missing(const Reply& r) {
  return r.is_error() && r.str.find("Function not found") != std::string::npos;
}

}  // namespace

Router::Router(RouterOptions options) : options_(std::move(options)) {
  if (options_.spec.kind == store_url::Kind::redis && !options_.spec.hosts.empty())
    primary_ = options_.spec.hosts.front();
}

Router::~Router() {
  close();
  // The password is not left in freed memory.
  for (char& c : options_.password) c = '\0';
}

void Router::close() noexcept {
  for (auto& n : nodes_) n->conn.close();
}

Router::Node& Router::node(const store_url::HostPort& where) {
  for (auto& n : nodes_)
    if (n->where == where) return *n;
  nodes_.push_back(std::make_unique<Node>());
  nodes_.back()->where = where;
  return *nodes_.back();
}

store::Result Router::connect(Node& n) {
  std::vector<std::vector<std::string>> setup;
  if (!options_.password.empty()) {
    if (options_.spec.user.empty())
      setup.push_back({"AUTH", options_.password});
    else
      setup.push_back({"AUTH", options_.spec.user, options_.password});
  }
  if (options_.spec.db != 0 && options_.spec.kind != store_url::Kind::cluster)
    setup.push_back({"SELECT", std::to_string(options_.spec.db)});
  const Timeouts t{options_.spec.connect_timeout_ms, options_.spec.timeout_ms};
  store::Result r = n.conn.open(n.where, t, setup);
  for (auto& cmd : setup)
    for (auto& word : cmd)
      for (char& c : word) c = '\0';
  return r;
}

store::Result Router::discover_primary() {
  ++discoveries_;
  primary_.reset();
  std::string errors;
  const Timeouts t{options_.spec.connect_timeout_ms, options_.spec.timeout_ms};
  for (const store_url::HostPort& sentinel : options_.spec.hosts) {
    Connection c;
    store::Result r = c.open(sentinel, t, {});
    Reply reply;
    if (r.ok()) r = c.append({"SENTINEL", "get-master-addr-by-name", options_.spec.master});
    if (r.ok()) r = c.receive(reply);
    if (r.ok()) {
      if (reply.type == Reply::Type::array && reply.elements.size() == 2 &&
          reply.elements[0].type == Reply::Type::string && reply.elements[1].type == Reply::Type::string) {
        std::optional<store_url::Spec> hp =
            store_url::parse("redis://" + (reply.elements[0].str.find(':') != std::string::npos
                                               ? "[" + reply.elements[0].str + "]"
                                               : reply.elements[0].str) +
                                 ":" + reply.elements[1].str,
                             nullptr);
        if (hp) {
          primary_ = hp->hosts.front();
          return {};
        }
        r = unavailable("Sentinel " + sentinel.text() + " named a primary that cannot be parsed");
      } else if (reply.type == Reply::Type::nil) {
        r = unavailable("Sentinel " + sentinel.text() + " knows no master " + options_.spec.master);
      } else {
        r = unavailable("Sentinel " + sentinel.text() + ": " + (reply.is_error() ? reply.str : "unexpected reply"));
      }
    }
    if (!errors.empty()) errors += "; ";
    errors += r.reason;
  }
  return unavailable("no Sentinel named the primary of " + options_.spec.master + " (" + errors + ")");
}

store::Result Router::load_slot_map() {
  ++discoveries_;
  std::vector<store_url::HostPort> candidates = slots_.nodes();
  for (const store_url::HostPort& seed : options_.spec.hosts) {
    bool known = false;
    for (const auto& c : candidates) known = known || c == seed;
    if (!known) candidates.push_back(seed);
  }
  std::string errors;
  for (const store_url::HostPort& where : candidates) {
    Node& n = node(where);
    store::Result r;
    if (!n.conn.is_open()) r = connect(n);
    Reply reply;
    if (r.ok()) r = n.conn.append({"CLUSTER", "SLOTS"});
    if (r.ok()) r = n.conn.receive(reply);
    if (r.ok()) {
      if (slots_.load(reply, where)) return {};
      r = unavailable(where.text() + " gave no slot map" + (reply.is_error() ? ": " + reply.str : std::string()));
    }
    if (!errors.empty()) errors += "; ";
    errors += r.reason;
  }
  return unavailable("no cluster node gave its slot map (" + errors + ")");
}

store::Result Router::load_library(Node& n) {
  Reply reply;
  if (options_.library == nullptr) return unavailable("no function library to load into " + n.where.text());
  store::Result r = n.conn.append({"FUNCTION", "LOAD", "REPLACE", options_.library()});
  if (r.ok()) r = n.conn.receive(reply);
  if (!r.ok()) return r;
  if (reply.is_error())
    return unavailable("cannot load the function library into " + n.where.text() + ": " + reply.str);
  return {};
}

std::optional<store_url::HostPort> Router::target(const Call& c, std::string& why) {
  if (c.at) return c.at;
  switch (options_.spec.kind) {
    case store_url::Kind::cluster: {
      if (slots_.empty()) {
        store::Result r = load_slot_map();
        if (!r.ok()) {
          why = r.reason;
          return std::nullopt;
        }
      }
      const int idx = slots_.node_of(c.slot < 0 ? 0 : static_cast<std::uint16_t>(c.slot));
      if (idx < 0) {
        why = "no cluster node serves slot " + std::to_string(c.slot);
        return std::nullopt;
      }
      return slots_.nodes()[static_cast<std::size_t>(idx)];
    }
    case store_url::Kind::sentinel:
      if (!primary_) {
        store::Result r = discover_primary();
        if (!r.ok()) {
          why = r.reason;
          return std::nullopt;
        }
      }
      return primary_;
    default:
      if (!primary_) why = "no Redis host configured";
      return primary_;
  }
}

store::Result Router::run(std::span<Call* const> calls) {
  const std::size_t n = calls.size();
  for (Call* c : calls) {
    c->done = false;
    c->reply = Reply{};
  }
  std::vector<std::optional<store_url::HostPort>> ask(n);
  std::vector<bool> abandoned(n, false);  // sent and lost, or unroutable: not run again
  store::Result fault;  // why calls that may run again did not (yet)
  store::Result lost;   // why a call was given up
  bool rediscovered = false, remapped = false;
  std::vector<std::pair<Node*, int>> loaded;  // nodes this run loaded the library into, and when
  auto loaded_round = [&](Node* nd) {
    for (const auto& [x, r] : loaded)
      if (x == nd) return r;
    return -1;
  };
  const bool sentinel = options_.spec.kind == store_url::Kind::sentinel;
  const bool cluster = options_.spec.kind == store_url::Kind::cluster;

  struct Group {
    Node* node;
    std::vector<std::size_t> idx;
    store::Result failed;
    bool sent = false;
  };
  for (int round = 0; round < 6; ++round) {
    std::vector<Group> groups;
    for (std::size_t i = 0; i < n; ++i) {
      if (calls[i]->done || abandoned[i]) continue;
      std::string why;
      std::optional<store_url::HostPort> where = ask[i] ? ask[i] : target(*calls[i], why);
      if (!where) {
        if (lost.ok()) lost = unavailable(why);
        abandoned[i] = true;
        continue;
      }
      Node& nd = node(*where);
      Group* g = nullptr;
      for (Group& x : groups)
        if (x.node == &nd) g = &x;
      if (g == nullptr) {
        groups.push_back(Group{&nd, {}, {}, false});
        g = &groups.back();
      }
      g->idx.push_back(i);
    }
    if (groups.empty()) break;

    bool lost_primary = false, lost_node = false;
    // Queue everything, then send everything, then read: one round trip.
    for (Group& g : groups) {
      (void)g.node->conn.closed_by_peer();  // then it is connected again, with nothing lost
      if (!g.node->conn.is_open()) g.failed = connect(*g.node);
      if (!g.failed.ok()) {
        lost_primary = lost_primary || sentinel;
        lost_node = lost_node || cluster;
        continue;
      }
      for (std::size_t i : g.idx) {
        if (ask[i] && !(g.failed = g.node->conn.append({"ASKING"})).ok()) break;
        std::vector<std::string_view> args(calls[i]->args.begin(), calls[i]->args.end());
        if (!(g.failed = g.node->conn.append(args)).ok()) break;
      }
      if (g.failed.ok()) {
        g.sent = true;
        g.failed = g.node->conn.flush();
      }
    }
    ++round_trips_;
    for (Group& g : groups) {
      if (!g.failed.ok()) continue;
      for (std::size_t i : g.idx) {
        Reply asking;
        if (ask[i] && !(g.failed = g.node->conn.receive(asking)).ok()) break;
        if (!(g.failed = g.node->conn.receive(calls[i]->reply)).ok()) break;
        calls[i]->done = true;
      }
    }

    bool again = false;
    for (Group& g : groups) {
      if (!g.failed.ok()) {
        // Not sent (no connection): Sentinel or the slot map may know
        // better. Sent: its effect is unknown, so it is never sent twice.
        const bool retry = !g.sent && (sentinel || cluster);
        for (std::size_t i : g.idx) {
          if (calls[i]->done) continue;
          if (retry)
            again = true;
          else
            abandoned[i] = true;
        }
        if (!retry && lost.ok()) lost = g.failed;
        if (retry) fault = g.failed;
        continue;
      }
      for (std::size_t i : g.idx) {
        Call& c = *calls[i];
        ask[i].reset();
        if (std::optional<Redirect> r = parse_redirect(c.reply); r && cluster) {
          if (r->ask)
            ask[i] = r->to;
          else
            slots_.move(r->slot, r->to);
          c.done = false;
          again = true;
        } else if (function_missing(c.reply)) {
          // A restarted Redis without persistence, a new node, FUNCTION
          // FLUSH, another version of qmail-throttle: load the library, once
          // per node and run, and run again what was sent before it was.
          const int at = loaded_round(g.node);
          if (at < 0) {
            store::Result lr = load_library(*g.node);
            loaded.emplace_back(g.node, round);
            if (lr.ok()) {
              c.done = false;
              again = true;
            } else if (lost.ok()) {
              lost = lr;
            }
          } else if (at == round) {
            c.done = false;
            again = true;
          }
        } else if (sentinel && !rediscovered && c.reply.error_code_is("READONLY")) {
          lost_primary = true;
          c.done = false;  // refused by a replica: nothing was written
          again = true;
        }
      }
    }
    if (!again) break;
    if (lost_primary) {
      if (rediscovered) break;
      rediscovered = true;
      const std::optional<store_url::HostPort> old = primary_;
      if (old) node(*old).conn.close();
      if (store::Result r = discover_primary(); !r.ok()) {
        fault = r;
        break;
      }
    }
    if (lost_node) {
      if (remapped) break;
      remapped = true;
      if (store::Result r = load_slot_map(); !r.ok()) {
        fault = r;
        break;
      }
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (calls[i]->done) continue;
    if (!lost.ok()) return lost;
    if (!fault.ok()) return fault;
    return unavailable("too many redirections");
  }
  return {};
}

store::Result Router::primaries(std::vector<store_url::HostPort>& out) {
  out.clear();
  if (options_.spec.kind == store_url::Kind::cluster) {
    if (slots_.empty()) {
      if (store::Result r = load_slot_map(); !r.ok()) return r;
    }
    for (std::uint32_t s = 0; s < cluster_slots; ++s) {
      const int idx = slots_.node_of(static_cast<std::uint16_t>(s));
      if (idx < 0) continue;
      const store_url::HostPort& hp = slots_.nodes()[static_cast<std::size_t>(idx)];
      bool seen = false;
      for (const auto& o : out) seen = seen || o == hp;
      if (!seen) out.push_back(hp);
    }
    return {};
  }
  Call probe;
  std::string why;
  std::optional<store_url::HostPort> where = target(probe, why);
  if (!where) return unavailable(why);
  out.push_back(*where);
  return {};
}

std::string Router::describe() const {
  std::string s = store_url::describe(options_.spec);
  if (options_.spec.kind == store_url::Kind::sentinel && primary_) s += " (primary " + primary_->text() + ")";
  return s;
}

}  // namespace redis
