// process_lock.h: a lock shared by processes, with a bounded wait, that a
// killed holder cannot leave stuck.
//
// A robust, process-shared pthread mutex in a small file that every process
// maps. When its holder dies (SIGKILL at any point), the next process to
// lock it is told so by the kernel and takes it over; waits give up after a
// timeout measured on CLOCK_MONOTONIC, so a holder that is stopped
// (SIGSTOP, a debugger) or stalled makes the others fail, not hang.
//
// The LMDB store (store_lmdb.h) runs LMDB with MDB_NOLOCK, without LMDB's
// lock file and mutexes: this lock alone orders every process's
// transactions, read or write, and its opening of the data file. A holder
// killed in a write transaction leaves nothing to repair: LMDB writes a
// transaction's pages before the meta page that makes them current.
//
// The file is created when missing (mode 0600) and initialised by the first
// process to map it, under a short flock(); creation and initialisation are
// safe against concurrent openers and against an opener that dies halfway.

#ifndef QT_PROCESS_LOCK_H
#define QT_PROCESS_LOCK_H

#include <cstdint>

namespace process_lock {

enum class Outcome : std::uint8_t {
  locked,           // we hold it
  recovered,        // we hold it; its previous holder died holding it
  timed_out,        // still held by another process after the timeout
  failed,           // anything else (errno in Lock::error(); EDEADLK: we hold it already)
};

class Lock {
 public:
  Lock() = default;
  ~Lock() { close(); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // Opens (creating when missing) the lock file `name` in the directory
  // `dirfd`. Returns 0 or an errno; EPROTO when the file is not a lock of
  // this format. `timeout_ms` bounds the wait for a concurrent initialiser.
  int open(int dirfd, const char* name, std::uint32_t timeout_ms) noexcept;
  void close() noexcept;
  bool is_open() const noexcept { return shared_ != nullptr; }

  Outcome lock(std::uint32_t timeout_ms) noexcept;
  void unlock() noexcept;

  int error() const noexcept { return error_; }

 private:
  struct Shared;
  Shared* shared_ = nullptr;
  int error_ = 0;
};

}  // namespace process_lock

#endif
