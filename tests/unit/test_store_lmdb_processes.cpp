// The LMDB store shared by many processes at once: "limit N" means exactly
// N, a SIGKILL at any moment loses and invents nothing and leaves no stuck
// lock, a stopped writer makes others fail instead of hang, a killed reader
// does not keep the store full.
//
// The machine may be slow and shared: waits for the writer lock may take a
// minute here (long_timeout) before they count as failures, and "at once"
// means within half of that - only a lock left stuck until its timeout
// gets there.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process_lock.h"
#include "store_lmdb.h"
#include "store_test_util.h"

using store::ChargeResult;
using store::Limit;
using store::LmdbStore;
using store::Status;
using store_test::TempDir;

namespace {

constexpr std::uint64_t T0 = 1'700'000'000'000;
constexpr std::uint32_t DAY = 86400;

std::uint64_t used(LmdbStore& s, const std::string& identity, std::uint64_t now = T0) {
  std::vector<store::CounterUsage> u;
  EXPECT_TRUE(s.usage(identity, now, u).ok());
  return u.empty() ? 0 : u[0].used;
}

constexpr unsigned long_timeout_ms = 60'000;
constexpr long missed_ms = long_timeout_ms / 2;

store::LmdbOptions patient_options(const TempDir& d) {
  store::LmdbOptions o = store_test::options_for(d);
  o.lock_timeout_ms = long_timeout_ms;
  return o;
}

long ms_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
}

bool write_all(int fd, const void* p, std::size_t n) { return write(fd, p, n) == static_cast<ssize_t>(n); }

// Fault injection into LMDB: it reads a data file's header with pread() and
// takes an empty file for a new store, to initialise. Armed in a process,
// the first such read that finds the file empty stops that process right
// there: it writes a byte to `report`, then waits for one on `resume`.
struct EmptyHeaderPause {
  int report = -1;
  int resume = -1;
};
EmptyHeaderPause pause_at_empty_header;

}  // namespace

// The unit tests link LMDB as a shared library: its pread() calls come here.
extern "C" ssize_t pread(int fd, void* buf, size_t count, off_t offset) {
  const ssize_t n = syscall(SYS_pread64, fd, buf, count, offset);
  if (n == 0 && offset == 0 && pause_at_empty_header.report != -1) {
    const int saved = errno;
    char c = 'p';
    const EmptyHeaderPause p = pause_at_empty_header;
    pause_at_empty_header = EmptyHeaderPause{};
    if (write(p.report, &c, 1) == 1) (void)!::read(p.resume, &c, 1);
    errno = saved;
  }
  return n;
}

// Exactly the limit under concurrency: test_store_contract.cpp (every backend).

// Processes hammer three shared counters while the parent SIGKILLs random
// ones, over and over, and starts new ones. Every charge also charges a
// counter of the child's own, in the same atomic step, and the child reports
// "about to charge" before and "charged" after every charge. Then, with R_i
// charges reported by child i and C_i its own counter:
//  - C_i == R_i when child i was not killed between "about to" and
//    "charged", else C_i is R_i or R_i + 1: nothing lost, nothing invented;
//  - each shared counter == sum of the C_i: a charge is all or nothing even
//    when its process dies in the middle of it;
//  - no error was ever reported and no lock is stuck: a charge right after
//    completes at once.
// The storm goes on until at least `min_killed` children were killed and
// `min_reported` charges reported, however slow the machine; a deadline
// only bounds a failure.
TEST(StoreLmdbProcesses, SigkillStormLosesAndInventsNothing) {
  TempDir d;
  const store::LmdbOptions o = patient_options(d);
  constexpr long min_killed = 300, min_reported = 1000;
  constexpr long deadline_ms = 300'000;
  int rep[2];
  ASSERT_EQ(pipe(rep), 0);
  fcntl(rep[0], F_SETFL, O_NONBLOCK);
  fcntl(rep[0], F_SETFD, FD_CLOEXEC);
  const char* shared[] = {"u:storm@example.com", "d:example.com", "a:192.0.2.99"};
  auto own = [](std::uint16_t id) { return "c:child" + std::to_string(id); };
  // message: child id (2 bytes) + 'i' (about to charge), 'a' (charged), 'E' (error)
  auto spawn = [&](std::uint16_t id) -> pid_t {
    const pid_t pid = fork();
    if (pid == 0) {
      close(rep[0]);
      LmdbStore s(o);
      const std::string mine = own(id);
      const Limit limits[] = {{{mine, "rcpt", DAY}, 1'000'000'000},
                              {{shared[0], "rcpt", DAY}, 1'000'000'000},
                              {{shared[1], "rcpt", DAY}, 1'000'000'000},
                              {{shared[2], "rcpt", DAY}, 1'000'000'000}};
      for (;;) {
        char m[3] = {static_cast<char>(id & 0xff), static_cast<char>(id >> 8), 'i'};
        if (!write_all(rep[1], m, 3)) _exit(2);
        ChargeResult r = s.charge(limits, 1, T0, nullptr);
        m[2] = r.ok() && r.accepted ? 'a' : 'E';
        if (!write_all(rep[1], m, 3)) _exit(2);
        if (m[2] == 'E') {
          std::fprintf(stderr, "child %u: %s\n", id, r.reason.c_str());
          _exit(3);
        }
      }
    }
    return pid;
  };

  std::map<std::uint16_t, pid_t> live;
  std::map<std::uint16_t, char> last;         // each child's last message
  std::map<std::uint16_t, long> reported_by;  // its charges reported
  std::uint16_t next_id = 0;
  long reported = 0, errors = 0, killed = 0;
  auto drain = [&] {
    char buf[3 * 1024];
    for (;;) {
      const ssize_t n = read(rep[0], buf, sizeof buf);
      if (n <= 0) return;
      ASSERT_EQ(n % 3, 0);  // 3-byte writes to a pipe are atomic
      for (ssize_t k = 0; k < n; k += 3) {
        const std::uint16_t id = static_cast<std::uint16_t>(static_cast<unsigned char>(buf[k]) |
                                                            (static_cast<unsigned char>(buf[k + 1]) << 8));
        last[id] = buf[k + 2];
        if (buf[k + 2] == 'a') {
          ++reported;
          ++reported_by[id];
        }
        errors += buf[k + 2] == 'E';
      }
    }
  };
  auto kill_one = [&](std::uint16_t id) {
    kill(live[id], SIGKILL);
    int st;
    waitpid(live[id], &st, 0);
    live.erase(id);
    ++killed;
  };

  constexpr int population = 24;
  for (int i = 0; i < population; ++i, ++next_id) live[next_id] = spawn(next_id);
  std::mt19937 rng(7);
  const auto t0 = std::chrono::steady_clock::now();
  while ((killed < min_killed || reported < min_reported) && ms_since(t0) < deadline_ms) {
    usleep(1000 + rng() % 8000);
    drain();
    auto it = live.begin();
    std::advance(it, rng() % live.size());
    kill_one(it->first);
    live[next_id] = spawn(next_id);
    ++next_id;
  }
  while (!live.empty()) kill_one(live.begin()->first);
  close(rep[1]);
  fcntl(rep[0], F_SETFL, 0);
  drain();
  close(rep[0]);
  EXPECT_EQ(errors, 0);
  EXPECT_GE(killed, min_killed);
  EXPECT_GE(reported, min_reported) << "the children hardly got to charge in " << deadline_ms << " ms";

  LmdbStore s(o);
  const auto t1 = std::chrono::steady_clock::now();
  const Limit probe[] = {{{"c:parent", "rcpt", DAY}, 10}};
  ChargeResult r = s.charge(probe, 1, T0, nullptr);
  EXPECT_LT(ms_since(t1), missed_ms) << "a lock was left stuck";
  ASSERT_TRUE(r.ok()) << r.reason;
  ASSERT_TRUE(r.accepted);

  std::uint64_t sum = 0, charged_children = 0;
  long unconfirmed = 0, committed_unreported = 0;
  for (std::uint16_t id = 0; id < next_id; ++id) {
    const std::uint64_t c = used(s, own(id));
    const auto rep_i = static_cast<std::uint64_t>(reported_by[id]);
    sum += c;
    charged_children += c != 0;
    if (last.count(id) && last[id] == 'i') {
      ++unconfirmed;
      EXPECT_TRUE(c == rep_i || c == rep_i + 1) << "child " << id << ": " << c << " counted, " << rep_i << " reported";
      committed_unreported += c == rep_i + 1;
    } else {
      EXPECT_EQ(c, rep_i) << "child " << id;
    }
  }
  for (const char* id : shared) EXPECT_EQ(used(s, id), sum) << id;
  std::printf("storm: %ld killed, %ld charges reported, %ld killed mid-charge of which %ld had committed\n", killed,
              reported, unconfirmed, committed_unreported);
  store::Stats st;
  EXPECT_TRUE(s.stats(st).ok());
  EXPECT_EQ(st.counters, 3u + charged_children + 1u);  // children killed before charging have none
}

// Opening a new store is ordered with every transaction. LMDB initialises
// a data file it finds empty by writing the meta pages of an empty
// database; a process that found the new file empty and wrote them only
// after another process committed would wipe that commit. A child is held
// inside LMDB's open right after it found the new data file empty while the
// parent charges; then the child goes on and charges too. Every charge that
// reported success is counted (the parent's may fail with `unavailable`: the
// opening child holds the writer lock).
TEST(StoreLmdbProcesses, OpeningANewStoreWipesNoCommit) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  o.lock_timeout_ms = 1000;
  const Limit l[] = {{{"u:first@example.com", "rcpt", DAY}, 100}};
  int paused[2], resume[2];
  ASSERT_EQ(pipe(paused), 0);
  ASSERT_EQ(pipe(resume), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(paused[0]);
    close(resume[1]);
    pause_at_empty_header = {paused[1], resume[0]};
    LmdbStore s(o);
    ChargeResult r = s.charge(l, 1, T0, nullptr);
    if (!r.ok()) std::fprintf(stderr, "child: %s\n", r.reason.c_str());
    _exit(r.ok() && r.accepted ? 0 : 1);
  }
  close(paused[1]);
  close(resume[0]);
  struct Reap {  // the child never outlives the test, also on failure
    pid_t pid;
    ~Reap() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } reap{child};
  char c;
  ASSERT_EQ(read(paused[0], &c, 1), 1) << "the child never found the data file empty";
  ChargeResult mine;
  {
    LmdbStore s(o);
    mine = s.charge(l, 1, T0, nullptr);
  }
  ASSERT_TRUE((mine.ok() && mine.accepted) || mine.status == Status::unavailable) << mine.reason;
  ASSERT_EQ(write(resume[1], "r", 1), 1);
  int st;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  reap.pid = -1;
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "the child's charge failed";
  LmdbStore s(o);
  EXPECT_EQ(used(s, "u:first@example.com"), mine.ok() ? 2u : 1u)
      << "the parent's charge " << (mine.ok() ? "succeeded" : "failed");
  close(paused[0]);
  close(resume[1]);
}

// A writer that is stopped (SIGSTOP) while holding the writer lock makes the
// others fail with `unavailable` after the timeout, not hang; once it is
// killed, the next charge goes through.
TEST(StoreLmdbProcesses, AStoppedWriterMakesOthersFailNotHang) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  o.lock_timeout_ms = 300;
  const Limit l[] = {{{"u:frozen@example.com", "rcpt", DAY}, 100}};
  {
    LmdbStore s(o);
    ASSERT_TRUE(s.charge(l, 1, T0, nullptr).accepted);
  }
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  const std::string gen = LmdbStore::generation_path(o);
  const pid_t holder = fork();
  if (holder == 0) {
    const int dfd = open(gen.c_str(), O_RDONLY | O_DIRECTORY);
    process_lock::Lock lock;
    if (lock.open(dfd, "writer.lock", 1000) != 0 || lock.lock(1000) != process_lock::Outcome::locked) _exit(1);
    (void)!write(p[1], "x", 1);
    raise(SIGSTOP);
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(p[0], &c, 1), 1);
  int st;
  waitpid(holder, &st, WUNTRACED);
  ASSERT_TRUE(WIFSTOPPED(st));

  LmdbStore s(o);
  const auto t0 = std::chrono::steady_clock::now();
  ChargeResult r = s.charge(l, 1, T0, nullptr);
  const long waited = ms_since(t0);
  EXPECT_EQ(r.status, Status::unavailable);
  EXPECT_NE(r.reason.find("writer lock"), std::string::npos) << r.reason;
  EXPECT_GE(waited, 290);
  EXPECT_LT(waited, 300 + missed_ms);  // it gave up, and not much later

  kill(holder, SIGKILL);
  waitpid(holder, &st, 0);
  r = s.charge(l, 1, T0, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.accepted);
  EXPECT_EQ(used(s, "u:frozen@example.com"), 2u);
  close(p[0]);
  close(p[1]);
}

// Readers hold the lock too (MDB_NOLOCK), a chunk of a scan at a time. A
// reader killed in the middle of one leaves no stuck lock. Each reader is
// killed a few milliseconds after it said it is scanning; then writer.lock
// is taken as the store takes it (`recovered`: the reader died holding it,
// and it is taken over at once) and a charge goes through at once, until
// three readers were killed holding the lock (or 200 rounds).
TEST(StoreLmdbProcesses, AReaderKilledMidScanLeavesNoStuckLock) {
  TempDir d;
  const store::LmdbOptions o = patient_options(d);
  {
    LmdbStore s(o);
    for (int i = 0; i < 6000; ++i) {
      const std::string id = "a:10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250);
      const Limit l[] = {{{id, "rcpt", DAY}, 100}};
      ASSERT_TRUE(s.charge(l, 1 + i % 7, T0, nullptr).accepted);
    }
  }
  LmdbStore s(o);
  const Limit l[] = {{{"u:writer@example.com", "rcpt", DAY}, 1000}};
  const int gen = open(LmdbStore::generation_path(o).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_NE(gen, -1);
  process_lock::Lock writer;
  ASSERT_EQ(writer.open(gen, "writer.lock", long_timeout_ms), 0);
  close(gen);
  std::mt19937 rng(3);
  int rounds = 0, recovered = 0;
  for (; rounds < 200 && recovered < 3; ++rounds) {
    int scanning[2];
    ASSERT_EQ(pipe(scanning), 0);
    const pid_t reader = fork();
    if (reader == 0) {
      LmdbStore r(o);
      std::vector<store::CounterUsage> top;
      for (bool said = false;; said = true) {
        if (!r.top(10, "rcpt", T0, top).ok() || top.size() != 10) _exit(1);
        if (!said && !write_all(scanning[1], "x", 1)) _exit(2);
      }
    }
    close(scanning[1]);
    char c;
    const bool started = read(scanning[0], &c, 1) == 1;
    close(scanning[0]);
    usleep(rng() % 10000);
    kill(reader, SIGKILL);
    int st;
    waitpid(reader, &st, 0);
    ASSERT_TRUE(started && WIFSIGNALED(st)) << "the reader failed on its own";
    const auto t0 = std::chrono::steady_clock::now();
    const process_lock::Outcome taken = writer.lock(long_timeout_ms);
    ASSERT_TRUE(taken == process_lock::Outcome::locked || taken == process_lock::Outcome::recovered);
    writer.unlock();
    recovered += taken == process_lock::Outcome::recovered;
    ChargeResult r = s.charge(l, 1, T0, nullptr);
    EXPECT_LT(ms_since(t0), missed_ms);
    ASSERT_TRUE(r.ok()) << r.reason;
    ASSERT_TRUE(r.accepted);
  }
  EXPECT_GE(recovered, 1) << "no reader was ever killed holding the lock in " << rounds << " rounds";
  EXPECT_EQ(used(s, "u:writer@example.com"), static_cast<std::uint64_t>(rounds));
  std::vector<store::CounterUsage> top;
  ASSERT_TRUE(s.top(3, "rcpt", T0, top).ok());
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[2].used, 7u);
}
