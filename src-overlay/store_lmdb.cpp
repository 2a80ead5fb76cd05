// store_lmdb.cpp: the LMDB store (store_lmdb.h).
//
// One unnamed LMDB database holds everything, by key prefix:
//   "M"                                    format record (Meta)
//   "C" identity NUL metric NUL be32(window) a counter (StoredCounter)
//   "R" key                                an opaque record: u64 expiry + value
//   "X" be64(idle_at_ms) <C... or R... key> expiry index, empty value
// Every counter and record has exactly one index entry, keyed by the time
// it becomes idle, so expiry takes the oldest index entries first and never
// scans. Values are host byte order: LMDB files are not portable either.

#include "store_lmdb.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include "window.h"

namespace store {

namespace {

// Transaction bodies return an LMDB/errno code, 0 to commit, or one of these.
constexpr int rc_abort = -1;         // nothing to write: abort, not an error
constexpr int rc_corrupt = -2;       // bad data found: corrupt_reason_ says what
constexpr int rc_meta_missing = -3;  // an empty store without its format record
constexpr int rc_capacity = -4;      // the entry cap is reached (see capacity())

// LMDB cannot delete anything once its map is completely full (a delete
// copies pages too), so the store stops taking new keys while a quarter of
// the map (at least 512 KiB) is still free: deletes, LMDB's free list and
// pages that readers still see always find room.
constexpr std::size_t min_map_size = std::size_t{1} << 20;
constexpr std::size_t min_headroom = std::size_t{512} << 10;

std::size_t map_size_of(const LmdbOptions& o) noexcept { return std::max(o.map_size, min_map_size); }

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

void counter_key(Key& k, const CounterKey& c) noexcept {
  k.len = 0;
  k.put(prefix_counter);
  k.put(c.identity);
  k.put('\0');
  k.put(c.metric);
  k.put('\0');
  k.put_be(c.window_seconds, 4);
}

void record_key(Key& k, std::string_view key) noexcept {
  k.len = 0;
  k.put(prefix_record);
  k.put(key);
}

void index_key(Key& k, std::uint64_t idle_at, std::string_view target) noexcept {
  k.len = 0;
  k.put(prefix_index);
  k.put_be(idle_at, 8);
  k.put(target);
}

std::string_view as_view(const MDB_val& v) noexcept { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

bool starts_with(const MDB_val& v, std::string_view prefix) noexcept {
  return as_view(v).substr(0, prefix.size()) == prefix;
}

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

std::string errno_text(int e) { return std::strerror(e); }

Status classify(int rc) noexcept {
  switch (rc) {
    case MDB_MAP_FULL:
    case rc_capacity:
    case ENOSPC:
    case EDQUOT:
      return Status::full;
    case MDB_INVALID:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_VERSION_MISMATCH:
    case MDB_PANIC:
    case MDB_BAD_TXN:
    case rc_corrupt:
      return Status::corrupt;
    case EACCES:
    case EPERM:
    case ENOENT:
    case ENOTDIR:
    case EROFS:
    case ELOOP:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
    case EBUSY:
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED:
      return Status::unavailable;
    default:
      return Status::error;
  }
}

// The kernel's id of this boot, or "" when it cannot be read.
std::string kernel_boot_id() {
  char buf[64];
  const int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
  if (fd == -1) return {};
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return {};
  std::string id(buf, static_cast<std::size_t>(n));
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

bool safe_name_part(std::string_view s) noexcept {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-')) return false;
  return true;
}

std::string generation_name(const LmdbOptions& o) {
  if (o.durable) return "durable";
  std::string id = o.boot_id.empty() ? kernel_boot_id() : o.boot_id;
  if (!safe_name_part(id)) id = "unknown";
  return "boot-" + id;
}

// Removes a generation directory of an earlier boot: its files, then itself.
void remove_generation(int dirfd, const char* name) noexcept {
  const int g = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (g == -1) return;
  DIR* d = fdopendir(g);
  if (d == nullptr) {
    ::close(g);
    return;
  }
  while (struct dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    unlinkat(g, e->d_name, 0);
  }
  closedir(d);
  unlinkat(dirfd, name, AT_REMOVEDIR);
}

// After starting the generation `keep`, nothing of this boot can use an
// older boot's generation: remove them (best effort).
void remove_stale_generations(int dirfd, const std::string& keep) noexcept {
  const int fd = dup(dirfd);
  if (fd == -1) return;
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    ::close(fd);
    return;
  }
  std::string stale[16];
  std::size_t n = 0;
  while (struct dirent* e = readdir(d)) {
    if (std::strncmp(e->d_name, "boot-", 5) == 0 && keep != e->d_name && n < 16) stale[n++] = e->d_name;
  }
  closedir(d);
  for (std::size_t i = 0; i < n; ++i) remove_generation(dirfd, stale[i].c_str());
}

constexpr const char* store_files[] = {"data.mdb", "writer.lock"};

// Is the store file LMDB has open (env) the file `name` in directory dirfd?
bool env_file_is(MDB_env* env, int dirfd, const char* name) noexcept {
  int fd = -1;
  struct stat a, b;
  return mdb_env_get_fd(env, &fd) == 0 && fd >= 0 && fstat(fd, &a) == 0 &&
         fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

LmdbStore::LmdbStore(LmdbOptions options) : options_(std::move(options)) {}

LmdbStore::~LmdbStore() { close(); }

void LmdbStore::close() noexcept {
  if (env_ != nullptr) {
    mdb_env_close(env_);
    env_ = nullptr;
  }
  writer_.close();
  meta_checked_ = false;
  open_failure_ = Result{};
}

std::string LmdbStore::generation_path(const LmdbOptions& options) {
  return options.directory + "/" + generation_name(options);
}

Result LmdbStore::open() {
  if (env_ != nullptr) return {};
  if (!open_failure_.ok()) return open_failure_;
  bool busy = false;
  Result r = open_env(busy);
  if (!r.ok()) {
    if (env_ != nullptr) {
      mdb_env_close(env_);
      env_ = nullptr;
    }
    writer_.close();
    if (!busy) open_failure_ = r;  // a busy lock is tried again next time
  }
  return r;
}

Result LmdbStore::open_env(bool& busy) {
  const std::string& dir = options_.directory;
  if (dir.empty()) return Result::failure(Status::unavailable, "no store directory configured");
  const std::string gen = generation_name(options_);
  const std::string gen_path = dir + "/" + gen;
  const bool root = geteuid() == 0;

  // Usually the generation exists and we are qmail-smtpd: one open().
  int gfd = root ? -1 : ::open(gen_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (gfd == -1) {
    if (Result r = open_generation(gen, gfd); !r.ok()) return r;
  }

  auto fail = [&](Status s, std::string why) {
    ::close(gfd);
    return Result::failure(s, std::move(why));
  };

  if (int e = writer_.open(gfd, "writer.lock", options_.lock_timeout_ms); e != 0) {
    if (e == EPROTO) return fail(Status::corrupt, gen_path + "/writer.lock: not a lock file of this format");
    return fail(e == ETIMEDOUT ? Status::unavailable : classify(e),
                "cannot open " + gen_path + "/writer.lock: " + errno_text(e));
  }

  // MDB_NOLOCK: writer.lock serialises every transaction, read or write, so
  // LMDB's lock file (and its per-process fcntl locks, its reader table) is
  // not needed.
  unsigned flags = MDB_NOLOCK | MDB_NOTLS | MDB_NORDAHEAD | MDB_NOMEMINIT;
  if (!options_.durable) flags |= MDB_NOSYNC;
  auto open_at = [&](const char* path) {
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = nullptr;
    int e = mdb_env_create(&env_);
    if (e == 0) e = mdb_env_set_mapsize(env_, map_size_of(options_));
    if (e == 0) e = mdb_env_open(env_, path, flags, 0600);
    return e;
  };

  // LMDB opens under writer.lock too. With MDB_NOLOCK nothing else orders
  // mdb_env_open against other processes, and it initialises a data file it
  // finds empty by writing both meta pages of an empty database: a process
  // that found the new store empty, then ran late, would wipe what others
  // committed meanwhile (and their format record with it).
  if (Result r = take_lock(); !r.ok()) {
    busy = true;
    return fail(r.status, std::move(r.reason));
  }

  // data.mdb must come from the directory whose writer.lock we use, even if
  // the generation is renamed meanwhile (repair). By name is cheapest; it
  // counts only when the file opened is the one in that directory, else the
  // directory descriptor is used (/proc/self/fd/N). LMDB opens the file
  // twice and the second descriptor writes only when commits are synced:
  // a durable store always goes through the directory descriptor. Without
  // /proc, by name, checked the same way.
  if (options_.before_env_open != nullptr) options_.before_env_open(gen_path);
  int rc = -1;
  if (!options_.durable) {
    rc = open_at(gen_path.c_str());
    if (rc == 0 && !env_file_is(env_, gfd, "data.mdb")) rc = -1;
  }
  if (rc != 0) {
    char via_fd[40];
    std::snprintf(via_fd, sizeof via_fd, "/proc/self/fd/%d", gfd);
    rc = open_at(via_fd);
    if (rc == ENOENT || rc == ENOTDIR) {
      rc = open_at(gen_path.c_str());
      if (rc == 0 && !env_file_is(env_, gfd, "data.mdb")) {
        writer_.unlock();
        return fail(Status::unavailable, "store " + gen_path + " was replaced while it was being opened");
      }
    }
  }
  writer_.unlock();
  if (rc != 0) return fail(classify(rc), "cannot open store " + gen_path + ": " + mdb_strerror(rc));
  ::close(gfd);
  // LMDB opens data.mdb without O_CLOEXEC: keep it from what qmail-smtpd
  // runs (qmail-queue, checkpassword). FD_CLOEXEC is the only descriptor flag.
  int data_fd = -1;
  if (mdb_env_get_fd(env_, &data_fd) == 0 && data_fd >= 0) fcntl(data_fd, F_SETFD, FD_CLOEXEC);
  note_map_size();
  return {};
}

// Opens (making it when missing) the generation directory `gen` into *gfd.
// Root (the admin tool) hands whatever it creates, and any store file owned
// by someone else, to the state directory's owner.
Result LmdbStore::open_generation(const std::string& gen, int& gfd) {
  const std::string& dir = options_.directory;
  const std::string gen_path = dir + "/" + gen;
  const int dirfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd == -1) {
    const int e = errno;
    return Result::failure(classify(e), "cannot open " + dir + ": " + errno_text(e));
  }
  const bool root = geteuid() == 0;
  struct stat dst;
  if (root && fstat(dirfd, &dst) == -1) {
    const int e = errno;
    ::close(dirfd);
    return Result::failure(classify(e), "cannot stat " + dir + ": " + errno_text(e));
  }
  bool created = false;
  if (mkdirat(dirfd, gen.c_str(), 0700) == 0) {
    created = true;
    if (root) (void)fchownat(dirfd, gen.c_str(), dst.st_uid, dst.st_gid, AT_SYMLINK_NOFOLLOW);
  } else if (errno != EEXIST) {
    const int e = errno;
    ::close(dirfd);
    return Result::failure(classify(e), "cannot create " + gen_path + ": " + errno_text(e));
  }
  if (created && !options_.durable) remove_stale_generations(dirfd, gen);

  gfd = openat(dirfd, gen.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  const int gerr = errno;
  ::close(dirfd);
  if (gfd == -1) return Result::failure(classify(gerr), "cannot open " + gen_path + ": " + errno_text(gerr));
  if (!root) return {};

  // Create the files here (LMDB would create them as root) and give every
  // one of them, and the generation directory, to the directory's owner.
  struct stat st;
  if (fstat(gfd, &st) == 0 && (st.st_uid != dst.st_uid || st.st_gid != dst.st_gid))
    (void)fchown(gfd, dst.st_uid, dst.st_gid);
  for (const char* name : store_files) {
    const int fd = openat(gfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd == -1) {
      const int e = errno;
      ::close(gfd);
      gfd = -1;
      return Result::failure(classify(e), "cannot create " + gen_path + "/" + name + ": " + errno_text(e));
    }
    if (fstat(fd, &st) == 0 && (st.st_uid != dst.st_uid || st.st_gid != dst.st_gid))
      (void)fchown(fd, dst.st_uid, dst.st_gid);
    ::close(fd);  // before LMDB opens it: closing drops a process's fcntl locks
  }
  return {};
}

Result LmdbStore::fault(int rc, const char* what) {
  const Status s = classify(rc);
  std::string reason = std::string(what) + ": ";
  if (rc == rc_corrupt) reason += corrupt_reason_;
  else if (rc == rc_capacity)
    reason += "store full: its data reached " + std::to_string(capacity() >> 10) + " KiB of the map size of " +
              std::to_string(std::max(map_size_of(options_), map_size_) >> 10) + " KiB";
  else reason += mdb_strerror(rc);
  if (rc == MDB_PANIC) {
    // LMDB says this process's environment cannot be used any more.
    mdb_env_close(env_);
    env_ = nullptr;
    writer_.close();
    meta_checked_ = false;
    open_failure_ = Result::failure(s, reason);
  }
  return Result::failure(s, std::move(reason));
}

int LmdbStore::check_meta(MDB_txn* txn, bool may_create) {
  MDB_val k{1, const_cast<char*>(&prefix_meta)}, v;
  int rc = mdb_get(txn, dbi_, &k, &v);
  if (rc == MDB_NOTFOUND) {
    MDB_stat st;
    rc = mdb_stat(txn, dbi_, &st);
    if (rc != 0) return rc;
    if (st.ms_entries != 0) {
      corrupt_reason_ = "store without a format record";
      return rc_corrupt;
    }
    if (!may_create) return rc_meta_missing;
    Meta m = {};
    std::memcpy(m.magic, meta_magic, sizeof m.magic);
    m.version = format_version;
    m.slots = window::slots;
    m.counter_size = sizeof(StoredCounter);
    m.byte_order = byte_order_mark;
    m.created_ms = window::clock_ms();
    MDB_val mv{sizeof m, &m};
    rc = mdb_put(txn, dbi_, &k, &mv, 0);
    return rc != 0 ? rc : rc_meta_missing;  // created: commit it by itself
  }
  if (rc != 0) return rc;
  Meta m;
  if (v.mv_size != sizeof m) {
    corrupt_reason_ = "format record of " + std::to_string(v.mv_size) + " bytes: not a store of this program";
    return rc_corrupt;
  }
  std::memcpy(&m, v.mv_data, sizeof m);
  if (std::memcmp(m.magic, meta_magic, sizeof m.magic) != 0) {
    corrupt_reason_ = "not a qmail-throttle store";
    return rc_corrupt;
  }
  if (m.version != format_version) {
    corrupt_reason_ = "store format " + std::to_string(m.version) + ", this program reads format " +
                      std::to_string(format_version);
    return rc_corrupt;
  }
  if (m.slots != window::slots || m.counter_size != sizeof(StoredCounter) || m.byte_order != byte_order_mark) {
    corrupt_reason_ = "store written with another record layout";
    return rc_corrupt;
  }
  meta_checked_ = true;
  return 0;
}

int LmdbStore::expire_some(MDB_txn* txn, std::uint64_t now_ms, std::size_t max, std::size_t* removed) {
  if (max == 0) return 0;
  MDB_cursor* cur;
  int rc = mdb_cursor_open(txn, dbi_, &cur);
  if (rc != 0) return rc;
  std::size_t n = 0;
  Key target;
  while (n < max) {
    MDB_val k{1, const_cast<char*>(&prefix_index)}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) {
      rc = 0;
      break;
    }
    if (rc != 0) break;
    const std::string_view ik = as_view(k);
    if (ik.empty() || ik[0] != prefix_index) break;
    if (ik.size() < 1 + 8 + 1 || ik.size() - 9 > sizeof target.data) {
      corrupt_reason_ = "bad expiry index entry";
      rc = rc_corrupt;
      break;
    }
    std::uint64_t idle_at = 0;
    for (int i = 1; i <= 8; ++i) idle_at = (idle_at << 8) | static_cast<unsigned char>(ik[i]);
    if (idle_at > now_ms) break;  // the oldest is still in use: so is everything after it
    target.len = 0;
    target.put(ik.substr(9));
    rc = mdb_cursor_del(cur, 0);
    if (rc != 0) break;
    MDB_val tk = target.val();
    rc = mdb_del(txn, dbi_, &tk, nullptr);
    if (rc == MDB_NOTFOUND) rc = 0;
    if (rc != 0) break;
    ++n;
  }
  mdb_cursor_close(cur);
  if (removed != nullptr) *removed += n;
  return rc;
}

std::size_t LmdbStore::capacity() const noexcept {
  const std::size_t map = std::max(map_size_of(options_), map_size_);
  return map - std::max(map / 4, min_headroom);
}

namespace {

// Bytes in pages that hold the store's data now (within `txn`): O(1).
int data_bytes(MDB_txn* txn, unsigned dbi, std::uint64_t& out) {
  MDB_stat st;
  const int rc = mdb_stat(txn, dbi, &st);
  if (rc == 0) out = (std::uint64_t{st.ms_branch_pages} + st.ms_leaf_pages + st.ms_overflow_pages) * st.ms_psize;
  return rc;
}

}  // namespace

int LmdbStore::make_room(MDB_txn* txn, std::uint64_t now_ms, std::size_t new_keys) {
  // A new key splits at most one leaf page (and, rarely, its parents).
  const std::uint64_t need = std::uint64_t{new_keys} * 4096;
  std::uint64_t used = 0;
  int rc = data_bytes(txn, dbi_, used);
  if (rc != 0) return rc;
  if (used + need <= capacity()) return 0;
  rc = expire_some(txn, now_ms, 64 + new_keys, nullptr);
  if (rc != 0) return rc;
  if ((rc = data_bytes(txn, dbi_, used)) != 0) return rc;
  return used + need <= capacity() ? 0 : rc_capacity;
}

// The map LMDB really uses: larger than ours when another process with a
// larger map_size grew the file.
void LmdbStore::note_map_size() noexcept {
  MDB_envinfo info;
  if (env_ != nullptr && mdb_env_info(env_, &info) == 0) map_size_ = info.me_mapsize;
}

Result LmdbStore::lock() {
  Result r = open();
  if (!r.ok()) return r;
  return take_lock();
}

Result LmdbStore::take_lock() {
  switch (writer_.lock(options_.lock_timeout_ms)) {
    case process_lock::Outcome::locked:
      return {};
    case process_lock::Outcome::recovered:
      ++lock_recoveries_;
      return {};
    case process_lock::Outcome::timed_out:
      return Result::failure(Status::unavailable, "writer lock still held after " +
                                                      std::to_string(options_.lock_timeout_ms) + " ms");
    case process_lock::Outcome::failed:
      break;
  }
  return Result::failure(Status::error, "writer lock: " + errno_text(writer_.error()));
}

Result LmdbStore::write(std::uint64_t& now_ms, FunctionRef<int(MDB_txn*)> body) {
  if (Result r = lock(); !r.ok()) return r;
  now_ms = resolve_clock(now_ms);  // under the lock: writers are ordered by their clock readings
  bool retried_full = false, retried_resize = false;
  int rc = 0;
  for (;;) {
    MDB_txn* txn = nullptr;
    rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc == MDB_MAP_RESIZED && !retried_resize) {
      // Another process grew the map (a larger map_size): adopt its size.
      retried_resize = true;
      mdb_env_set_mapsize(env_, 0);
      note_map_size();
      continue;
    }
    if (rc != 0) break;
    if (!meta_checked_) {
      if (int mrc = mdb_dbi_open(txn, nullptr, 0, &dbi_); mrc != 0) {
        rc = mrc;
      } else if ((rc = check_meta(txn, true)) == rc_meta_missing) {
        rc = mdb_txn_commit(txn);  // a new store: its format record first
        if (rc != 0) break;
        meta_checked_ = true;
        continue;
      }
    }
    if (rc == 0) rc = body(txn);
    if (rc == 0) rc = expire_some(txn, now_ms, options_.expire_per_write, nullptr);
    if (rc == 0) {
      rc = mdb_txn_commit(txn);
    } else {
      mdb_txn_abort(txn);
    }
    if (rc == MDB_MAP_FULL && !retried_full) {
      // Make room by expiring idle entries, in small transactions (deleting
      // also needs free pages), then try once more.
      retried_full = true;
      // A full map may not even have the pages a big delete needs: start
      // with small transactions, grow them as pages come free.
      std::size_t chunk = 1;
      for (int round = 0; round < 256; ++round) {
        MDB_txn* x = nullptr;
        if (mdb_txn_begin(env_, nullptr, 0, &x) != 0) break;
        std::size_t gone = 0;
        const int xrc = expire_some(x, now_ms, chunk, &gone);
        if (xrc != 0 || gone == 0) {
          mdb_txn_abort(x);
          if (xrc != MDB_MAP_FULL || chunk == 1) break;
          chunk = 1;
          continue;
        }
        if (mdb_txn_commit(x) != 0) break;  // frees x either way
        if (gone < chunk) break;            // nothing idle is left
        chunk = std::min<std::size_t>(chunk * 2, 256);
      }
      continue;
    }
    break;
  }
  writer_.unlock();
  if (rc == 0 || rc == rc_abort) return {};
  return fault(rc, "write");
}

Result LmdbStore::read(FunctionRef<int(MDB_txn*)> body) {
  // Under the writer lock too (MDB_NOLOCK): a writer must never reuse pages
  // a reader still looks at. Long reads go in chunks (scan()).
  if (Result r = lock(); !r.ok()) return r;
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc == MDB_MAP_RESIZED) {
    mdb_env_set_mapsize(env_, 0);
    note_map_size();
    rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  }
  if (rc == 0) {
    if (!meta_checked_) {
      rc = mdb_dbi_open(txn, nullptr, 0, &dbi_);
      if (rc == 0) rc = check_meta(txn, false);
      if (rc == rc_meta_missing) rc = 0;  // nothing written yet: an empty store
    }
    if (rc == 0) rc = body(txn);
    mdb_txn_abort(txn);
  }
  writer_.unlock();
  if (rc == 0 || rc == rc_abort) return {};
  return fault(rc, "read");
}

Result LmdbStore::scan(std::string_view prefix, FunctionRef<int(std::string_view key, std::string_view value)> f) {
  // At most this many entries per hold of the lock: writers wait for one
  // chunk at most, however big the store.
  constexpr std::size_t chunk = 512;
  std::string resume(prefix);
  bool first = true;
  for (;;) {
    bool done = false;
    Result r = read([&](MDB_txn* txn) -> int {
      MDB_cursor* cur;
      int rc = mdb_cursor_open(txn, dbi_, &cur);
      if (rc != 0) return rc;
      MDB_val k{resume.size(), resume.data()}, v;
      rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
      if (rc == 0 && !first && as_view(k) == resume) rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
      std::size_t n = 0;
      for (; rc == 0 && n < chunk; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), ++n) {
        if (!starts_with(k, prefix)) {
          done = true;
          break;
        }
        if ((rc = f(as_view(k), as_view(v))) != 0) break;
        resume.assign(as_view(k));
      }
      if (rc == MDB_NOTFOUND) {
        done = true;
        rc = 0;
      }
      mdb_cursor_close(cur);
      return rc;
    });
    first = false;
    if (!r.ok() || done) return r;
  }
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
  if (moved_to != nullptr) moved_to->clear();
  const std::string gen = generation_name(options);
  const int dirfd = ::open(options.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd == -1) {
    const int e = errno;
    return Result::failure(classify(e), "cannot open " + options.directory + ": " + errno_text(e));
  }
  const std::string aside = "aside-" + gen + "-" + std::to_string(resolve_clock(now_ms));
  const int rc = renameat(dirfd, gen.c_str(), dirfd, aside.c_str());
  const int e = errno;
  ::close(dirfd);
  if (rc == -1 && e == ENOENT) return {};  // nothing to set aside
  if (rc == -1) return Result::failure(classify(e), "cannot rename " + gen + ": " + errno_text(e));
  if (moved_to != nullptr) *moved_to = options.directory + "/" + aside;
  return {};
}

}  // namespace store
