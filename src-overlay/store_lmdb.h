// store_lmdb.h: the embedded store, LMDB in a state directory.
//
//   store::LmdbStore s({.directory = "/var/qmail/throttle"});
//   s.charge(...);   // opens the store on first use
//
// Files: DIRECTORY is made by `make install` (mode 0700, owned by the user
// qmail-smtpd runs as). Inside it, one generation directory holds LMDB's
// data.mdb and our writer.lock: boot-<kernel boot id>/. Counts are kept
// without fsync (soft state), which an OS crash can leave torn, so a new
// boot starts a new generation (and removes the old ones).
// A generation is opened through a descriptor of its directory, so an admin
// who moves it aside (set_aside()) never makes a process pair one
// generation's lock with another's data.
//
// Concurrency: LMDB runs with MDB_NOLOCK; every transaction, read or write,
// and every opening of data.mdb (LMDB initialises a new, empty one) holds
// writer.lock (process_lock: robust against SIGKILL, bounded wait).
// A decision is one short write transaction; long reads (top, stats) go in
// chunks of 512 entries, so a writer waits for one chunk at most. This saves
// LMDB's lock file at every open (a third of the cost of opening, which
// qmail-smtpd pays per connection) and its per-process fcntl locks.
// LMDB's own tools (mdb_stat, mdb_dump) lock differently: use them only on a
// store nobody is using.

// Opening as root (qmail-throttlectl): every directory and file created is
// given to DIRECTORY's owner, and existing store files owned by someone else
// are given back to it, so qmail-smtpd can always open them.
//
// Size: map_size bounds the data file (sparse: it grows with use). New keys
// are taken while the data fills at most 3/4 of it (leaving at least 512 KiB:
// capacity()), so LMDB always has room to delete. Idle counters and records expire a few at a
// time during every write (no cron); at the cap a bigger expiry pass runs
// before giving up with `full`, and so does a write that hits LMDB's
// MDB_MAP_FULL regardless.

#ifndef QT_STORE_LMDB_H
#define QT_STORE_LMDB_H

#include <cstddef>
#include <cstdint>
#include <string>

#include "process_lock.h"
#include "store.h"

struct MDB_env;
struct MDB_txn;

namespace store {

struct LmdbOptions {
  std::string directory;                          // the state directory
  std::size_t map_size = std::size_t{1} << 30;    // most the data file may hold (sparse); at least 1 MiB
  std::uint32_t lock_timeout_ms = 2000;           // longest wait for the writer lock
  unsigned expire_per_write = 8;                  // idle entries dropped per write, at most
  std::string boot_id;                            // tests: instead of the kernel's boot id
  void (*before_env_open)(const std::string& generation) = nullptr;  // tests: runs holding writer.lock
};

class LmdbStore final : public Store {
 public:
  explicit LmdbStore(LmdbOptions options);
  ~LmdbStore() override;
  LmdbStore(const LmdbStore&) = delete;
  LmdbStore& operator=(const LmdbStore&) = delete;

  // Opens the store if it is not open; every operation calls it. A failure
  // is remembered and returned again without retrying until close(), except
  // a writer lock that could not be had (opening takes it too).
  Result open();
  void close() noexcept;
  bool is_open() const noexcept { return env_ != nullptr; }

  ChargeResult charge(std::span<const Limit> counters, std::uint32_t amount, std::uint64_t now_ms,
                      Receipt* receipt) override;
  Result refund(Receipt& receipt, std::uint64_t now_ms) override;
  Result usage(std::string_view identity, std::uint64_t now_ms, std::vector<CounterUsage>& out) override;
  Result top(std::size_t n, std::string_view metric, std::uint64_t now_ms, std::vector<CounterUsage>& out) override;
  Result reset(std::string_view identity, std::uint64_t now_ms, std::size_t* removed) override;
  Result expire(std::uint64_t now_ms, std::size_t max, std::size_t* removed) override;
  Result update_record(std::string_view key, std::uint64_t now_ms, RecordEditor edit) override;
  Result read_record(std::string_view key, std::uint64_t now_ms, std::optional<std::string>& out) override;
  Result stats(Stats& out) override;
  std::string describe() const override;  // the generation directory
  Result clock(std::uint64_t& now_ms) override {
    now_ms = window::clock_ms();
    return {};
  }

  // The generation directory these options use (DIRECTORY/boot-...).
  static std::string generation_path(const LmdbOptions& options);

  // Repair for the admin: renames the current generation to
  // aside-<name>-<now_ms> so the next open starts an empty store. Processes
  // that have the old one open finish with it undisturbed. *moved_to: the new
  // name (may be null).
  static Result set_aside(const LmdbOptions& options, std::uint64_t now_ms, std::string* moved_to);

  // Most bytes the store's data may fill before it takes no new keys: 3/4
  // of map_size, and at least 512 KiB less, leaving LMDB room to delete.
  std::size_t capacity() const noexcept;

  // The format of the store's records; a store of another is `corrupt`.
  static constexpr std::uint32_t format_version = 1;

 private:
  // store_lmdb_txn.cpp: the environment, the writer lock, transactions.
  Result open_env(bool& busy);  // busy: the writer lock was not to be had
  Result lock();       // open(), then take_lock()
  Result take_lock();  // writer.lock, bounded wait
  void note_map_size() noexcept;
  // now_ms: store_clock is replaced by this host's clock, read under the lock.
  Result write(std::uint64_t& now_ms, FunctionRef<int(MDB_txn*)> body);
  Result read(FunctionRef<int(MDB_txn*)> body);
  Result scan(std::string_view prefix, FunctionRef<int(std::string_view key, std::string_view value)> f);
  int check_meta(MDB_txn* txn, bool may_create);
  int expire_some(MDB_txn* txn, std::uint64_t now_ms, std::size_t max, std::size_t* removed);
  int make_room(MDB_txn* txn, std::uint64_t now_ms, std::size_t new_keys);
  Result fault(int rc, const char* what);

  LmdbOptions options_;
  MDB_env* env_ = nullptr;
  unsigned dbi_ = 0;
  std::size_t map_size_ = 0;  // what LMDB maps (note_map_size())
  bool meta_checked_ = false;
  process_lock::Lock writer_;
  Result open_failure_;        // remembered until close()
  std::string corrupt_reason_; // set by a transaction body that found bad data
};

}  // namespace store

#endif
