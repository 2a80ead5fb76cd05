// byte_lock.h: one fcntl() record lock operation on a single byte, the
// building block of the lock-counted slots (tarpit_budget.h: classic POSIX
// locks; client_slots.h: open file description locks).

#ifndef QT_BYTE_LOCK_H
#define QT_BYTE_LOCK_H

#include <cerrno>
#include <cstdint>

#include <fcntl.h>

namespace byte_lock {

// `cmd` (F_SETLK, F_OFD_SETLK, F_OFD_SETLKW, ...) with lock `type`
// (F_RDLCK, F_WRLCK, F_UNLCK) on byte `at`. A waiting command interrupted by
// a signal is tried again. Returns fcntl()'s result (errno set on -1).
inline int lock(int fd, std::uint32_t at, short type, int cmd) noexcept {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(at);
  fl.l_len = 1;
  int r;
  do r = fcntl(fd, cmd, &fl);
  while (r < 0 && errno == EINTR && (cmd == F_SETLKW || cmd == F_OFD_SETLKW));
  return r;
}

// The errno of a lock another process holds (F_SETLK, F_OFD_SETLK).
inline bool busy(int err) noexcept { return err == EAGAIN || err == EACCES; }

}  // namespace byte_lock

#endif
