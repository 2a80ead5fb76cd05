// store_redis.cpp: see store_redis.h.

#include "store_redis.h"

#include <algorithm>

#include <sys/random.h>
#include <unistd.h>

#include "helpers.h"
#include "redis_functions.h"

namespace store {

namespace {

namespace fn = redis_functions;
using redis::Call;
using redis::Reply;

std::string field_of(const CounterKey& k) { return std::string(k.metric) + "/" + std::to_string(k.window_seconds); }

// "rcpt/86400" -> metric and window; false when it is not a counter field.
bool split_field(std::string_view f, std::string& metric, std::uint32_t& window) {
  const std::size_t slash = f.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  const std::optional<std::uint32_t> w = helpers::parse_u32(f.substr(slash + 1));
  if (!w || *w == 0) return false;
  metric.assign(f.substr(0, slash));
  window = *w;
  return true;
}

std::uint64_t as_u64(const Reply& r) {
  if (r.type == Reply::Type::integer) return r.integer < 0 ? window::never : static_cast<std::uint64_t>(r.integer);
  return 0;
}

bool all_integers(const Reply& r, std::size_t from, std::size_t count) {
  if (r.type != Reply::Type::array || r.elements.size() < from + count) return false;
  for (std::size_t i = from; i < from + count; ++i)
    if (r.elements[i].type != Reply::Type::integer) return false;
  return true;
}

// What an error reply (or a reply of the wrong shape) means for the caller.
Result reply_fault(const Reply& r, std::string_view what) {
  std::string why = std::string(what) + ": ";
  if (!r.is_error()) return Result::failure(Status::error, why + "unexpected reply from Redis");
  why += r.str;
  if (r.error_code_is("QTCORRUPT")) return Result::failure(Status::corrupt, std::move(why));
  if (r.error_code_is("OOM")) return Result::failure(Status::full, std::move(why));
  if (r.str.find("unauthenticated") != std::string::npos || r.error_code_is("NOAUTH"))
    return Result::failure(Status::unavailable, why + " (no password: control/throttlestorepassword)");
  if (r.str.find("unknown command") != std::string::npos)
    return Result::failure(Status::unavailable, why + " (the Redis store needs Redis 7.0 or later: Functions)");
  for (std::string_view code : {"NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
                                "READONLY", "BUSY", "MISCONF", "MOVED", "ASK"})
    if (r.error_code_is(code)) return Result::failure(Status::unavailable, std::move(why));
  return Result::failure(Status::error, std::move(why));
}

std::string new_token() {
  static unsigned long sequence = 0;
  unsigned char rnd[6] = {};
  if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof rnd)) {
    const unsigned long t = static_cast<unsigned long>(window::clock_ms());
    for (std::size_t i = 0; i < sizeof rnd; ++i) rnd[i] = static_cast<unsigned char>(t >> (8 * i));
  }
  static const char hex[] = "0123456789abcdef";
  std::string t = std::to_string(getpid()) + "-" + std::to_string(++sequence) + "-";
  for (unsigned char c : rnd) {
    t += hex[c >> 4];
    t += hex[c & 15];
  }
  return t;
}

std::string now_arg(std::uint64_t now_ms) { return std::to_string(now_ms); }  // "0": the server's TIME

// "EXPIRY VALUE" -> expiry and value; false when not of this format.
bool split_record(const std::string& stored, std::uint64_t& expiry, std::string_view& value) {
  const std::size_t space = stored.find(' ');
  if (space == std::string::npos || space == 0 || space > 20) return false;
  std::uint64_t e = 0;
  for (std::size_t i = 0; i < space; ++i) {
    const char c = stored[i];
    if (c < '0' || c > '9') return false;
    e = e * 10 + static_cast<unsigned>(c - '0');
  }
  expiry = e;
  value = std::string_view(stored).substr(space + 1);
  return true;
}

// TIME's reply -> milliseconds.
bool time_of(const Reply& r, std::uint64_t& out) {
  if (r.type != Reply::Type::array || r.elements.size() != 2) return false;
  std::uint64_t v[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    const Reply& e = r.elements[static_cast<std::size_t>(i)];
    if (e.type != Reply::Type::string || e.str.size() > 19) return false;
    const std::optional<std::uint64_t> n = helpers::parse_unsigned<std::uint64_t>(e.str);
    if (!n) return false;
    v[i] = *n;
  }
  out = v[0] * 1000 + v[1] / 1000;
  return true;
}

}  // namespace

// The counters of one slot (one Redis: all of them) and what became of them.
struct RedisStore::Group {
  int slot = -1;
  std::vector<std::string> keys;       // distinct identity keys
  std::vector<std::size_t> counters;   // indices into the request
  std::vector<std::size_t> key_index;  // per counter: its key's index in keys (0-based)
  Call call;
  enum class Outcome : std::uint8_t { pending, accepted, refused, failed } outcome = Outcome::pending;
  std::vector<std::uint64_t> buckets;  // accepted: per counter
  std::vector<char> settled;           // accepted, after settle(): per key, whether it settled
  Refusal refusal;                     // refused: index into the request
  Result fault;                        // failed
};

RedisStore::RedisStore(RedisOptions options)
    : options_(std::move(options)), cluster_(options_.spec.kind == store_url::Kind::cluster) {}

RedisStore::~RedisStore() = default;

void RedisStore::close() noexcept {
  if (router_) router_->close();
  router_.reset();
  failure_ = Result{};
}

std::uint32_t RedisStore::hold_ms() const noexcept {
  if (options_.hold_ms != 0) return options_.hold_ms;
  return std::max<std::uint32_t>(5000, 4 * (options_.spec.connect_timeout_ms + options_.spec.timeout_ms));
}

namespace {

// PREFIX{INNER}: INNER is the hash tag, so all of it decides the slot.
std::string tagged(std::string_view prefix, std::string_view inner) {
  std::string k(prefix);
  k += '{';
  k.append(inner);
  k += '}';
  return k;
}

}  // namespace

std::string RedisStore::identity_key(std::string_view identity) { return tagged(fn::key_prefix, identity); }

std::string RedisStore::record_key(std::string_view key) { return tagged(fn::record_prefix, key); }

std::string RedisStore::describe() const {
  return router_ ? router_->describe() : store_url::describe(options_.spec);
}

Result RedisStore::guard() const {
  if (busy_) return Result::failure(Status::error, "store called from inside a record editor (its atomic step)");
  return {};
}

Result RedisStore::ready() {
  if (Result g = guard(); !g.ok()) return g;
  if (!failure_.ok()) return failure_;
  if (router_) return {};
  if (options_.spec.kind == store_url::Kind::lmdb || options_.spec.hosts.empty())
    return failure_ = Result::failure(Status::unavailable, "no Redis configured");
  std::string password;
  if (!options_.password_file.empty()) {
    if (Result r = redis_credentials::read_password(options_.password_file, password); !r.ok()) return failure_ = r;
  }
  router_ = std::make_unique<redis::Router>(redis::RouterOptions{options_.spec, std::move(password), fn::source});
  return {};
}

Result RedisStore::run(std::span<Call* const> calls) {
  if (Result r = ready(); !r.ok()) return r;
  Result r = router_->run(calls);
  if (!r.ok()) failure_ = r;
  return r;
}

// ---- charge ----------------------------------------------------------------

// Puts counter `index` of `identity` into the group of its slot (one group
// for everything outside a cluster).
void RedisStore::group(std::vector<Group>& groups, std::string_view identity, std::size_t index) const {
  std::string key = identity_key(identity);
  const int slot = cluster_ ? redis::key_slot(key) : -1;
  Group* g = nullptr;
  for (Group& x : groups)
    if (x.slot == slot) g = &x;
  if (g == nullptr) {
    groups.emplace_back();
    g = &groups.back();
    g->slot = slot;
  }
  std::size_t k = 0;
  while (k < g->keys.size() && g->keys[k] != key) ++k;
  if (k == g->keys.size()) g->keys.push_back(std::move(key));
  g->counters.push_back(index);
  g->key_index.push_back(k);
}

ChargeResult RedisStore::charge(std::span<const Limit> counters, std::uint32_t amount, std::uint64_t now_ms,
                                Receipt* receipt) {
  if (std::string bad = check_request(counters, amount); !bad.empty())
    return ChargeResult::failure(Status::error, "bad charge: " + bad);
  if (Result r = ready(); !r.ok()) return ChargeResult::failure(r.status, std::move(r.reason));
  std::vector<Group> groups;
  for (std::size_t i = 0; i < counters.size(); ++i) group(groups, counters[i].key.identity, i);
  return charge_groups(counters, amount, now_ms, groups, receipt);
}

ChargeResult RedisStore::charge_groups(std::span<const Limit> counters, std::uint32_t amount, std::uint64_t now_ms,
                                       std::span<Group> groups, Receipt* receipt) {
  ChargeResult out;
  // Several slots: reservations, settled below. One: a plain, atomic charge.
  // hold 0 outside a cluster tells the function that no reservation exists.
  const std::string token = groups.size() > 1 ? new_token() : std::string();
  const std::string hold = cluster_ ? std::to_string(hold_ms()) : "0";
  std::vector<Call*> calls;
  for (Group& g : groups) {
    std::vector<std::string>& a = g.call.args;
    a = {"FCALL", fn::name(fn::Function::charge), std::to_string(g.keys.size())};
    for (const std::string& k : g.keys) a.push_back(k);
    a.push_back(now_arg(now_ms));
    a.push_back(std::to_string(amount));
    a.push_back(token);
    a.push_back(hold);
    a.push_back(std::to_string(g.counters.size()));
    for (std::size_t j = 0; j < g.counters.size(); ++j) {
      const Limit& l = counters[g.counters[j]];
      a.push_back(std::to_string(g.key_index[j] + 1));
      a.push_back(field_of(l.key));
      a.push_back(std::to_string(l.key.window_seconds));
      a.push_back(std::to_string(l.limit));
    }
    g.call.slot = g.slot;
    calls.push_back(&g.call);
  }
  const Result transport = run(calls);

  for (Group& g : groups) {
    const Reply& r = g.call.reply;
    if (!g.call.done) {
      g.outcome = Group::Outcome::failed;
      g.fault = transport.ok() ? Result::failure(Status::unavailable, "no reply") : transport;
    } else if (all_integers(r, 0, 2) && r.elements[0].integer == 1 && all_integers(r, 2, g.counters.size())) {
      g.outcome = Group::Outcome::accepted;
      for (std::size_t j = 0; j < g.counters.size(); ++j) g.buckets.push_back(as_u64(r.elements[2 + j]));
    } else if (all_integers(r, 0, 6) && r.elements[0].integer == 0 && r.elements[2].integer >= 0 &&
               static_cast<std::size_t>(r.elements[2].integer) < g.counters.size()) {
      g.outcome = Group::Outcome::refused;
      g.refusal = Refusal{g.counters[static_cast<std::size_t>(r.elements[2].integer)], as_u64(r.elements[3]),
                          static_cast<std::uint32_t>(as_u64(r.elements[4])), as_u64(r.elements[5])};
    } else {
      g.outcome = Group::Outcome::failed;
      g.fault = reply_fault(r, "charge");
    }
  }

  bool all_accepted = true, any_failed = false;
  Result fault;
  for (Group& g : groups) {
    all_accepted = all_accepted && g.outcome == Group::Outcome::accepted;
    if (g.outcome == Group::Outcome::failed) {
      if (!any_failed) fault = g.fault;
      any_failed = true;
    }
  }

  if (groups.size() > 1) {
    // Settle the reservations: commit all, or give back those granted.
    if (options_.before_settle != nullptr) options_.before_settle();
    Result s = settle(groups, all_accepted, token);
    if (all_accepted) {
      // A reservation gone by the time it was committed (held past hold_ms
      // and given back, or reset), or a commit lost: this charge does not
      // stand. Give back what was committed; a reservation that is gone was
      // given back already, one whose commit was lost expires.
      Receipt committed;
      for (Group& g : groups)
        for (std::size_t j = 0; j < g.counters.size(); ++j)
          if (g.settled[g.key_index[j]]) committed.add(counters[g.counters[j]].key, g.buckets[j], amount);
      if (committed.entries().size() != counters.size()) {
        (void)refund(committed, now_ms);
        if (!s.ok()) return ChargeResult::failure(s.status, "commit: " + s.reason);
        return ChargeResult::failure(Status::unavailable, "a reservation was gone before it was committed "
                                                          "(held longer than " + std::to_string(hold_ms()) + " ms)");
      }
    }
  }

  if (any_failed) return ChargeResult::failure(fault.status, std::move(fault.reason));
  if (!all_accepted) {
    bool first = true;
    for (Group& g : groups) {
      if (g.outcome != Group::Outcome::refused) continue;
      const Refusal& f = g.refusal;
      if (first || f.retry_after_ms > out.refusal.retry_after_ms ||
          (f.retry_after_ms == out.refusal.retry_after_ms && f.index < out.refusal.index))
        out.refusal = f;
      first = false;
    }
    out.accepted = false;
    return out;
  }
  out.accepted = true;
  if (receipt != nullptr) {
    for (Group& g : groups)
      for (std::size_t j = 0; j < g.counters.size(); ++j)
        receipt->add(counters[g.counters[j]].key, g.buckets[j], amount);
  }
  return out;
}

Result RedisStore::settle(std::span<Group> groups, bool commit, std::string_view token) {
  std::vector<Call> calls;
  calls.reserve(groups.size() * 2);
  for (Group& g : groups) {
    if (g.outcome != Group::Outcome::accepted) continue;
    // One call per key: a reservation is kept in each key it charged.
    for (const std::string& k : g.keys) {
      calls.emplace_back();
      calls.back().slot = g.slot;
      calls.back().args = {"FCALL", fn::name(fn::Function::settle), "1", k, std::string(token), commit ? "1" : "0"};
    }
  }
  std::vector<Call*> ptrs;
  for (Call& c : calls) ptrs.push_back(&c);
  // Straight to the router, past a remembered fault: these nodes have just
  // answered, and a reservation given back now frees its budget at once
  // rather than after hold_ms.
  Result r = ptrs.empty() ? Result{} : router_->run(ptrs);
  std::size_t at = 0;
  for (Group& g : groups) {
    if (g.outcome != Group::Outcome::accepted) continue;
    g.settled.clear();
    for (std::size_t k = 0; k < g.keys.size(); ++k, ++at)
      g.settled.push_back(calls[at].done && calls[at].reply.type == Reply::Type::integer &&
                          calls[at].reply.integer == 1);
  }
  return r;
}

// ---- refund ----------------------------------------------------------------

Result RedisStore::refund(Receipt& receipt, std::uint64_t /*now_ms*/) {
  if (Result g = guard(); !g.ok()) return g;
  if (receipt.empty()) return {};
  for (const Receipt::Entry& e : receipt.entries()) {
    if (std::string bad = check_key(CounterKey{e.identity, e.metric, e.window_seconds}); !bad.empty())
      return Result::failure(Status::error, "bad refund: " + bad);
  }
  std::vector<Group> groups;
  const auto& entries = receipt.entries();
  for (std::size_t i = 0; i < entries.size(); ++i) group(groups, entries[i].identity, i);
  std::vector<Call*> calls;
  for (Group& g : groups) {
    std::vector<std::string>& a = g.call.args;
    a = {"FCALL", fn::name(fn::Function::refund), std::to_string(g.keys.size())};
    for (const std::string& k : g.keys) a.push_back(k);
    a.push_back(std::to_string(g.counters.size()));
    for (std::size_t j = 0; j < g.counters.size(); ++j) {
      const Receipt::Entry& e = entries[g.counters[j]];
      a.push_back(std::to_string(g.key_index[j] + 1));
      a.push_back(field_of(CounterKey{e.identity, e.metric, e.window_seconds}));
      a.push_back(std::to_string(e.bucket));
      a.push_back(std::to_string(e.amount));
    }
    g.call.slot = g.slot;
    calls.push_back(&g.call);
  }
  if (Result r = run(calls); !r.ok()) return r;
  for (Group& g : groups)
    if (g.call.reply.type != Reply::Type::integer) return reply_fault(g.call.reply, "refund");
  receipt.clear();
  return {};
}

// ---- reading back ----------------------------------------------------------

Result RedisStore::usage(std::string_view identity, std::uint64_t now_ms, std::vector<CounterUsage>& out) {
  out.clear();
  if (std::string bad = check_key(CounterKey{identity, "x", 1}); !bad.empty())
    return Result::failure(Status::error, "bad identity: " + bad);
  const std::string key = identity_key(identity);
  Call c;
  c.slot = cluster_ ? redis::key_slot(key) : -1;
  c.args = {"FCALL", fn::name(fn::Function::usage), "1", key, now_arg(now_ms)};
  if (Result r = run(c); !r.ok()) return r;
  const Reply& r = c.reply;
  if (r.type != Reply::Type::array || r.elements.empty() || (r.elements.size() - 1) % 4 != 0)
    return reply_fault(r, "usage");
  for (std::size_t i = 1; i < r.elements.size(); i += 4) {
    CounterUsage u;
    if (r.elements[i].type != Reply::Type::string || !all_integers(r, i + 1, 3) ||
        !split_field(r.elements[i].str, u.metric, u.window_seconds)) {
      out.clear();
      return Result::failure(Status::corrupt, "usage: a counter of " + key + " is not of this format");
    }
    u.identity.assign(identity);
    u.used = as_u64(r.elements[i + 1]);
    u.limit = static_cast<std::uint32_t>(as_u64(r.elements[i + 2]));
    u.next_release_ms = as_u64(r.elements[i + 3]);
    out.push_back(std::move(u));
  }
  std::sort(out.begin(), out.end(), [](const CounterUsage& a, const CounterUsage& b) {
    return a.metric != b.metric ? a.metric < b.metric : a.window_seconds < b.window_seconds;
  });
  return {};
}

Result RedisStore::scan(std::string_view match, FunctionRef<Result(const std::vector<std::string>& keys)> batch) {
  if (Result r = ready(); !r.ok()) return r;
  std::vector<store_url::HostPort> nodes;
  if (Result r = router_->primaries(nodes); !r.ok()) return failure_ = r;
  for (const store_url::HostPort& node : nodes) {
    std::string cursor = "0";
    do {
      Call c;
      c.at = node;
      c.args = {"SCAN", cursor, "MATCH", std::string(match), "COUNT", "512"};
      if (Result r = run(c); !r.ok()) return r;
      const Reply& r = c.reply;
      if (r.type != Reply::Type::array || r.elements.size() != 2 || r.elements[0].type != Reply::Type::string ||
          r.elements[1].type != Reply::Type::array)
        return reply_fault(r, "scan");
      cursor = r.elements[0].str;
      std::vector<std::string> keys;
      for (const Reply& k : r.elements[1].elements)
        if (k.type == Reply::Type::string) keys.push_back(k.str);
      if (!keys.empty()) {
        if (Result b = batch(keys); !b.ok()) return b;
      }
    } while (cursor != "0");
  }
  return {};
}

namespace {

// "qt1:{IDENTITY}" -> IDENTITY
std::string_view identity_of_key(std::string_view key) {
  key.remove_prefix(std::min(key.size(), fn::key_prefix.size() + 1));
  if (!key.empty()) key.remove_suffix(1);
  return key;
}

}  // namespace

Result RedisStore::top(std::size_t n, std::string_view metric, std::uint64_t now_ms, std::vector<CounterUsage>& out) {
  out.clear();
  if (n == 0) return {};
  std::string match(fn::key_prefix);
  match += "{*";
  Result r = scan(match, [&](const std::vector<std::string>& keys) -> Result {
    std::vector<CounterUsage> one;
    for (const std::string& k : keys) {
      if (Result u = usage(identity_of_key(k), now_ms, one); !u.ok()) return u;
      for (CounterUsage& c : one) {
        if ((!metric.empty() && c.metric != metric) || c.used == 0) continue;
        out.push_back(std::move(c));
      }
      trim_top(out, n, false);
    }
    return {};
  });
  if (!r.ok()) out.clear();
  trim_top(out, n, true);
  return r;
}

Result RedisStore::reset(std::string_view identity, std::uint64_t /*now_ms*/, std::size_t* removed) {
  if (removed != nullptr) *removed = 0;
  if (std::string bad = check_key(CounterKey{identity, "x", 1}); !bad.empty())
    return Result::failure(Status::error, "bad identity: " + bad);
  const std::string key = identity_key(identity);
  Call c;
  c.slot = cluster_ ? redis::key_slot(key) : -1;
  c.args = {"FCALL", fn::name(fn::Function::reset), "1", key};
  if (Result r = run(c); !r.ok()) return r;
  if (c.reply.type != Reply::Type::integer) return reply_fault(c.reply, "reset");
  if (removed != nullptr) *removed = static_cast<std::size_t>(as_u64(c.reply));
  return {};
}

Result RedisStore::expire(std::uint64_t now_ms, std::size_t max, std::size_t* removed) {
  std::size_t total = 0;
  if (removed != nullptr) *removed = 0;
  if (max == 0) return {};
  std::string match(fn::key_prefix);
  match += "*";
  Result r = scan(match, [&](const std::vector<std::string>& keys) -> Result {
    if (total >= max) return {};
    std::vector<Call> calls(keys.size());
    std::vector<Call*> ptrs;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      calls[i].slot = cluster_ ? redis::key_slot(keys[i]) : -1;
      calls[i].args = {"FCALL", fn::name(fn::Function::expire), "1", keys[i], now_arg(now_ms)};
      ptrs.push_back(&calls[i]);
    }
    if (Result x = run(ptrs); !x.ok()) return x;
    for (Call& c : calls) {
      if (c.reply.type != Reply::Type::integer) return reply_fault(c.reply, "expire");
      total += static_cast<std::size_t>(as_u64(c.reply));
    }
    return {};
  });
  if (removed != nullptr) *removed = total;
  return r;
}

// ---- records ---------------------------------------------------------------

Result RedisStore::read_record(std::string_view key, std::uint64_t now_ms, std::optional<std::string>& out) {
  out.reset();
  if (key.empty() || key.size() > max_record_key) return Result::failure(Status::error, "bad record key");
  const std::string rkey = record_key(key);
  const int slot = cluster_ ? redis::key_slot(rkey) : -1;
  Call get, time;
  get.slot = time.slot = slot;
  get.args = {"GET", rkey};
  time.args = {"TIME"};
  Call* calls[] = {&get, &time};
  if (Result r = run(std::span<Call* const>(calls, now_ms == store_clock ? 2 : 1)); !r.ok()) return r;
  if (now_ms == store_clock && !time_of(time.reply, now_ms)) return reply_fault(time.reply, "read record: TIME");
  if (get.reply.type == Reply::Type::nil) return {};
  if (get.reply.type != Reply::Type::string) return reply_fault(get.reply, "read record");
  std::uint64_t expiry = 0;
  std::string_view value;
  if (!split_record(get.reply.str, expiry, value))
    return Result::failure(Status::corrupt, "record " + rkey + " is not of this format");
  if (expiry > now_ms) out.emplace(value);
  return {};
}

Result RedisStore::update_record(std::string_view key, std::uint64_t now_ms, RecordEditor edit) {
  if (key.empty() || key.size() > max_record_key) return Result::failure(Status::error, "bad record key");
  const std::string rkey = record_key(key);
  const int slot = cluster_ ? redis::key_slot(rkey) : -1;
  for (int attempt = 0; attempt < 64; ++attempt) {
    Call watch, get, time;
    watch.slot = get.slot = time.slot = slot;
    watch.args = {"WATCH", rkey};
    get.args = {"GET", rkey};
    time.args = {"TIME"};
    Call* first[] = {&watch, &get, &time};
    if (Result r = run(first); !r.ok()) return r;
    if (watch.reply.is_error()) return reply_fault(watch.reply, "update record: WATCH");
    std::uint64_t now = now_ms;
    if (now == store_clock && !time_of(time.reply, now)) return reply_fault(time.reply, "update record: TIME");
    std::optional<std::string_view> current;
    std::uint64_t expiry = 0;
    std::string_view value;
    const bool found = get.reply.type == Reply::Type::string;
    if (found) {
      if (!split_record(get.reply.str, expiry, value)) {
        Call unwatch;
        unwatch.slot = slot;
        unwatch.args = {"UNWATCH"};
        (void)run(unwatch);
        return Result::failure(Status::corrupt, "record " + rkey + " is not of this format");
      }
      if (expiry > now) current = value;
    } else if (get.reply.type != Reply::Type::nil) {
      return reply_fault(get.reply, "update record");
    }
    busy_ = true;
    RecordEdit e = edit(current, now);
    busy_ = false;
    Call multi, write, exec;
    multi.slot = write.slot = exec.slot = slot;
    multi.args = {"MULTI"};
    exec.args = {"EXEC"};
    if (e.op == RecordEdit::Op::keep || (e.op == RecordEdit::Op::put && e.value.size() > max_record_value) ||
        ((e.op == RecordEdit::Op::erase || e.expires_at_ms <= now) && !found)) {
      Call unwatch;
      unwatch.slot = slot;
      unwatch.args = {"UNWATCH"};
      if (Result r = run(unwatch); !r.ok()) return r;
      if (e.op == RecordEdit::Op::put && e.value.size() > max_record_value)
        return Result::failure(Status::error, "record larger than " + std::to_string(max_record_value) + " bytes");
      return {};
    }
    if (e.op == RecordEdit::Op::erase || e.expires_at_ms <= now) {
      write.args = {"DEL", rkey};
    } else {
      std::string stored = std::to_string(e.expires_at_ms);
      stored += ' ';
      stored += e.value;
      write.args = {"SET", rkey, std::move(stored), "PX", std::to_string(e.expires_at_ms - now)};
    }
    Call* second[] = {&multi, &write, &exec};
    if (Result r = run(second); !r.ok()) return r;
    if (exec.reply.type == Reply::Type::nil) continue;  // changed meanwhile: again
    if (exec.reply.type != Reply::Type::array || exec.reply.elements.size() != 1)
      return reply_fault(exec.reply.is_error() ? exec.reply : write.reply, "update record");
    if (exec.reply.elements[0].is_error()) return reply_fault(exec.reply.elements[0], "update record");
    return {};
  }
  return Result::failure(Status::unavailable, "record " + rkey + " kept changing: 64 attempts");
}

Result RedisStore::clock(std::uint64_t& now_ms) {
  Call time;
  time.args = {"TIME"};
  if (Result r = run(time); !r.ok()) return r;
  if (!time_of(time.reply, now_ms)) return reply_fault(time.reply, "TIME");
  return {};
}

// ---- stats -----------------------------------------------------------------

Result RedisStore::stats(Stats& out) {
  out = Stats{};
  std::string match(fn::key_prefix);
  match += "*";
  Result r = scan(match, [&](const std::vector<std::string>& keys) -> Result {
    std::vector<CounterUsage> one;
    for (const std::string& k : keys) {
      if (std::string_view(k).substr(0, fn::record_prefix.size()) == fn::record_prefix) {
        ++out.records;
        continue;
      }
      if (Result u = usage(identity_of_key(k), store_clock, one); !u.ok()) return u;
      out.counters += one.size();
    }
    return {};
  });
  if (!r.ok()) return r;
  std::vector<store_url::HostPort> nodes;
  if (Result p = router_->primaries(nodes); !p.ok()) return p;
  bool unbounded = false;
  for (const store_url::HostPort& node : nodes) {
    Call info;
    info.at = node;
    info.args = {"INFO", "memory"};
    if (Result x = run(info); !x.ok()) return x;
    if (info.reply.type != Reply::Type::string) return reply_fault(info.reply, "stats");
    auto field = [&](std::string_view name) -> std::uint64_t {
      const std::string& s = info.reply.str;
      std::size_t p = s.find("\n" + std::string(name) + ":");
      if (p == std::string::npos) return 0;
      p += name.size() + 2;
      std::uint64_t v = 0;
      while (p < s.size() && s[p] >= '0' && s[p] <= '9') v = v * 10 + static_cast<unsigned>(s[p++] - '0');
      return v;
    };
    out.bytes_used += field("used_memory");
    const std::uint64_t max = field("maxmemory");
    if (max == 0) unbounded = true;
    out.bytes_max += max;
  }
  if (unbounded) out.bytes_max = 0;
  return {};
}

}  // namespace store
