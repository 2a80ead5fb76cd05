// tarpit_budget.cpp: see tarpit_budget.h.

#include "tarpit_budget.h"

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

#include "byte_lock.h"

namespace tarpit {

Slot::Outcome Slot::acquire(const std::string& path, std::uint32_t budget) noexcept {
  release();
  if (budget == 0) return Outcome::spent;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    error_ = errno;
    return Outcome::fault;
  }
  for (std::uint32_t i = 0; i < budget; ++i) {
    if (byte_lock::lock(fd, i, F_WRLCK, F_SETLK) == 0) {
      fd_ = fd;
      index_ = i;
      return Outcome::held;
    }
    if (!byte_lock::busy(errno)) {
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
