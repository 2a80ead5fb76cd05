// store_lmdb_generation.cpp: generation directories (store_lmdb_generation.h).

#include "store_lmdb_generation.h"

#include <cerrno>
#include <cstring>
#include <string_view>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_lmdb_txn.h"

namespace store::lmdb {

namespace {

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

}  // namespace

std::string generation_name(const LmdbOptions& o) {
  std::string id = o.boot_id.empty() ? kernel_boot_id() : o.boot_id;
  if (!safe_name_part(id)) id = "unknown";
  return "boot-" + id;
}

Result open_generation(const LmdbOptions& options, const std::string& gen, int& gfd) {
  const std::string& dir = options.directory;
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
  if (created) remove_stale_generations(dirfd, gen);

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

Result set_aside(const LmdbOptions& options, std::uint64_t now_ms, std::string* moved_to) {
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

}  // namespace store::lmdb
