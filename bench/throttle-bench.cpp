// throttle-bench: the cost of one relay-limit decision.
//
//   throttle-bench lmdb DIR N [PROCS] [sync]
//       N decisions per process on the LMDB store in DIR, each an atomic
//       check-and-charge of 3 counters (user, domain, client address; 1-day
//       windows, limits never reached), PROCS processes at once (default 1).
//       Also times opening the store (the first decision of a connection).
//       With sync, every decision is followed by an fdatasync() of the
//       store's data file, timed with it: what a store that flushed every
//       decision to disk would pay (the store itself never syncs: its counts
//       are soft state, doc/DESIGN.md).
//   throttle-bench redis URL N [PROCS]
//       The same on the Redis store at URL (redis://, redis-cluster://, ...,
//       as in control/throttlestore); also the round trips per decision.
//   throttle-bench open DIR|URL N
//       N fresh processes (fork/exec, as tcpserver starts qmail-smtpd) each
//       open the existing store in DIR (or connect to URL) and make one
//       decision: the cost a connection pays for its first decision.
//   throttle-bench floor DIR N
//       The floor of any per-connection use of an embedded LMDB store: the
//       whole-process CPU (user+system, from wait4, so exec, page faults and
//       exit count) of N fresh processes that only open a raw LMDB
//       environment in DIR and commit one small write, against N that do
//       nothing; no qmail-throttle code runs. Prints both medians and the
//       difference. Alongside, the floor of the other design, a long-lived
//       counter daemon (as Postfix's anvil): N fresh processes that connect
//       to a unix socket in DIR and make one request/reply round trip, the
//       daemon doing nothing but answer (epoll, one process); their CPU and
//       the daemon's, per connection.
//   throttle-bench script PATH N
//       N runs of PATH by fork/exec/wait, as qmail-smtpd's rcptcheck patch
//       runs its checker for every RCPT, with the environment it gives.
//
// Prints one line of key=value pairs (times in microseconds): median, p90,
// p99, max per decision, and for lmdb the open cost and decisions/second.
// Built by the top-level Makefile (make bench) with the overlay's flags
// and LMDB linked statically, as qmail-smtpd will link it.

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <sys/resource.h>

#include <memory>
#include <optional>

#include "store_lmdb.h"
#include "store_redis.h"
#include "store_url.h"
#include "window.h"

namespace {

std::uint64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

void print_stats(std::vector<double>& us) {
  std::printf(" n=%zu median_us=%.2f p90_us=%.2f p99_us=%.2f max_us=%.2f", us.size(), pct(us, 50), pct(us, 90),
              pct(us, 99), pct(us, 100));
}

bool is_url(const char* where) { return std::strncmp(where, "redis", 5) == 0; }

// The store at `where`: an LMDB directory, or a Redis URL (no password).
std::unique_ptr<store::Store> open_store(const char* where, store::RedisStore** redis) {
  *redis = nullptr;
  if (is_url(where)) {
    store::RedisOptions o;
    std::string error;
    std::optional<store_url::Spec> spec = store_url::parse(where, &error);
    if (!spec) {
      std::fprintf(stderr, "throttle-bench: %s: %s\n", where, error.c_str());
      return nullptr;
    }
    o.spec = *spec;
    o.password_file = "";
    auto s = std::make_unique<store::RedisStore>(std::move(o));
    *redis = s.get();
    return s;
  }
  store::LmdbOptions o;
  o.directory = where;
  return std::make_unique<store::LmdbStore>(o);
}

// One process's decisions; per-decision times (us) go to fd `out` as
// doubles, after the first decision's (which opens the store) and the
// round trips the decisions took (Redis; else 0). sync: fdatasync() the
// LMDB data file after every decision.
int worker(const char* where, long n, bool sync, int worker, int out) {
  store::RedisStore* redis = nullptr;
  std::unique_ptr<store::Store> s = open_store(where, &redis);
  if (!s) return 1;
  const std::string user = "u:user" + std::to_string(worker) + "@example.com";
  const store::Limit limits[] = {{{user, "rcpt", 86400}, 4'000'000'000u},
                                 {{"d:example.com", "rcpt", 86400}, 4'000'000'000u},
                                 {{"a:192.0.2.7", "rcpt", 86400}, 4'000'000'000u}};
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(n) + 1);
  // The first decision opens the store: timed on its own.
  std::uint64_t t = now_ns();
  store::ChargeResult r = s->charge(limits, 1, store::store_clock, nullptr);
  const double open_us = static_cast<double>(now_ns() - t) / 1000.0;
  if (!r.ok() || !r.accepted) {
    std::fprintf(stderr, "throttle-bench: %s\n", r.reason.c_str());
    return 1;
  }
  const double trips_before = redis ? static_cast<double>(redis->router()->round_trips()) : 0;
  int data_fd = -1;
  if (sync && redis == nullptr) {
    store::LmdbOptions o;
    o.directory = where;
    data_fd = ::open((store::LmdbStore::generation_path(o) + "/data.mdb").c_str(), O_RDWR | O_CLOEXEC);
    if (data_fd == -1) {
      std::perror("throttle-bench: data.mdb");
      return 1;
    }
  }
  for (long i = 0; i < n; ++i) {
    t = now_ns();
    r = s->charge(limits, 1, store::store_clock, nullptr);
    if (data_fd != -1 && fdatasync(data_fd) == -1) {
      std::perror("throttle-bench: fdatasync");
      return 1;
    }
    us.push_back(static_cast<double>(now_ns() - t) / 1000.0);
    if (!r.ok() || !r.accepted) {
      std::fprintf(stderr, "throttle-bench: %s\n", r.reason.c_str());
      return 1;
    }
  }
  const double trips = redis ? static_cast<double>(redis->router()->round_trips()) - trips_before : 0;
  const std::size_t bytes = us.size() * sizeof(double);
  return write(out, &open_us, sizeof open_us) == sizeof open_us && write(out, &trips, sizeof trips) == sizeof trips &&
                 write(out, us.data(), bytes) == static_cast<ssize_t>(bytes)
             ? 0
             : 1;
}

int bench_store(const char* where, long n, int procs, bool sync) {
  std::vector<double> open_us, us;
  double trips = 0;
  std::vector<std::pair<pid_t, FILE*>> kids;
  const std::uint64_t t0 = now_ns();
  for (int p = 0; p < procs; ++p) {
    char tmpl[] = "/tmp/throttle-bench-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd == -1) return 1;
    unlink(tmpl);
    const pid_t pid = fork();
    if (pid == 0) _exit(worker(where, n, sync, p, fd));
    kids.emplace_back(pid, fdopen(fd, "rb"));
  }
  bool ok = true;
  for (auto& [pid, f] : kids) {
    int st;
    waitpid(pid, &st, 0);
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    rewind(f);
    double v;
    if (std::fread(&v, sizeof v, 1, f) == 1) open_us.push_back(v);
    if (std::fread(&v, sizeof v, 1, f) == 1) trips += v;
    while (std::fread(&v, sizeof v, 1, f) == 1) us.push_back(v);
    std::fclose(f);
  }
  const double wall_s = static_cast<double>(now_ns() - t0) / 1e9;
  if (!ok) return 1;
  std::printf("mode=%s procs=%d sync=%d", is_url(where) ? "redis" : "lmdb", procs, sync ? 1 : 0);
  print_stats(us);
  std::printf(" open_us=%.1f decisions_per_s=%.0f round_trips_per_decision=%.2f\n", pct(open_us, 50),
              static_cast<double>(us.size()) / wall_s, us.empty() ? 0.0 : trips / static_cast<double>(us.size()));
  return 0;
}

// In a fresh process: open the store, one decision; prints both times
// (Redis: the open is nothing, the first decision connects).
int open_once(const char* where) {
  // Measured as qmail-smtpd runs: as the owner of the state directory.
  struct stat st;
  if (!is_url(where) && geteuid() == 0 && stat(where, &st) == 0 && st.st_uid != 0) {
    if (setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0) return 1;
  }
  store::RedisStore* redis = nullptr;
  const std::uint64_t t0 = now_ns();
  std::unique_ptr<store::Store> s = open_store(where, &redis);
  store::Result r;
  if (!is_url(where)) r = static_cast<store::LmdbStore*>(s.get())->open();
  const std::uint64_t t1 = now_ns();
  const store::Limit limits[] = {{{"u:open@example.com", "rcpt", 86400}, 4'000'000'000u},
                                 {{"d:example.com", "rcpt", 86400}, 4'000'000'000u},
                                 {{"a:192.0.2.7", "rcpt", 86400}, 4'000'000'000u}};
  store::ChargeResult c = s->charge(limits, 1, store::store_clock, nullptr);
  const std::uint64_t t2 = now_ns();
  if (!r.ok() || !c.ok() || !c.accepted) {
    std::fprintf(stderr, "throttle-bench: %s%s\n", r.reason.c_str(), c.reason.c_str());
    return 1;
  }
  std::printf("%.2f %.2f\n", static_cast<double>(t1 - t0) / 1000.0, static_cast<double>(t2 - t1) / 1000.0);
  return 0;
}

int bench_open(const char* self, const char* dir, long n) {
  std::vector<double> open_us, first_us;
  for (long i = 0; i < n; ++i) {
    int p[2];
    if (pipe(p) != 0) return 1;
    const pid_t pid = fork();
    if (pid == 0) {
      dup2(p[1], 1);
      close(p[0]);
      close(p[1]);
      char* const argv[] = {const_cast<char*>(self), const_cast<char*>("open1"), const_cast<char*>(dir), nullptr};
      execv(self, argv);
      _exit(120);
    }
    close(p[1]);
    char buf[128] = {};
    const ssize_t got = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    double a = 0, b = 0;
    if (got <= 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || std::sscanf(buf, "%lf %lf", &a, &b) != 2) return 1;
    open_us.push_back(a);
    first_us.push_back(b);
  }
  std::printf("mode=open n=%ld open_median_us=%.1f open_p99_us=%.1f first_decision_median_us=%.1f\n", n,
              pct(open_us, 50), pct(open_us, 99), pct(first_us, 50));
  return 0;
}

// A fresh process: raw LMDB open and one write transaction, nothing else.
int floor_once(const char* dir) {
  MDB_env* env = nullptr;
  MDB_txn* txn = nullptr;
  MDB_dbi dbi;
  char key[] = "Cfloor", value[32] = {};
  MDB_val k{sizeof key - 1, key}, v{sizeof value, value};
  if (mdb_env_create(&env) != 0 || mdb_env_set_mapsize(env, std::size_t{1} << 30) != 0 ||
      mdb_env_open(env, dir, MDB_NOLOCK | MDB_NOTLS | MDB_NORDAHEAD | MDB_NOMEMINIT | MDB_NOSYNC, 0600) != 0 ||
      mdb_txn_begin(env, nullptr, 0, &txn) != 0 || mdb_dbi_open(txn, nullptr, 0, &dbi) != 0 ||
      mdb_put(txn, dbi, &k, &v, 0) != 0 || mdb_txn_commit(txn) != 0)
    return 1;
  _exit(0);  // as qmail-smtpd ends: no cleanup
}

double cpu_us(const struct rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

bool socket_address(const char* dir, sockaddr_un& a) {
  a = {};
  a.sun_family = AF_UNIX;
  return std::snprintf(a.sun_path, sizeof a.sun_path, "%s/floor.sock", dir) < static_cast<int>(sizeof a.sun_path);
}

// The daemon of the IPC floor: answers every request line with "ok\n" and
// does nothing else, until SIGTERM.
[[noreturn]] void ipc_daemon(int listener) {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.fd = listener;
  if (ep == -1 || epoll_ctl(ep, EPOLL_CTL_ADD, listener, &e) == -1) _exit(1);
  epoll_event ready[64];
  char buf[512];
  for (;;) {
    const int n = epoll_wait(ep, ready, 64, -1);
    for (int i = 0; i < n; ++i) {
      const int fd = ready[i].data.fd;
      if (fd == listener) {
        const int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        epoll_event ce{};
        ce.events = EPOLLIN;
        ce.data.fd = c;
        if (c != -1 && epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) == -1) close(c);
        continue;
      }
      const ssize_t got = read(fd, buf, sizeof buf);
      if (got <= 0) {
        close(fd);  // also leaves the epoll set
        continue;
      }
      if (write(fd, "ok\n", 3) != 3) close(fd);
    }
  }
}

// A fresh process: connect to the daemon, one request and its reply.
int ipc_once(const char* dir) {
  sockaddr_un a;
  char reply[16];
  static const char request[] = "charge a:192.0.2.7 rcpt 3600 1000000\n";
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!socket_address(dir, a) || s == -1 || connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == -1 ||
      write(s, request, sizeof request - 1) != static_cast<ssize_t>(sizeof request - 1) || read(s, reply, sizeof reply) != 3)
    return 1;
  _exit(0);
}

int bench_floor(const char* self, const char* dir, long n) {
  sockaddr_un a;
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!socket_address(dir, a) || listener == -1) return 1;
  unlink(a.sun_path);
  if (bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == -1 || listen(listener, 128) == -1) {
    std::perror("throttle-bench: floor socket");
    return 1;
  }
  const pid_t daemon = fork();
  if (daemon == 0) ipc_daemon(listener);
  close(listener);

  std::vector<double> nothing, lmdb, ipc;
  int failed = 0;
  for (long i = 0; i < 3 * n && failed == 0; ++i) {
    const int kind = static_cast<int>(i % 3);
    const char* mode = kind == 0 ? "nothing" : kind == 1 ? "floor1" : "ipc1";
    const pid_t pid = fork();
    if (pid == 0) {
      char* const argv[] = {const_cast<char*>(self), const_cast<char*>(mode), const_cast<char*>(dir), nullptr};
      execv(self, argv);
      _exit(120);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "throttle-bench: floor child %s failed (status %d)\n", mode, st);
      failed = 1;
      break;
    }
    (kind == 0 ? nothing : kind == 1 ? lmdb : ipc).push_back(cpu_us(ru));
  }
  kill(daemon, SIGTERM);
  int st;
  struct rusage dru;
  if (wait4(daemon, &st, 0, &dru) != daemon || failed != 0) return 1;
  unlink(a.sun_path);
  const double a0 = pct(nothing, 50), b = pct(lmdb, 50), c = pct(ipc, 50);
  const double daemon_us = cpu_us(dru) / static_cast<double>(n);
  std::printf("mode=floor n=%ld nothing_cpu_us=%.0f lmdb_cpu_us=%.0f floor_us=%.0f ipc_client_cpu_us=%.0f "
              "ipc_daemon_cpu_us=%.0f ipc_floor_us=%.0f\n",
              n, a0, b, b - a0, c, daemon_us, c - a0 + daemon_us);
  return 0;
}

int bench_script(const char* path, long n, const char* dir) {
  std::vector<double> us;
  std::string overlimit = std::string("OVERLIMITDIR=") + dir;
  char* const argv[] = {const_cast<char*>(path), nullptr};
  std::vector<std::string> env = {"PATH=/usr/bin:/bin",
                                  overlimit,
                                  std::string("LIMITSFILE=") + dir + "/limits",
                                  "RELAYCLIENT=",
                                  "TCPREMOTEIP=192.0.2.7",
                                  "SMTPAUTHUSER=alice@example.com",
                                  "SENDER=alice@example.com",
                                  "RECIPIENT=bob@elsewhere.example",
                                  "HELO=client.example",
                                  "RCPTHOSTS=0",
                                  "USE_FD4=1"};
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (long i = 0; i < n; ++i) {
    const std::uint64_t t = now_ns();
    const pid_t pid = fork();
    if (pid == 0) {
      execve(path, argv, envp.data());
      _exit(120);
    }
    int st;
    waitpid(pid, &st, 0);
    us.push_back(static_cast<double>(now_ns() - t) / 1000.0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) == 120 || WEXITSTATUS(st) == 111) {
      std::fprintf(stderr, "throttle-bench: %s failed (status %d)\n", path, st);
      return 1;
    }
  }
  std::printf("mode=script");
  print_stats(us);
  std::printf("\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && (std::strcmp(argv[1], "lmdb") == 0 || std::strcmp(argv[1], "redis") == 0)) {
    const int procs = argc >= 5 ? std::atoi(argv[4]) : 1;
    const bool sync = argc >= 6 && std::strcmp(argv[5], "sync") == 0;
    std::signal(SIGPIPE, SIG_IGN);
    return bench_store(argv[2], std::atol(argv[3]), procs < 1 ? 1 : procs, sync);
  }
  if (argc >= 5 && std::strcmp(argv[1], "script") == 0) return bench_script(argv[2], std::atol(argv[3]), argv[4]);
  if (argc >= 4 && std::strcmp(argv[1], "open") == 0) return bench_open("/proc/self/exe", argv[2], std::atol(argv[3]));
  if (argc == 3 && std::strcmp(argv[1], "open1") == 0) return open_once(argv[2]);
  if (argc >= 4 && std::strcmp(argv[1], "floor") == 0) return bench_floor("/proc/self/exe", argv[2], std::atol(argv[3]));
  if (argc == 3 && std::strcmp(argv[1], "floor1") == 0) return floor_once(argv[2]);
  if (argc == 3 && std::strcmp(argv[1], "ipc1") == 0) return ipc_once(argv[2]);
  if (argc == 3 && std::strcmp(argv[1], "nothing") == 0) _exit(0);
  std::fprintf(stderr,
               "usage: throttle-bench lmdb DIR N [PROCS] [sync]\n"
               "       throttle-bench redis URL N [PROCS]\n"
               "       throttle-bench open DIR|URL N\n"
               "       throttle-bench floor DIR N\n"
               "       throttle-bench script PATH N STATEDIR\n");
  return 2;
}
