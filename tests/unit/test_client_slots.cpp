// Sessions at once per client (conn=): slots that die with their process.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <cerrno>
#include <span>
#include <string>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client_slots.h"
#include "store_test_util.h"

using client_slots::Slot;

namespace {

bool exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// A process that takes a slot of `key` and holds it until killed; it
// reports 'y' (held), 'f' (full) or 'x' (fault) on `fd`.
pid_t holder(const std::string& dir, const std::string& key, std::uint32_t limit, int fd) {
  pid_t pid = fork();
  if (pid == 0) {
    Slot s;
    Slot::Outcome o = s.acquire(dir, key, limit);
    char c = o == Slot::Outcome::held ? 'y' : o == Slot::Outcome::full ? 'f' : 'x';
    if (write(fd, &c, 1) != 1) _exit(1);
    if (o != Slot::Outcome::held) _exit(0);
    pause();
    _exit(0);
  }
  return pid;
}

char report(int fd) {
  char c = 0;
  EXPECT_EQ(read(fd, &c, 1), 1);
  return c;
}

// A holder() for each of `holders`, each reported holding a slot.
void start_holders(std::span<pid_t> holders, const std::string& dir, const std::string& key, std::uint32_t limit,
                   const int (&pipefd)[2]) {
  for (pid_t& h : holders) {
    h = holder(dir, key, limit, pipefd[1]);
    ASSERT_GT(h, 0);
    EXPECT_EQ(report(pipefd[0]), 'y');
  }
}

void kill_and_wait(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

}  // namespace

TEST(ClientSlots, FileNames) {
  EXPECT_EQ(client_slots::file_name("a:192.0.2.7"), "a=192.0.2.7");
  EXPECT_EQ(client_slots::file_name("n:192.0.2.0/24"), "n=192.0.2.0_24");
  EXPECT_EQ(client_slots::file_name("n:2001:db8::/64"), "n=2001=db8==_64");
  EXPECT_EQ(client_slots::file_name(""), "");
  EXPECT_EQ(client_slots::file_name("a:../x"), "a=.._x");  // no '/' left: stays in the directory
  EXPECT_EQ(client_slots::file_name(".."), "");
  EXPECT_EQ(client_slots::file_name("a:1 2"), "");
  EXPECT_EQ(client_slots::file_name(std::string(81, 'a')), "");
}

// conn=3: three processes hold a slot each, a fourth is refused; a SIGKILLed
// holder frees its place at once, with no expiry and no sweep.
TEST(ClientSlots, CountedAcrossProcessesAndFreedAtOnceBySigkill) {
  store_test::TempDir d;
  const std::string dir = d.path() + "/conn";  // created on demand
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t holders[3];
  start_holders(holders, dir, "a:192.0.2.7", 3, pipefd);
  EXPECT_EQ(client_slots::in_use(dir, "a:192.0.2.7", 3), std::optional<std::uint32_t>(3));
  Slot mine;
  EXPECT_EQ(mine.acquire(dir, "a:192.0.2.7", 3), Slot::Outcome::full);
  // another client has its own count
  EXPECT_EQ(mine.acquire(dir, "a:192.0.2.8", 3), Slot::Outcome::held);
  mine.release();
  kill_and_wait(holders[1]);
  EXPECT_EQ(client_slots::in_use(dir, "a:192.0.2.7", 3), std::optional<std::uint32_t>(2));
  EXPECT_EQ(mine.acquire(dir, "a:192.0.2.7", 3), Slot::Outcome::held);
  EXPECT_EQ(mine.index(), 1u);  // the killed holder's place
  EXPECT_EQ(mine.acquire(dir, "a:192.0.2.7", 3), Slot::Outcome::held);  // acquire releases the old slot first
  Slot again;
  EXPECT_EQ(again.acquire(dir, "a:192.0.2.7", 3), Slot::Outcome::full);
  mine.release();
  kill_and_wait(holders[0]);
  kill_and_wait(holders[2]);
  // every slot is free, and a larger limit counts the same file
  start_holders(holders, dir, "a:192.0.2.7", 4, pipefd);
  EXPECT_EQ(again.acquire(dir, "a:192.0.2.7", 4), Slot::Outcome::held);
  again.release();
  for (pid_t h : holders) kill_and_wait(h);
  close(pipefd[0]);
  close(pipefd[1]);
}

// The last session of a client removes the file; a file left by a SIGKILL
// goes with the next session of that client; a held file is never removed.
TEST(ClientSlots, FilesOfGoneClientsAreRemoved) {
  store_test::TempDir d;
  const std::string dir = d.path();
  const std::string path = dir + "/a=192.0.2.7";
  {
    Slot a, b;
    ASSERT_EQ(a.acquire(dir, "a:192.0.2.7", 2), Slot::Outcome::held);
    ASSERT_EQ(b.acquire(dir, "a:192.0.2.7", 2), Slot::Outcome::held);
    a.release();
    EXPECT_TRUE(exists(path));  // b still holds one
    EXPECT_FALSE(client_slots::remove_if_unused(dir, "a:192.0.2.7"));
    EXPECT_TRUE(exists(path));
  }
  EXPECT_FALSE(exists(path));
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t h = holder(dir, "a:192.0.2.7", 2, pipefd[1]);
  EXPECT_EQ(report(pipefd[0]), 'y');
  kill_and_wait(h);
  EXPECT_TRUE(exists(path));  // left behind, but holds no place
  EXPECT_EQ(client_slots::in_use(dir, "a:192.0.2.7", 2), std::optional<std::uint32_t>(0));
  {
    Slot next;
    EXPECT_EQ(next.acquire(dir, "a:192.0.2.7", 1), Slot::Outcome::held);
  }
  EXPECT_FALSE(exists(path));
  EXPECT_TRUE(client_slots::remove_if_unused(dir, "a:192.0.2.7"));  // absent: fine
  close(pipefd[0]);
  close(pipefd[1]);
}

// A remover that opened a file just before the last session let go of it
// (unlinking it) and a new session created and took a new file of that
// name: the remover's gate lock covers only the old file, so it must not
// unlink the name.
TEST(ClientSlots, ARemoverNeverUnlinksANewerFileOfTheName) {
  store_test::TempDir d;
  const std::string dir = d.path();
  const std::string path = dir + "/a=192.0.2.7";
  Slot last;
  ASSERT_EQ(last.acquire(dir, "a:192.0.2.7", 1), Slot::Outcome::held);
  int old = open(path.c_str(), O_RDWR | O_CLOEXEC);  // the remover's open()
  ASSERT_GE(old, 0);
  last.release();  // unlinks the old file
  EXPECT_FALSE(exists(path));
  Slot next;
  ASSERT_EQ(next.acquire(dir, "a:192.0.2.7", 1), Slot::Outcome::held);  // a new file
  EXPECT_EQ(client_slots::remove_open_if_unused(old, path), 1);  // the old one is gone: done
  close(old);
  EXPECT_TRUE(exists(path));
  Slot over;
  EXPECT_EQ(over.acquire(dir, "a:192.0.2.7", 1), Slot::Outcome::full);  // still one count
  next.release();
  EXPECT_FALSE(exists(path));
}

// Many processes racing to take and give back places of one client (files
// created and removed all the while), and a sweeper removing unused files
// beside them (qmail-throttlectl expire): the sessions that hold a slot at
// once (counted in shared memory, not by the files) never exceed the limit,
// nor does in_use() ever see more.
TEST(ClientSlots, RacingTakersRemoversAndASweeperNeverExceedTheLimit) {
  store_test::TempDir d;
  const std::string dir = d.path();
  constexpr int procs = 6, rounds = 300;
  constexpr std::uint32_t limit = 2;
  void* shared = mmap(nullptr, 2 * sizeof(std::atomic<int>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto* holding = new (shared) std::atomic<int>(0);
  auto* done = new (holding + 1) std::atomic<int>(0);
  pid_t sweeper = fork();
  ASSERT_GE(sweeper, 0);
  if (sweeper == 0) {
    client_slots::Swept swept;
    while (done->load() < procs)
      if (int e = client_slots::sweep(dir, swept); e != 0) _exit(e);
    _exit(0);
  }
  pid_t kids[procs];
  for (pid_t& k : kids) {
    k = fork();
    ASSERT_GE(k, 0);
    if (k == 0) {
      int bad = 0;
      for (int r = 0; r < rounds; ++r) {
        Slot s;
        Slot::Outcome o = s.acquire(dir, "n:2001:db8::/64", limit);
        // the exit status says what went wrong: 1 a fault, 2 over the
        // limit, 4 in_use() could not tell, 8 it saw too many, 16 none
        if (o == Slot::Outcome::fault) bad |= 1, std::fprintf(stderr, "taker: fault: %s\n", std::strerror(s.error()));
        if (o != Slot::Outcome::held) continue;
        if (holding->fetch_add(1) + 1 > static_cast<int>(limit)) bad |= 2;
        std::optional<std::uint32_t> n = client_slots::in_use(dir, "n:2001:db8::/64", limit + 2);
        bad |= !n ? 4 : *n > limit ? 8 : *n == 0 ? 16 : 0;
        holding->fetch_sub(1);  // before the slot is let go
      }
      done->fetch_add(1);
      _exit(bad);
    }
  }
  for (pid_t k : kids) {
    int st = 0;
    waitpid(k, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "a taker's wait status " << st;
  }
  done->store(procs);
  int st = 0;
  waitpid(sweeper, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "the sweeper's wait status " << st;
  munmap(shared, 2 * sizeof(std::atomic<int>));
  EXPECT_FALSE(exists(dir + "/n=2001=db8==_64"));
}

// in_use() counts every held slot it is asked about, also a gap left by a
// killed holder and slots above a lowered limit, without taking any.
TEST(ClientSlots, InUseCountsHeldSlotsWithoutTakingOne) {
  store_test::TempDir d;
  const std::string dir = d.path();
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t holders[4];
  start_holders(holders, dir, "a:192.0.2.7", 4, pipefd);
  EXPECT_EQ(client_slots::in_use(dir, "a:192.0.2.7", 4), std::optional<std::uint32_t>(4));
  EXPECT_EQ(client_slots::in_use(dir, "a:192.0.2.7", 2), std::optional<std::uint32_t>(2));        // the first two
  EXPECT_EQ(client_slots::in_use(dir, "a:192.0.2.7", 1000000), std::optional<std::uint32_t>(4));  // limit lowered
  kill_and_wait(holders[1]);
  EXPECT_EQ(client_slots::in_use(dir, "a:192.0.2.7", 1000000), std::optional<std::uint32_t>(3));
  EXPECT_EQ(client_slots::in_use(dir, "a:192.0.2.8", 4), std::optional<std::uint32_t>(0));  // no file
  Slot mine;  // counting took nothing: the gap is still free
  EXPECT_EQ(mine.acquire(dir, "a:192.0.2.7", 4), Slot::Outcome::held);
  EXPECT_EQ(mine.index(), 1u);
  mine.release();
  for (pid_t h : {holders[0], holders[2], holders[3]}) kill_and_wait(h);
  close(pipefd[0]);
  close(pipefd[1]);
}

// sweep() (qmail-throttlectl expire) removes the files SIGKILLed sessions
// left and keeps every file a session holds.
TEST(ClientSlots, SweepRemovesLeftFilesAndKeepsHeldOnes) {
  store_test::TempDir d;
  const std::string dir = d.path() + "/conn";
  client_slots::Swept swept;
  EXPECT_EQ(client_slots::sweep(dir, swept), ENOENT);  // no directory yet: nothing to do
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t left = holder(dir, "a:192.0.2.7", 2, pipefd[1]);
  EXPECT_EQ(report(pipefd[0]), 'y');
  kill_and_wait(left);
  pid_t held = holder(dir, "n:192.0.2.0/24", 2, pipefd[1]);
  EXPECT_EQ(report(pipefd[0]), 'y');
  EXPECT_TRUE(exists(dir + "/a=192.0.2.7"));
  EXPECT_EQ(client_slots::sweep(dir, swept), 0);
  EXPECT_EQ(swept.removed, 1u);
  EXPECT_EQ(swept.kept, 1u);
  EXPECT_FALSE(exists(dir + "/a=192.0.2.7"));
  EXPECT_TRUE(exists(dir + "/n=192.0.2.0_24"));
  EXPECT_EQ(client_slots::in_use(dir, "n:192.0.2.0/24", 2), std::optional<std::uint32_t>(1));
  // the kept file still counts: the holder's place and one more, then full
  Slot a, b;
  EXPECT_EQ(a.acquire(dir, "n:192.0.2.0/24", 2), Slot::Outcome::held);
  EXPECT_EQ(b.acquire(dir, "n:192.0.2.0/24", 2), Slot::Outcome::full);
  a.release();
  kill_and_wait(held);
  EXPECT_EQ(client_slots::sweep(dir, swept), 0);
  EXPECT_EQ(swept.removed, 1u);
  EXPECT_EQ(swept.kept, 0u);
  EXPECT_FALSE(exists(dir + "/n=192.0.2.0_24"));
  close(pipefd[0]);
  close(pipefd[1]);
}

TEST(ClientSlots, ZeroLimitAndFaults) {
  store_test::TempDir d;
  Slot s;
  EXPECT_EQ(s.acquire(d.path(), "a:192.0.2.7", 0), Slot::Outcome::full);
  EXPECT_EQ(s.acquire(d.path(), "a bad key", 3), Slot::Outcome::fault);
  EXPECT_EQ(s.acquire(d.path() + "/no/such/dir", "a:192.0.2.7", 3), Slot::Outcome::fault);
  EXPECT_NE(s.error(), 0);
  EXPECT_FALSE(s.held());
}
