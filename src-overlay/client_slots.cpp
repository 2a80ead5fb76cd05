// client_slots.cpp: see client_slots.h.

#include "client_slots.h"

#include <algorithm>
#include <cerrno>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byte_lock.h"

namespace client_slots {

namespace {

constexpr std::size_t key_max = 80;

// Leaving a file (a slot let go, or none taken: full) without a slot of
// ours in it: drop our gate lock, then try the gate for writing, which
// succeeds only when nobody holds a slot (every holder read-locks the gate)
// and nobody is taking one; then the file goes. Of several processes
// leaving at once the last to try finds no lock of the others (each drops
// its own before trying), so the last one out removes the file. A file
// another leaver unlinked meanwhile is not unlinked again: its name may be
// a newer file by now. The caller closes fd.
void leave(int fd, const std::string& path) noexcept {
  byte_lock::lock(fd, 0, F_UNLCK, F_OFD_SETLK);
  struct stat st;
  if (byte_lock::lock(fd, 0, F_WRLCK, F_OFD_SETLK) == 0 && fstat(fd, &st) == 0 && st.st_nlink != 0)
    ::unlink(path.c_str());
}

}  // namespace

std::string file_name(std::string_view key) {
  if (key.empty() || key.size() > key_max) return {};
  std::string name;
  name.reserve(key.size());
  for (char c : key) {
    if (c == ':') {
      name += '=';
    } else if (c == '/') {
      name += '_';
    } else if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.') {
      name += c;
    } else {
      return {};
    }
  }
  if (name[0] == '.') return {};
  return name;
}

Slot::Outcome Slot::acquire(const std::string& dir, std::string_view key, std::uint32_t limit) noexcept {
  release();
  error_ = 0;
  if (limit == 0) return Outcome::full;
  const std::string name = file_name(key);
  if (name.empty()) {
    error_ = EINVAL;
    return Outcome::fault;
  }
  path_ = dir + "/" + name;
  // Rounds: each is lost only to a removal that happened meanwhile, so
  // someone made progress; the bound only stops a livelock. Eight were too
  // few: a unit test (six takers and a sweeper on a loaded 2-core VM) lost
  // eight in a row about once in a hundred runs, and a session would then
  // have been let in uncounted (a fault fails open).
  for (int round = 0; round < 64; ++round) {
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == ENOENT && ::mkdir(dir.c_str(), 0700) == 0) continue;
    if (fd < 0) {
      error_ = errno;
      return Outcome::fault;
    }
    // the gate: a remover holds it only across unlink()
    struct stat st;
    if (byte_lock::lock(fd, 0, F_RDLCK, F_OFD_SETLKW) != 0 || fstat(fd, &st) != 0) {
      error_ = errno;
      ::close(fd);
      return Outcome::fault;
    }
    if (st.st_nlink == 0) {  // removed while we opened it
      ::close(fd);
      continue;
    }
    for (std::uint32_t i = 0; i < limit; ++i) {
      if (byte_lock::lock(fd, 1 + i, F_WRLCK, F_OFD_SETLK) == 0) {
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
    leave(fd, path_);  // the last of the holders may have gone meanwhile
    ::close(fd);
    return Outcome::full;
  }
  error_ = EAGAIN;
  return Outcome::fault;
}

void Slot::release() noexcept {
  if (fd_ < 0) return;
  byte_lock::lock(fd_, 1 + index_, F_UNLCK, F_OFD_SETLK);
  leave(fd_, path_);
  ::close(fd_);  // drops whatever is left
  fd_ = -1;
}

std::optional<std::uint32_t> in_use(const std::string& dir, std::string_view key, std::uint32_t max) noexcept {
  const std::string name = file_name(key);
  if (name.empty()) return std::nullopt;
  int fd = ::open((dir + "/" + name).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno == ENOENT ? std::optional<std::uint32_t>(0) : std::nullopt;
  // F_OFD_GETLK names one lock in a range, not necessarily the lowest: ask
  // for the whole range, count the bytes of the lock it names, then ask for
  // the parts on either side of it.
  struct Range {
    off_t first, end;
  };
  std::vector<Range> todo{{1, static_cast<off_t>(1) + max}};
  std::uint32_t held = 0;
  while (!todo.empty()) {
    const Range r = todo.back();
    todo.pop_back();
    if (r.first >= r.end) continue;
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = r.first;
    fl.l_len = r.end - r.first;
    if (fcntl(fd, F_OFD_GETLK, &fl) != 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (fl.l_type == F_UNLCK) continue;
    const off_t first = std::max(fl.l_start, r.first);
    const off_t end = fl.l_len == 0 ? r.end : std::min(fl.l_start + fl.l_len, r.end);
    if (first >= end) {  // not in the range after all: cannot happen
      ::close(fd);
      return std::nullopt;
    }
    held += static_cast<std::uint32_t>(end - first);
    todo.push_back({r.first, first});
    todo.push_back({end, r.end});
  }
  ::close(fd);
  return held;
}

int remove_open_if_unused(int fd, const std::string& path) noexcept {
  struct stat mine, named;
  if (byte_lock::lock(fd, 0, F_WRLCK, F_OFD_SETLK) != 0) return byte_lock::busy(errno) ? 0 : -1;
  if (fstat(fd, &mine) != 0) return -1;
  if (mine.st_nlink == 0) return 1;  // unlinked meanwhile by the session that let go of it last
  // a slot file has one name, so a linked file is the one `path` names;
  // made sure of anyway, the gate we hold covers no other file
  if (lstat(path.c_str(), &named) != 0) return errno == ENOENT ? 1 : -1;
  if (named.st_dev != mine.st_dev || named.st_ino != mine.st_ino) return 0;
  return ::unlink(path.c_str()) == 0 || errno == ENOENT ? 1 : -1;
}

namespace {

// remove_if_unused() by file name. 1 removed or gone, 0 held, -1 fault.
int remove_name_if_unused(const std::string& path) noexcept {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno == ENOENT ? 1 : -1;
  const int result = remove_open_if_unused(fd, path);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  return result;
}

}  // namespace

bool remove_if_unused(const std::string& dir, std::string_view key) noexcept {
  const std::string name = file_name(key);
  if (name.empty()) return false;
  return remove_name_if_unused(dir + "/" + name) == 1;
}

int sweep(const std::string& dir, Swept& out) noexcept {
  out = Swept{};
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return errno;
  for (;;) {
    errno = 0;
    const struct dirent* e = ::readdir(d);
    if (e == nullptr) break;
    if (e->d_name[0] == '.') continue;  // ".", "..": file_name() never starts with '.'
    if (remove_name_if_unused(dir + "/" + e->d_name) == 1)
      ++out.removed;
    else
      ++out.kept;
  }
  const int err = errno;
  ::closedir(d);
  return err;
}

}  // namespace client_slots
