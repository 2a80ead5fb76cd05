// qmail-throttlectl: see and reset what the relay and client limits have
// counted.
//
//   qmail-throttlectl [-d DIR] show IDENTITY ...      (counters; an address's client
//                                                      limits and teergrube state)
//   qmail-throttlectl [-d DIR] top [-n N] [rcpt|msg|authfail|conn|tls|auth|inmsg|inrcpt]
//   qmail-throttlectl [-d DIR] reset IDENTITY ...
//   qmail-throttlectl [-d DIR] expire
//   qmail-throttlectl [-d DIR] stats
//   qmail-throttlectl [-d DIR] repair
//
// It runs in QMAIL_HOME (or DIR) and opens the store exactly as qmail-smtpd
// does: the one control/throttlestore names - LMDB in throttle/
// (control/throttlestoresize) or Redis. Run as root, every LMDB file it
// creates or touches is given to the owner of throttle/, so qmail-smtpd can
// always open it. Connections at once (conn=) are not in the store: they
// are the slot files of throttle/conn/ on this host (client_slots.h), which
// show counts and expire sweeps. repair is for LMDB only. Exit codes: 0
// done, 100 usage or a bad identity, 111 a store fault. See
// doc/qmail-throttlectl.8.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <csignal>

#include <sys/stat.h>
#include <unistd.h>

#include "client_slots.h"
#include "connection_policy.h"
#include "helpers.h"
#include "limits_table.h"
#include "relay_policy.h"
#include "session_throttle.h"
#include "spamt_syntax.h"
#include "store_factory.h"
#include "store_lmdb.h"
#include "store_url.h"
#include "teergrube_delay.h"

extern "C" char auto_qmail[];  // auto_qmail.c

namespace {

constexpr const char* me = "qmail-throttlectl";

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "%s: usage: %s [-d dir] show identity ...\n"
               "       %s [-d dir] top [-n count] [rcpt|msg|authfail|conn|tls|auth|inmsg|inrcpt]\n"
               "       %s [-d dir] reset identity ...\n"
               "       %s [-d dir] expire|stats|repair\n",
               me, me, me, me, me);
  std::exit(100);
}

[[noreturn]] void fatal(const std::string& what, int code = 111) {
  std::fprintf(stderr, "%s: fatal: %s\n", me, what.c_str());
  std::exit(code);
}

void check(const store::Result& r, const char* what) {
  if (!r.ok())
    fatal(std::string(what) + ": store " + std::string(store::status_name(r.status)) + ": " + r.reason);
}

// "3h12m", "45s": how long until something frees up.
std::string duration(std::uint64_t ms) {
  if (ms == window::never) return "never";
  std::uint64_t s = (ms + 999) / 1000;
  std::string out;
  if (s >= 86400) out += std::to_string(s / 86400) + "d", s %= 86400;
  if (s >= 3600) out += std::to_string(s / 3600) + "h", s %= 3600;
  if (s >= 60) out += std::to_string(s / 60) + "m", s %= 60;
  if (s > 0 || out.empty()) out += std::to_string(s) + "s";
  return out;
}

// An identity on the command line; a bad one ends the program.
spamt::Identity identity_of(const char* word) {
  std::string error;
  std::optional<spamt::Identity> id = spamt::parse_identity(word, &error);
  if (!id) fatal(std::string(word) + ": " + error, 100);
  if (id->kind == spamt::Kind::fallback)
    fatal("default has no counters of its own: name a user, domain or address", 100);
  return *id;
}

// The budget keys an identity stands for: its own, and for an IPv6
// address also its /64 (clients without an entry of their own are counted
// per /64).
std::vector<std::string> keys_for(const spamt::Identity& id) {
  std::vector<std::string> keys{id.budget_key()};
  if (id.kind == spamt::Kind::address && id.network.address.bits() == 128) {
    spamt::Identity block = id;
    block.kind = spamt::Kind::network;
    block.network = ip::Network{ip::masked(id.network.address, helpers::client_prefix6), helpers::client_prefix6};
    keys.push_back(block.budget_key());
  }
  return keys;
}

// The store's clock now (Redis: the server's TIME).
std::uint64_t store_time(store::Store& s) {
  std::uint64_t at = 0;
  check(s.clock(at), "clock");
  return at;
}

void print_counter(const store::CounterUsage& u, bool with_identity) {
  if (with_identity) std::printf("%s ", relay_policy::describe_key(u.identity).c_str());
  std::printf("%s per %s: %llu used", u.metric.c_str(), helpers::period_text(u.window_seconds).c_str(),
              static_cast<unsigned long long>(u.used));
  if (u.limit != 0) {
    unsigned long long left = u.used >= u.limit ? 0 : u.limit - u.used;
    std::printf(" of %u, %llu left", u.limit, left);
  }
  if (u.used != 0) std::printf(", next frees in %s", duration(u.next_release_ms).c_str());
  std::printf("\n");
}

// The keys of the teergrube state qmail-smtpd may keep for an identity: for
// an address, the key the limits table gives it now (per client, per block
// or a group) and its own; for a network, its block's.
std::vector<std::string> teergrube_keys(const throttle::Config& c, const spamt::Identity& id) {
  std::vector<std::string> keys;
  if (id.kind != spamt::Kind::address && id.kind != spamt::Kind::network) return keys;
  spamt::LimitsTable table;
  auto l = std::make_unique<spamt::Lookup>();
  if (id.kind == spamt::Kind::address && table.open(c.table_path) == spamt::TableStatus::ok &&
      table.lookup(id.network.address, "", *l) == spamt::LookupStatus::ok && l->teergrube().active())
    keys.emplace_back(l->teergrube().state_key);
  const std::string own = id.budget_key();
  if (keys.empty() || keys[0] != own) keys.push_back(own);
  return keys;
}

void show_teergrube(store::Store& s, const throttle::Config& c, const spamt::Identity& id, std::uint64_t now) {
  for (const std::string& key : teergrube_keys(c, id)) {
    std::optional<std::string> value;
    check(s.read_record(teergrube::record_key(key), now, value), "show");
    if (!value) continue;
    std::optional<teergrube::State> st = teergrube::decode(*value);
    if (!st) {
      std::printf("  teergrube state %s: unreadable\n", key.c_str());
      continue;
    }
    std::printf("  teergrube state %s: last message released %s ago, its computed wait %llums\n", key.c_str(),
                st->last_ms > now ? "0s" : duration(now - st->last_ms).c_str(),
                static_cast<unsigned long long>(st->wait_ms));
  }
}

// The slot files of conn= (client_slots.h): per host, beside the store's
// directory also when the store is Redis, as qmail-smtpd keeps them.
std::string slots_dir(const throttle::Config& c) { return c.store.directory + "/conn"; }

// Each rate of the client limits and the metric its counters have
// (connection_policy.h), in the order show lists them.
struct ClientRate {
  std::string_view metric;
  const spamt::Windows spamt::Client::*windows;
};
constexpr ClientRate client_rates[] = {
    {connection_policy::connrate_metric, &spamt::Client::connrate},
    {connection_policy::tlsrate_metric, &spamt::Client::tlsrate},
    {connection_policy::authrate_metric, &spamt::Client::authrate},
    {connection_policy::inmsg_metric, &spamt::Client::inmsg},
    {connection_policy::inrcpt_metric, &spamt::Client::inrcpt},
};

bool client_metric(std::string_view metric) {
  for (const ClientRate& r : client_rates)
    if (r.metric == metric) return true;
  return false;
}

// The client limits of an address as the limits table resolves them now.
class ClientView {
 public:
  // Looks the address up; nothing to show (null client()) without a table,
  // or without control/spamt.clients: then no entry carries client limits
  // and qmail-smtpd checks none.
  ClientView(const throttle::Config& c, const spamt::Identity& id) {
    if (id.kind != spamt::Kind::address || ::access("control/spamt.clients", F_OK) != 0 ||
        table_.open(c.table_path) != spamt::TableStatus::ok ||
        table_.lookup(id.network.address, "", *lookup_) != spamt::LookupStatus::ok ||
        lookup_->client().entry == nullptr)
      return;
    client_ = &lookup_->client();
  }
  const spamt::ClientLimits* client() const { return client_; }
  // Whether its rates are counted under `key`: then the "client limits"
  // block lists that key's counters of their metrics.
  bool counted_as(std::string_view key) const {
    return client_ != nullptr && !client_->limits->exempt && key == client_->key;
  }

 private:
  spamt::LimitsTable table_;
  std::unique_ptr<spamt::Lookup> lookup_ = std::make_unique<spamt::Lookup>();
  const spamt::ClientLimits* client_ = nullptr;
};

// "  client limits from default (control/spamt:1), counted as address
// 192.0.2.7:", then connections in use on this host and each rate window
// with the table's limit; counters of the key under windows the table no
// longer gives follow with the limit of their last charge.
void show_client(const throttle::Config& config, const spamt::ClientLimits& c,
                 const std::vector<store::CounterUsage>& usage) {
  const spamt::Entry& e = *c.entry;
  const std::string from =
      (e.kind == spamt::Kind::fallback ? std::string("default") : std::string(e.identity)) + " (" +
      std::string(e.client_origin) + ")";
  if (c.limits->exempt) {
    std::printf("  client limits: exempt, from %s\n", from.c_str());
    return;
  }
  std::printf("  client limits from %s, counted as %s:\n", from.c_str(), relay_policy::describe_key(c.key).c_str());
  // every held slot, also above a lowered conn= (they count until their
  // sessions end); the cost is per held slot, not per possible one
  const std::optional<std::uint32_t> held =
      client_slots::in_use(slots_dir(config), c.key, std::numeric_limits<std::uint32_t>::max() - 1);
  if (!held)
    std::printf("    connections: cannot count them in %s: %s\n", slots_dir(config).c_str(), std::strerror(errno));
  else if (c.limits->conn != 0)
    std::printf("    connections: %u of %u in use on this host\n", *held, c.limits->conn);
  else if (*held != 0)
    std::printf("    connections: %u in use on this host, no limit now\n", *held);
  std::vector<bool> shown(usage.size(), false);
  for (const ClientRate& rate : client_rates) {
    for (const spamt::Window& w : c.limits->*rate.windows) {
      store::CounterUsage u{std::string(c.key), std::string(rate.metric), w.seconds, 0, 0, 0};
      for (std::size_t i = 0; i < usage.size(); ++i) {
        if (usage[i].metric == rate.metric && usage[i].window_seconds == w.seconds) {
          u = usage[i];
          shown[i] = true;
        }
      }
      u.limit = w.limit;
      std::printf("    ");
      print_counter(u, false);
    }
  }
  for (std::size_t i = 0; i < usage.size(); ++i) {
    if (shown[i] || !client_metric(usage[i].metric)) continue;
    std::printf("    ");
    print_counter(usage[i], false);
  }
}

int show(store::Store& s, const throttle::Config& c, char** words, int n) {
  // One reading of the store's clock (Redis: the server's) for the whole
  // report: teergrube state ages are computed from it.
  std::uint64_t now = store_time(s);
  std::vector<store::CounterUsage> usage;
  for (int i = 0; i < n; ++i) {
    const spamt::Identity id = identity_of(words[i]);
    const ClientView client(c, id);
    bool client_shown = false;
    for (const std::string& key : keys_for(id)) {
      check(s.usage(key, now, usage), "show");
      std::printf("%s:", relay_policy::describe_key(key).c_str());
      const bool client_here = client.counted_as(key);
      std::size_t listed = 0;
      for (const store::CounterUsage& u : usage) {
        if (client_here && client_metric(u.metric)) continue;
        if (listed++ == 0) std::printf("\n");
        std::printf("  ");
        print_counter(u, false);
      }
      if (listed == 0) std::printf(client_here ? "\n" : " nothing counted\n");
      if (client_here) {
        show_client(c, *client.client(), usage);
        client_shown = true;
      }
    }
    if (client.client() != nullptr && !client_shown) {  // exempt, or a block's shared count
      usage.clear();
      if (!client.client()->limits->exempt) check(s.usage(client.client()->key, now, usage), "show");
      show_client(c, *client.client(), usage);
    }
    show_teergrube(s, c, id, now);
  }
  return 0;
}

int top(store::Store& s, std::size_t count, std::string_view metric) {
  std::vector<store::CounterUsage> usage;
  check(s.top(count, metric, store::store_clock, usage), "top");
  for (const store::CounterUsage& u : usage) print_counter(u, true);
  return 0;
}

int reset(store::Store& s, const throttle::Config& c, char** words, int n) {
  const std::uint64_t now = store::store_clock;
  for (int i = 0; i < n; ++i) {
    const spamt::Identity id = identity_of(words[i]);
    for (const std::string& key : keys_for(id)) {
      std::size_t removed = 0;
      check(s.reset(key, now, &removed), "reset");
      std::printf("%s: %zu counter%s reset\n", relay_policy::describe_key(key).c_str(), removed,
                  removed == 1 ? "" : "s");
    }
    for (const std::string& key : teergrube_keys(c, id)) {
      bool had = false;
      check(s.update_record(teergrube::record_key(key), now,
                            [&](std::optional<std::string_view> current, std::uint64_t) {
                              had = current.has_value();
                              return store::RecordEdit::erase();
                            }),
            "reset");
      if (had) std::printf("teergrube state %s reset\n", key.c_str());
    }
  }
  return 0;
}

int expire(store::Store& s, const throttle::Config& c) {
  std::size_t total = 0;
  for (;;) {  // in slices: writers wait for the lock meanwhile, not for all of it
    std::size_t removed = 0;
    check(s.expire(store::store_clock, 1000, &removed), "expire");
    total += removed;
    if (removed < 1000) break;
  }
  std::printf("%zu idle entr%s removed\n", total, total == 1 ? "y" : "ies");
  // conn='s slot files left by SIGKILLed sessions (a session that ends
  // removes its client's file when it held the last slot)
  client_slots::Swept swept;
  const int err = client_slots::sweep(slots_dir(c), swept);
  if (err == ENOENT) return 0;
  if (err != 0) fatal("unable to read " + slots_dir(c) + ": " + std::strerror(err));
  std::printf("%zu unused connection slot file%s removed, %zu in use\n", swept.removed,
              swept.removed == 1 ? "" : "s", swept.kept);
  return 0;
}

int stats(store::Store& s) {
  store::Stats st;
  check(s.stats(st), "stats");
  std::printf("store %s\n", s.describe().c_str());
  std::printf("counters %llu\nrecords %llu\n", static_cast<unsigned long long>(st.counters),
              static_cast<unsigned long long>(st.records));
  std::printf("bytes used %llu of %llu\n", static_cast<unsigned long long>(st.bytes_used),
              static_cast<unsigned long long>(st.bytes_max));
  if (st.file_bytes != 0) std::printf("file bytes %llu\n", static_cast<unsigned long long>(st.file_bytes));
  return 0;
}

int repair(const store::LmdbOptions& o) {
  std::string moved;
  check(store::LmdbStore::set_aside(o, window::clock_ms(), &moved), "repair");
  if (moved.empty())
    std::printf("no store to set aside\n");
  else
    std::printf("store set aside as %s; qmail-smtpd starts an empty one\n", moved.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* dir = auto_qmail;
  int opt;
  while ((opt = ::getopt(argc, argv, "+d:")) != -1) {
    if (opt == 'd')
      dir = optarg;
    else
      usage();
  }
  if (optind >= argc) usage();
  std::string_view cmd = argv[optind++];
  if (::chdir(dir) != 0) fatal(std::string("unable to chdir to ") + dir + ": " + std::strerror(errno));
  ::umask(077);

  // A Redis server that goes away must not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);

  throttle::Config config = throttle::config_from_qmail();
  std::string error;
  const std::optional<store_url::Spec> spec = store_url::parse(config.store_line, &error);
  if (!spec) fatal("control/throttlestore: " + error);
  const bool lmdb = spec->kind == store_url::Kind::lmdb;
  struct stat st;
  if (lmdb && (::stat(config.store.directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)))
    fatal(std::string("no state directory ") + dir + "/" + config.store.directory +
          " (make install creates it, owned by the user qmail-smtpd runs as)");

  if (cmd == "repair") {
    if (optind != argc) usage();
    if (!lmdb) fatal("repair is for the LMDB store; this one is " + store_url::describe(*spec), 100);
    return repair(config.store);
  }
  std::unique_ptr<store::Store> store = store::make_store(config.store_line, config.store, config.password_file);
  store::Store& s = *store;
  if (cmd == "show" || cmd == "reset") {
    if (optind >= argc) usage();
    return cmd == "show" ? show(s, config, argv + optind, argc - optind)
                         : reset(s, config, argv + optind, argc - optind);
  }
  if (cmd == "top") {
    std::size_t count = 10;
    int o;
    while ((o = ::getopt(argc, argv, "n:")) != -1) {
      if (o != 'n') usage();
      char* end = nullptr;
      unsigned long n = std::strtoul(optarg, &end, 10);
      if (end == optarg || *end != '\0' || n == 0 || n > 100000) usage();
      count = n;
    }
    std::string_view metric;
    if (optind < argc) metric = argv[optind++];
    if (optind != argc) usage();
    if (!metric.empty() && metric != relay_policy::rcpt_metric && metric != relay_policy::msg_metric &&
        metric != relay_policy::authfail_metric && !client_metric(metric))
      usage();
    return top(s, count, metric);
  }
  if (optind != argc) usage();
  if (cmd == "expire") return expire(s, config);
  if (cmd == "stats") return stats(s);
  usage();
}
