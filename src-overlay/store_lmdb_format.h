// store_lmdb_format.h: what the LMDB store keeps in its map (internal to
// store_lmdb*.cpp).
//
// One unnamed LMDB database holds everything, by key prefix:
//   "M"                                    format record (Meta)
//   "C" identity NUL metric NUL be32(window) a counter (StoredCounter)
//   "R" key                                an opaque record: u64 expiry + value
//   "X" be64(idle_at_ms) <C... or R... key> expiry index, empty value
// Every counter and record has exactly one index entry, keyed by the time
// it becomes idle, so expiry takes the oldest index entries first and never
// scans. Values are host byte order: LMDB files are not portable either.

#ifndef QT_STORE_LMDB_FORMAT_H
#define QT_STORE_LMDB_FORMAT_H

#include <cstdint>
#include <cstring>
#include <string_view>

#include <lmdb.h>

#include "store.h"
#include "window.h"

namespace store::lmdb {

// Transaction bodies return an LMDB/errno code, 0 to commit, or one of these.
constexpr int rc_abort = -1;         // nothing to write: abort, not an error
constexpr int rc_corrupt = -2;       // bad data found: corrupt_reason_ says what
constexpr int rc_meta_missing = -3;  // an empty store without its format record
constexpr int rc_capacity = -4;      // the entry cap is reached (LmdbStore::capacity())

constexpr char prefix_meta = 'M';
constexpr char prefix_counter = 'C';
constexpr char prefix_record = 'R';
constexpr char prefix_index = 'X';

struct Meta {
  char magic[16];
  std::uint32_t version;
  std::uint32_t slots;
  std::uint32_t counter_size;
  std::uint32_t byte_order;
  std::uint64_t created_ms;
};
constexpr char meta_magic[16] = "qmail-throttle";
constexpr std::uint32_t byte_order_mark = 0x01020304u;

struct StoredCounter {
  std::uint32_t window_seconds;
  std::uint32_t limit;  // of its last charge, for the admin
  window::Counter counter;
};

// Room for the longest key: 'X' + 8 + 'C' + identity + NUL + metric + NUL + 4.
constexpr std::size_t key_max = 1 + 8 + 1 + max_identity + 1 + max_metric + 1 + 4;
static_assert(key_max <= 511, "LMDB's default key size limit");

struct Key {
  char data[key_max];
  std::size_t len = 0;

  void put(char c) noexcept { data[len++] = c; }
  void put(std::string_view s) noexcept {
    std::memcpy(data + len, s.data(), s.size());
    len += s.size();
  }
  void put_be(std::uint64_t v, int bytes) noexcept {
    for (int i = bytes - 1; i >= 0; --i) data[len++] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
  std::string_view view() const noexcept { return {data, len}; }
  MDB_val val() noexcept { return MDB_val{len, data}; }
};

inline void counter_key(Key& k, const CounterKey& c) noexcept {
  k.len = 0;
  k.put(prefix_counter);
  k.put(c.identity);
  k.put('\0');
  k.put(c.metric);
  k.put('\0');
  k.put_be(c.window_seconds, 4);
}

inline void record_key(Key& k, std::string_view key) noexcept {
  k.len = 0;
  k.put(prefix_record);
  k.put(key);
}

inline void index_key(Key& k, std::uint64_t idle_at, std::string_view target) noexcept {
  k.len = 0;
  k.put(prefix_index);
  k.put_be(idle_at, 8);
  k.put(target);
}

inline std::string_view as_view(const MDB_val& v) noexcept {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

inline bool starts_with(const MDB_val& v, std::string_view prefix) noexcept {
  return as_view(v).substr(0, prefix.size()) == prefix;
}

}  // namespace store::lmdb

#endif
