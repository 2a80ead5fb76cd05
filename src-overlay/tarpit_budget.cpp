// tarpit_budget.cpp: see tarpit_budget.h.

#include "tarpit_budget.h"

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

namespace tarpit {

namespace {

int lock_byte(int fd, std::uint32_t i, short type, int cmd) noexcept {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(i);
  fl.l_len = 1;
  return fcntl(fd, cmd, &fl);
}

}  // namespace

Slot::Outcome Slot::acquire(const std::string& path, std::uint32_t budget) noexcept {
  release();
  if (budget == 0) return Outcome::spent;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    error_ = errno;
    return Outcome::fault;
  }
  for (std::uint32_t i = 0; i < budget; ++i) {
    if (lock_byte(fd, i, F_WRLCK, F_SETLK) == 0) {
      fd_ = fd;
      index_ = i;
      return Outcome::held;
    }
    if (errno != EAGAIN && errno != EACCES) {
      error_ = errno;
      ::close(fd);
      return Outcome::fault;
    }
  }
  ::close(fd);
  return Outcome::spent;
}

void Slot::release() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);  // drops the lock
  fd_ = -1;
}

}  // namespace tarpit
