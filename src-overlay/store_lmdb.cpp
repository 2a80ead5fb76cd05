// store_lmdb.cpp: the LMDB store (store_lmdb.h): the Store operations.
//
// What the map holds: store_lmdb_format.h; transactions and the writer lock:
// store_lmdb_txn.cpp; generation directories: store_lmdb_generation.cpp.

#include "store_lmdb.h"

#include <algorithm>
#include <cstring>

#include <lmdb.h>

#include "store_lmdb_format.h"
#include "store_lmdb_generation.h"
#include "store_lmdb_txn.h"
#include "window.h"

namespace store {

using namespace lmdb;

namespace {

// "C" identity NUL metric NUL be32 -> its parts.
bool parse_counter_key(std::string_view raw, CounterKey& out) noexcept {
  if (raw.size() < 1 + 1 + 1 + 1 + 1 + 4 || raw[0] != prefix_counter) return false;
  const std::string_view body = raw.substr(1, raw.size() - 1 - 4);
  const std::size_t nul = body.find('\0');
  if (nul == std::string_view::npos || body.empty() || body.back() != '\0') return false;
  out.identity = body.substr(0, nul);
  out.metric = body.substr(nul + 1, body.size() - nul - 2);
  const auto* b = reinterpret_cast<const unsigned char*>(raw.data() + raw.size() - 4);
  out.window_seconds = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | b[3];
  return !out.identity.empty() && !out.metric.empty() && out.window_seconds != 0;
}

std::uint64_t record_expiry(const MDB_val& v) noexcept {
  std::uint64_t e;
  std::memcpy(&e, v.mv_data, sizeof e);
  return e;
}

}  // namespace

LmdbStore::LmdbStore(LmdbOptions options) : options_(std::move(options)) {}

LmdbStore::~LmdbStore() { close(); }

std::string LmdbStore::generation_path(const LmdbOptions& options) {
  return options.directory + "/" + generation_name(options);
}

namespace {

// Reads the counter at `k` into `out`; 0, MDB_NOTFOUND, rc_corrupt or an LMDB code.
int get_counter(MDB_txn* txn, unsigned dbi, Key& k, std::uint32_t window_seconds, StoredCounter& out,
                std::string& corrupt_reason) {
  MDB_val kv = k.val(), v;
  const int rc = mdb_get(txn, dbi, &kv, &v);
  if (rc != 0) return rc;
  if (v.mv_size != sizeof out) {
    corrupt_reason = "counter record of " + std::to_string(v.mv_size) + " bytes";
    return rc_corrupt;
  }
  std::memcpy(&out, v.mv_data, sizeof out);
  if (out.window_seconds != window_seconds) {
    corrupt_reason = "counter record for another window";
    return rc_corrupt;
  }
  return 0;
}

// Writes a counter and moves its expiry index entry when its idle time
// changed. old_idle == 0: it had none.
int put_counter(MDB_txn* txn, unsigned dbi, Key& k, const StoredCounter& c, std::uint64_t width,
                std::uint64_t old_idle) {
  MDB_val kv = k.val(), v{sizeof c, const_cast<StoredCounter*>(&c)};
  int rc = mdb_put(txn, dbi, &kv, &v, 0);
  if (rc != 0) return rc;
  const std::uint64_t idle = window::idle_at_ms(c.counter, width);
  if (idle == old_idle) return 0;
  Key ik;
  if (old_idle != 0) {
    index_key(ik, old_idle, k.view());
    MDB_val iv = ik.val();
    rc = mdb_del(txn, dbi, &iv, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
  }
  index_key(ik, idle, k.view());
  MDB_val iv = ik.val(), empty{0, nullptr};
  return mdb_put(txn, dbi, &iv, &empty, 0);
}

}  // namespace

ChargeResult LmdbStore::charge(std::span<const Limit> counters, std::uint32_t amount, std::uint64_t now_ms,
                               Receipt* receipt) {
  if (std::string bad = check_request(counters, amount); !bad.empty())
    return ChargeResult::failure(Status::error, "bad charge: " + bad);
  ChargeResult out;
  struct Work {
    Key key;
    StoredCounter rec;
    std::uint64_t width;
    std::uint64_t old_idle;
    std::uint64_t bucket;
  };
  // Only the first n are used: left uninitialised (no 8 KiB of zeroing per decision).
  union Slots {
    Slots() {}
    Work at[max_counters];
  } slots;
  Work* const work = slots.at;
  bool refused = false;
  Refusal refusal;
  const std::size_t n = counters.size();

  Result r = write(now_ms, [&](MDB_txn* txn) -> int {
    refused = false;
    for (std::size_t i = 0; i < n; ++i) {
      const Limit& l = counters[i];
      Work& w = work[i];
      counter_key(w.key, l.key);
      w.width = window::bucket_ms(l.key.window_seconds);
      int rc = get_counter(txn, dbi_, w.key, l.key.window_seconds, w.rec, corrupt_reason_);
      if (rc == MDB_NOTFOUND) {
        w.rec = StoredCounter{l.key.window_seconds, 0, {}};
        w.old_idle = 0;
      } else if (rc != 0) {
        return rc;
      } else {
        w.old_idle = window::idle_at_ms(w.rec.counter, w.width);
      }
      w.bucket = window::align(w.rec.counter, w.width, now_ms);
      const window::Room room = window::room(w.rec.counter, w.width, now_ms, l.limit, amount);
      if (!room.fits && (!refused || room.retry_after_ms > refusal.retry_after_ms)) {
        refused = true;
        refusal = Refusal{i, room.used, l.limit, room.retry_after_ms};
      }
    }
    if (refused) return rc_abort;
    std::size_t new_keys = 0;
    for (std::size_t i = 0; i < n; ++i) new_keys += work[i].old_idle == 0 ? 2 : 0;  // counter + index
    if (new_keys != 0) {
      if (int rc = make_room(txn, now_ms, new_keys); rc != 0) return rc;
    }
    for (std::size_t i = 0; i < n; ++i) {
      Work& w = work[i];
      window::charge(w.rec.counter, amount);
      w.rec.limit = counters[i].limit;
      if (int rc = put_counter(txn, dbi_, w.key, w.rec, w.width, w.old_idle); rc != 0) return rc;
    }
    return 0;
  });
  if (!r.ok()) return ChargeResult::failure(r.status, std::move(r.reason));
  out.accepted = !refused;
  if (refused) {
    out.refusal = refusal;
  } else if (receipt != nullptr) {
    for (std::size_t i = 0; i < n; ++i) receipt->add(counters[i].key, work[i].bucket, amount);
  }
  return out;
}

Result LmdbStore::refund(Receipt& receipt, std::uint64_t now_ms) {
  if (receipt.empty()) return {};
  for (const Receipt::Entry& e : receipt.entries()) {
    if (std::string bad = check_key(CounterKey{e.identity, e.metric, e.window_seconds}); !bad.empty())
      return Result::failure(Status::error, "bad refund: " + bad);
  }
  Result r = write(now_ms, [&](MDB_txn* txn) -> int {
    bool changed = false;
    for (const Receipt::Entry& e : receipt.entries()) {
      Key k;
      counter_key(k, CounterKey{e.identity, e.metric, e.window_seconds});
      StoredCounter c;
      int rc = get_counter(txn, dbi_, k, e.window_seconds, c, corrupt_reason_);
      if (rc == MDB_NOTFOUND) continue;  // expired or reset meanwhile
      if (rc != 0) return rc;
      // Not aligned: the bucket is matched by number, and the idle time
      // (hence the index entry) stays as it is.
      if (window::refund(c.counter, e.bucket, e.amount) == 0) continue;
      MDB_val kv = k.val(), v{sizeof c, &c};
      if ((rc = mdb_put(txn, dbi_, &kv, &v, 0)) != 0) return rc;
      changed = true;
    }
    return changed ? 0 : rc_abort;
  });
  if (r.ok()) receipt.clear();
  return r;
}

namespace {

void fill_usage(const CounterKey& key, const StoredCounter& stored, std::uint64_t now_ms, CounterUsage& u) {
  window::Counter c = stored.counter;
  const std::uint64_t width = window::bucket_ms(key.window_seconds);
  window::align(c, width, now_ms);
  u.identity.assign(key.identity);
  u.metric.assign(key.metric);
  u.window_seconds = key.window_seconds;
  u.used = window::used(c);
  u.limit = stored.limit;
  u.next_release_ms = window::next_release_ms(c, width, now_ms);
}

// Decodes one counter entry that scan() found; rc_corrupt when it is bad.
int decode_counter(std::string_view key, std::string_view value, CounterKey& k, StoredCounter& c,
                   std::string& corrupt_reason) {
  if (!parse_counter_key(key, k) || value.size() != sizeof c) {
    corrupt_reason = "bad counter entry";
    return rc_corrupt;
  }
  std::memcpy(&c, value.data(), sizeof c);
  return 0;
}

std::string identity_prefix(std::string_view identity) {
  std::string p(1, prefix_counter);
  p.append(identity);
  p.push_back('\0');
  return p;
}

}  // namespace

Result LmdbStore::usage(std::string_view identity, std::uint64_t now_ms, std::vector<CounterUsage>& out) {
  out.clear();
  now_ms = resolve_clock(now_ms);
  if (std::string bad = check_key(CounterKey{identity, "x", 1}); !bad.empty())
    return Result::failure(Status::error, "bad identity: " + bad);
  const std::string prefix = identity_prefix(identity);
  Result r = scan(prefix, [&](std::string_view k, std::string_view v) -> int {
    CounterKey key;
    StoredCounter c;
    if (int rc = decode_counter(k, v, key, c, corrupt_reason_); rc != 0) return rc;
    out.emplace_back();
    fill_usage(key, c, now_ms, out.back());
    return 0;
  });
  if (!r.ok()) out.clear();
  return r;
}

Result LmdbStore::top(std::size_t n, std::string_view metric, std::uint64_t now_ms, std::vector<CounterUsage>& out) {
  out.clear();
  now_ms = resolve_clock(now_ms);
  if (n == 0) return {};
  Result r = scan(std::string_view(&prefix_counter, 1), [&](std::string_view k, std::string_view v) -> int {
    CounterKey key;
    StoredCounter c;
    if (int rc = decode_counter(k, v, key, c, corrupt_reason_); rc != 0) return rc;
    if (!metric.empty() && key.metric != metric) return 0;
    CounterUsage u;
    fill_usage(key, c, now_ms, u);
    if (u.used == 0) return 0;
    out.push_back(std::move(u));
    trim_top(out, n, false);
    return 0;
  });
  if (!r.ok()) out.clear();
  trim_top(out, n, true);
  return r;
}

Result LmdbStore::reset(std::string_view identity, std::uint64_t now_ms, std::size_t* removed) {
  if (removed != nullptr) *removed = 0;
  if (std::string bad = check_key(CounterKey{identity, "x", 1}); !bad.empty())
    return Result::failure(Status::error, "bad identity: " + bad);
  const std::string prefix = identity_prefix(identity);
  std::size_t count = 0;
  Result r = write(now_ms, [&](MDB_txn* txn) -> int {
    count = 0;
    // Collect first, then delete: no cursor walks over what it deletes. One
    // identity has a few counters: one transaction.
    std::vector<std::pair<std::string, std::uint64_t>> doomed;  // key, idle time
    MDB_cursor* cur;
    int rc = mdb_cursor_open(txn, dbi_, &cur);
    if (rc != 0) return rc;
    MDB_val k{prefix.size(), const_cast<char*>(prefix.data())}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && starts_with(k, prefix);
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      CounterKey key;
      StoredCounter c;
      if ((rc = decode_counter(as_view(k), as_view(v), key, c, corrupt_reason_)) != 0) break;
      doomed.emplace_back(std::string(as_view(k)),
                          window::idle_at_ms(c.counter, window::bucket_ms(key.window_seconds)));
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    for (const auto& [key, idle] : doomed) {
      MDB_val kv{key.size(), const_cast<char*>(key.data())};
      if ((rc = mdb_del(txn, dbi_, &kv, nullptr)) != 0 && rc != MDB_NOTFOUND) return rc;
      Key ik;
      index_key(ik, idle, key);
      MDB_val iv = ik.val();
      if ((rc = mdb_del(txn, dbi_, &iv, nullptr)) != 0 && rc != MDB_NOTFOUND) return rc;
      ++count;
    }
    return count != 0 ? 0 : rc_abort;
  });
  if (r.ok() && removed != nullptr) *removed = count;
  return r;
}

Result LmdbStore::expire(std::uint64_t now_ms, std::size_t max, std::size_t* removed) {
  std::size_t total = 0;
  now_ms = resolve_clock(now_ms);
  Result r;
  // Small transactions: a long one would hold the writer lock for long.
  while (total < max) {
    std::size_t gone = 0;
    const std::size_t chunk = std::min<std::size_t>(max - total, 512);
    r = write(now_ms, [&](MDB_txn* txn) -> int {
      gone = 0;
      const int rc = expire_some(txn, now_ms, chunk, &gone);
      return rc != 0 ? rc : (gone != 0 ? 0 : rc_abort);
    });
    if (!r.ok()) break;
    // write() may have expired a few more on its own; those are not counted.
    total += gone;
    if (gone < chunk) break;
  }
  if (removed != nullptr) *removed = total;
  return r;
}

Result LmdbStore::update_record(std::string_view key, std::uint64_t now_ms, RecordEditor edit) {
  if (key.empty() || key.size() > max_record_key) return Result::failure(Status::error, "bad record key");
  Key k;
  record_key(k, key);
  bool too_big = false;
  Result r = write(now_ms, [&](MDB_txn* txn) -> int {
    too_big = false;
    MDB_val kv = k.val(), v;
    int rc = mdb_get(txn, dbi_, &kv, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    const bool found = rc == 0;
    std::uint64_t old_expiry = 0;
    std::optional<std::string_view> current;
    if (found) {
      if (v.mv_size < 8) {
        corrupt_reason_ = "record of " + std::to_string(v.mv_size) + " bytes";
        return rc_corrupt;
      }
      old_expiry = record_expiry(v);
      if (old_expiry > now_ms) current = as_view(v).substr(8);
    }
    RecordEdit e = edit(current, now_ms);
    Key ik;
    if (e.op == RecordEdit::Op::keep) return rc_abort;
    if (e.op == RecordEdit::Op::put && e.value.size() > max_record_value) {
      too_big = true;
      return rc_abort;
    }
    if (e.op == RecordEdit::Op::erase || e.expires_at_ms <= now_ms) {
      if (!found) return rc_abort;  // nothing there
      kv = k.val();
      if ((rc = mdb_del(txn, dbi_, &kv, nullptr)) != 0 && rc != MDB_NOTFOUND) return rc;
      index_key(ik, old_expiry, k.view());
      MDB_val iv = ik.val();
      if ((rc = mdb_del(txn, dbi_, &iv, nullptr)) != 0 && rc != MDB_NOTFOUND) return rc;
      return 0;
    }
    if (!found) {
      if ((rc = make_room(txn, now_ms, 2)) != 0) return rc;
    }
    std::string value(8 + e.value.size(), '\0');
    std::memcpy(value.data(), &e.expires_at_ms, 8);
    std::memcpy(value.data() + 8, e.value.data(), e.value.size());
    kv = k.val();
    MDB_val nv{value.size(), value.data()};
    if ((rc = mdb_put(txn, dbi_, &kv, &nv, 0)) != 0) return rc;
    if (old_expiry == e.expires_at_ms) return 0;
    if (old_expiry != 0) {
      index_key(ik, old_expiry, k.view());
      MDB_val iv = ik.val();
      if ((rc = mdb_del(txn, dbi_, &iv, nullptr)) != 0 && rc != MDB_NOTFOUND) return rc;
    }
    index_key(ik, e.expires_at_ms, k.view());
    MDB_val iv = ik.val(), empty{0, nullptr};
    return mdb_put(txn, dbi_, &iv, &empty, 0);
  });
  if (r.ok() && too_big) return Result::failure(Status::error, "record larger than " + std::to_string(max_record_value) + " bytes");
  return r;
}

Result LmdbStore::read_record(std::string_view key, std::uint64_t now_ms, std::optional<std::string>& out) {
  out.reset();
  now_ms = resolve_clock(now_ms);
  if (key.empty() || key.size() > max_record_key) return Result::failure(Status::error, "bad record key");
  Key k;
  record_key(k, key);
  return read([&](MDB_txn* txn) -> int {
    MDB_val kv = k.val(), v;
    const int rc = mdb_get(txn, dbi_, &kv, &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc != 0) return rc;
    if (v.mv_size < 8) {
      corrupt_reason_ = "record of " + std::to_string(v.mv_size) + " bytes";
      return rc_corrupt;
    }
    if (record_expiry(v) > now_ms) out.emplace(as_view(v).substr(8));
    return 0;
  });
}

std::string LmdbStore::describe() const { return generation_path(options_); }

Result LmdbStore::stats(Stats& out) {
  out = Stats{};
  Result r = read([&](MDB_txn* txn) -> int {
    MDB_envinfo info;
    MDB_stat st;
    int rc = mdb_env_info(env_, &info);
    if (rc == 0) rc = mdb_env_stat(env_, &st);
    if (rc == 0) rc = data_bytes(txn, dbi_, out.bytes_used);
    if (rc != 0) return rc;
    out.bytes_max = capacity();
    out.file_bytes = (static_cast<std::uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
    return 0;
  });
  if (!r.ok()) return r;
  r = scan(std::string_view(&prefix_counter, 1), [&](std::string_view, std::string_view) {
    ++out.counters;
    return 0;
  });
  if (!r.ok()) return r;
  return scan(std::string_view(&prefix_record, 1), [&](std::string_view, std::string_view) {
    ++out.records;
    return 0;
  });
}

Result LmdbStore::set_aside(const LmdbOptions& options, std::uint64_t now_ms, std::string* moved_to) {
  return lmdb::set_aside(options, now_ms, moved_to);
}

}  // namespace store
