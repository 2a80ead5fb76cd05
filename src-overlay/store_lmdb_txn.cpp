// store_lmdb_txn.cpp: the LMDB store's environment, writer lock and
// transactions (store_lmdb_txn.h).

#include "store_lmdb_txn.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_lmdb.h"
#include "store_lmdb_format.h"
#include "store_lmdb_generation.h"

namespace store {

namespace lmdb {

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

int data_bytes(MDB_txn* txn, unsigned dbi, std::uint64_t& out) {
  MDB_stat st;
  const int rc = mdb_stat(txn, dbi, &st);
  if (rc == 0) out = (std::uint64_t{st.ms_branch_pages} + st.ms_leaf_pages + st.ms_overflow_pages) * st.ms_psize;
  return rc;
}

}  // namespace lmdb

using namespace lmdb;

namespace {

// LMDB cannot delete anything once its map is completely full (a delete
// copies pages too), so the store stops taking new keys while a quarter of
// the map (at least 512 KiB) is still free: deletes, LMDB's free list and
// pages that readers still see always find room.
constexpr std::size_t min_map_size = std::size_t{1} << 20;
constexpr std::size_t min_headroom = std::size_t{512} << 10;

std::size_t map_size_of(const LmdbOptions& o) noexcept { return std::max(o.map_size, min_map_size); }

// Is the store file LMDB has open (env) the file `name` in directory dirfd?
bool env_file_is(MDB_env* env, int dirfd, const char* name) noexcept {
  int fd = -1;
  struct stat a, b;
  return mdb_env_get_fd(env, &fd) == 0 && fd >= 0 && fstat(fd, &a) == 0 &&
         fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

void LmdbStore::close() noexcept {
  if (env_ != nullptr) {
    mdb_env_close(env_);
    env_ = nullptr;
  }
  writer_.close();
  meta_checked_ = false;
  open_failure_ = Result{};
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
    if (Result r = open_generation(options_, gen, gfd); !r.ok()) return r;
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
  // MDB_NOSYNC: counts are soft state (a new boot starts a new generation).
  const unsigned flags = MDB_NOLOCK | MDB_NOTLS | MDB_NORDAHEAD | MDB_NOMEMINIT | MDB_NOSYNC;
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
  // twice, but with MDB_NOSYNC the second descriptor never writes, so
  // checking the first is enough. Without /proc, by name, checked the same
  // way.
  if (options_.before_env_open != nullptr) options_.before_env_open(gen_path);
  int rc = open_at(gen_path.c_str());
  if (rc == 0 && !env_file_is(env_, gfd, "data.mdb")) rc = -1;
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
    case process_lock::Outcome::recovered:  // LMDB's data is as the last commit left it
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

}  // namespace store
