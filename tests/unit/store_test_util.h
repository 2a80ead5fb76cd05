// store_test_util.h: temporary state directories and child processes for
// the store tests.
#ifndef QT_TEST_STORE_TEST_UTIL_H
#define QT_TEST_STORE_TEST_UTIL_H

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store_lmdb.h"

namespace store_test {

// A fresh directory under $TMPDIR (or /tmp), removed with all it holds.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/qt-store-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
    chmod(path_.c_str(), 0700);
  }
  ~TempDir() {
    if (path_.empty()) return;
    // make everything removable again, then remove it
    nftw(path_.c_str(), [](const char* p, const struct stat*, int t, struct FTW*) {
      if (t == FTW_D || t == FTW_DP || t == FTW_DNR) chmod(p, 0700);
      return 0;
    }, 16, FTW_PHYS);
    nftw(path_.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return remove(p); }, 16,
         FTW_DEPTH | FTW_PHYS);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline store::LmdbOptions options_for(const TempDir& d) {
  store::LmdbOptions o;
  o.directory = d.path();
  o.boot_id = "test-boot";
  o.map_size = std::size_t{16} << 20;
  o.lock_timeout_ms = 2000;
  return o;
}

// Runs `body` in a child process; returns its exit status (or 128+signal).
template <class F>
int in_child(F body) {
  const pid_t pid = fork();
  if (pid == 0) _exit(body());
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

constexpr uid_t nobody = 65534;

}  // namespace store_test

#endif
