// process_lock: bounded waits, and a killed holder never leaves it stuck.
//
// "At once" is checked against a lock timeout of a minute with a bound of
// half that: only a lock that waited for its timeout gets there, however
// slow the machine.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_lock.h"
#include "store_test_util.h"

using process_lock::Lock;
using process_lock::Outcome;
using store_test::TempDir;

namespace {

struct Dir {
  int fd;
  explicit Dir(const std::string& path) : fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}
  ~Dir() { close(fd); }
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

constexpr int long_timeout_ms = 60'000;
constexpr long missed_ms = long_timeout_ms / 2;

long ms_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
}

// A child that takes the lock, says so on a pipe, then stops itself
// (SIGSTOP) while holding it. Returns its pid once it is stopped.
pid_t stopped_holder(const std::string& dir) {
  int p[2];
  if (pipe(p) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    Dir d(dir);
    Lock l;
    if (l.open(d.fd, "writer.lock", 1000) != 0) _exit(1);
    if (l.lock(1000) != Outcome::locked) _exit(2);
    (void)!write(p[1], "x", 1);
    raise(SIGSTOP);
    _exit(0);
  }
  close(p[1]);
  char c;
  const bool held = read(p[0], &c, 1) == 1;
  close(p[0]);
  int st;
  waitpid(pid, &st, WUNTRACED);
  if (!held || !WIFSTOPPED(st)) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
  }
  return pid;
}

}  // namespace

TEST(ProcessLock, LocksAndUnlocks) {
  TempDir t;
  Dir d(t.path());
  Lock l;
  ASSERT_EQ(l.open(d.fd, "writer.lock", 1000), 0);
  EXPECT_EQ(l.lock(100), Outcome::locked);
  l.unlock();
  EXPECT_EQ(l.lock(100), Outcome::locked);
  l.unlock();
  struct stat st;
  ASSERT_EQ(fstatat(d.fd, "writer.lock", &st, 0), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(ProcessLock, AStoppedHolderMakesOthersTimeOutAndAKilledOneIsRecovered) {
  TempDir t;
  const pid_t holder = stopped_holder(t.path());
  ASSERT_GT(holder, 0);
  Dir d(t.path());
  Lock l;
  ASSERT_EQ(l.open(d.fd, "writer.lock", 1000), 0);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(l.lock(300), Outcome::timed_out);
  const long waited = ms_since(t0);
  EXPECT_GE(waited, 290);
  EXPECT_LT(waited, 300 + missed_ms);  // it gave up, and not much later
  // SIGKILL the holder: the next locker takes it over at once.
  kill(holder, SIGKILL);
  int st;
  waitpid(holder, &st, 0);
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(l.lock(long_timeout_ms), Outcome::recovered);
  EXPECT_LT(ms_since(t1), missed_ms);
  l.unlock();
  EXPECT_EQ(l.lock(100), Outcome::locked);
  l.unlock();
}

TEST(ProcessLock, AWaiterGetsItWhenTheHolderUnlocks) {
  TempDir t;
  Dir d(t.path());
  int held[2], go[2];
  ASSERT_EQ(pipe(held), 0);
  ASSERT_EQ(pipe(go), 0);
  const pid_t pid = fork();
  if (pid == 0) {  // holds the lock until told to let go
    Lock l;
    if (l.open(d.fd, "writer.lock", 1000) != 0 || l.lock(1000) != Outcome::locked) _exit(1);
    (void)!write(held[1], "x", 1);
    char c;
    if (read(go[0], &c, 1) != 1) _exit(2);
    l.unlock();
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(held[0], &c, 1), 1);
  Lock l;
  ASSERT_EQ(l.open(d.fd, "writer.lock", 1000), 0);
  EXPECT_EQ(l.lock(200), Outcome::timed_out);  // held: a waiter waits
  ASSERT_EQ(write(go[1], "x", 1), 1);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(l.lock(long_timeout_ms), Outcome::locked);  // unlocked, not taken over from a dead holder
  EXPECT_LT(ms_since(t0), missed_ms);
  l.unlock();
  int st;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  for (int fd : {held[0], held[1], go[0], go[1]}) close(fd);
}

TEST(ProcessLock, AFileOfAnotherFormatIsRefused) {
  TempDir t;
  write_file(t.path() + "/writer.lock", std::string(128, 'Z'));
  Dir d(t.path());
  Lock l;
  EXPECT_EQ(l.open(d.fd, "writer.lock", 1000), EPROTO);
  EXPECT_FALSE(l.is_open());
  EXPECT_EQ(l.lock(10), Outcome::failed);
}

TEST(ProcessLock, AnInitialiserThatDiedHalfwayIsRedone) {
  TempDir t;
  // right size, magic still zero: the first opener died before finishing
  write_file(t.path() + "/writer.lock", std::string(128, '\0'));
  Dir d(t.path());
  Lock l;
  ASSERT_EQ(l.open(d.fd, "writer.lock", 1000), 0);
  EXPECT_EQ(l.lock(100), Outcome::locked);
  l.unlock();
}

TEST(ProcessLock, MissingDirectoryIsAnError) {
  Lock l;
  EXPECT_EQ(l.open(AT_FDCWD, "/nonexistent-dir-qt/writer.lock", 100), ENOENT);
}

TEST(ProcessLock, LockingItTwiceFailsAtOnceInsteadOfWaiting) {
  TempDir t;
  Dir d(t.path());
  Lock l;
  ASSERT_EQ(l.open(d.fd, "writer.lock", 1000), 0);
  ASSERT_EQ(l.lock(100), Outcome::locked);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(l.lock(long_timeout_ms), Outcome::failed);
  EXPECT_EQ(l.error(), EDEADLK);
  EXPECT_LT(ms_since(t0), missed_ms);
  l.unlock();
}
