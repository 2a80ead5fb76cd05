// store_test_util.h: temporary state directories and child processes for
// the store tests.
#ifndef QT_TEST_STORE_TEST_UTIL_H
#define QT_TEST_STORE_TEST_UTIL_H

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

constexpr std::uint64_t T0 = 1'700'000'000'000;  // ms; 60 s and 1 h buckets start here
constexpr std::uint32_t DAY = 86400;

// What `s` counted of one counter at `now`.
inline std::uint64_t used(store::Store& s, std::string_view identity, std::string_view metric,
                          std::uint32_t window, std::uint64_t now) {
  std::vector<store::CounterUsage> u;
  store::Result r = s.usage(identity, now, u);
  EXPECT_TRUE(r.ok()) << r.reason;
  for (const auto& c : u)
    if (c.metric == metric && c.window_seconds == window) return c.used;
  return 0;
}

// user, domain and client address of one sender, as the limits table gives them
struct Sender {
  store::Limit limits[3];
  Sender(std::uint32_t user_limit, std::uint32_t domain_limit, std::uint32_t ip_limit, std::uint32_t window = DAY)
      : limits{{{"u:alice@example.com", "rcpt", window}, user_limit},
               {{"d:example.com", "rcpt", window}, domain_limit},
               {{"a:192.0.2.7", "rcpt", window}, ip_limit}} {}
};

}  // namespace store_test

#endif
