// redis_credentials.cpp: see redis_credentials.h.

#include "redis_credentials.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace redis_credentials {

store::Result read_password(const std::string& path, std::string& out) {
  out.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd == -1) {
    if (errno == ENOENT) return {};
    return store::Result::failure(store::Status::unavailable,
                                  "cannot read " + path + ": " + std::strerror(errno));
  }
  struct stat st;
  if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || (st.st_mode & 007) != 0) {
    ::close(fd);
    return store::Result::failure(store::Status::unavailable,
                                  path + " is not a regular file that only its owner and group may read: refused");
  }
  char buf[1024];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof buf);
  } while (n == -1 && errno == EINTR);
  const int e = errno;
  ::close(fd);
  if (n < 0) return store::Result::failure(store::Status::unavailable, "cannot read " + path + ": " + std::strerror(e));
  std::size_t len = 0;
  while (len < static_cast<std::size_t>(n) && buf[len] != '\n' && buf[len] != '\r') ++len;
  out.assign(buf, len);
  explicit_bzero(buf, sizeof buf);
  return {};
}

}  // namespace redis_credentials
