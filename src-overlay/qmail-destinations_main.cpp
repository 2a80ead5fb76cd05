// qmail-destinations: the per-destination limits of the running qmail-send.
//
//   qmail-destinations [-t SECONDS] [DOMAIN ...]
//       asks qmail-send (SIGUSR1) for its state and shows destinations,
//       deliveries in flight, held recipients, pauses and learned routes
//   qmail-destinations -c [FILE]
//       checks a concurrencydomains file (default control/concurrencydomains)
//   qmail-destinations -x DOMAIN [HOST [ADDRESS]]
//       which line applies to DOMAIN, and to it once its mail goes to HOST/ADDRESS
//
// See qmail-destinations(8). Exit codes: 0 fine, 1 the file has errors (-c)
// or qmail-send did not answer, 100 usage, 111 a system error.

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "destination_state.h"
#include "destination_table.h"

extern "C" char auto_qmail[];  // auto_qmail.c

namespace {

constexpr const char* me = "qmail-destinations";
constexpr const char* control_file = "control/concurrencydomains";
constexpr const char* state_file = "queue/destinations/state";

int usage() {
  std::fprintf(stderr,
               "usage: %s [-t SECONDS] [DOMAIN ...]\n"
               "       %s -c [FILE]\n"
               "       %s -x DOMAIN [HOST [ADDRESS]]\n",
               me, me, me);
  return 100;
}

int fail(const std::string& what, int code = 111) {
  std::fprintf(stderr, "%s: fatal: %s\n", me, what.c_str());
  return code;
}

bool read_file(const char* fn, std::string* out) {
  FILE* f = std::fopen(fn, "re");
  if (f == nullptr) return false;
  out->clear();
  char buf[8192];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  const bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

std::optional<destinations::Table> load_table(const char* fn, bool quiet) {
  std::string text;
  if (!read_file(fn, &text)) {
    if (errno == ENOENT) {
      if (!quiet) std::printf("%s: no such file: remote deliveries have no per-destination limits\n", fn);
      return destinations::Table{};
    }
    std::fprintf(stderr, "%s: fatal: unable to read %s: %s\n", me, fn, std::strerror(errno));
    return std::nullopt;
  }
  std::vector<destinations::Error> errors;
  std::optional<destinations::Table> t = destinations::Table::parse(text, &errors);
  for (const auto& e : errors) std::printf("%s:%u: %s\n", fn, e.line_no, e.message.c_str());
  return t;
}

int check(const char* fn) {
  std::optional<destinations::Table> t = load_table(fn, false);
  if (!t) return 1;
  for (const auto& l : t->lines()) std::printf("%s:%u: %s\n", fn, l.line_no, destinations::describe(l).c_str());
  if (t->empty()) std::printf("%s: no destinations\n", fn);
  else if (t->fallback() == destinations::Table::none)
    std::printf("%s: no '*' line: domains without a line of their own are not limited%s\n", fn,
                t->has_route_lines() ? " (one delivery at a time until their route is known)" : "");
  return 0;
}

int explain(int argc, char** argv) {
  std::optional<destinations::Table> t = load_table(control_file, true);
  if (!t) return 1;
  const std::string domain = destinations::canonical_name(argv[0]);
  const std::string host = argc > 1 ? destinations::canonical_name(argv[1]) : std::string();
  std::optional<ip::Address> address;
  if (argc > 2) {
    address = ip::parse(argv[2]);
    if (!address) return fail(std::string("not an IP address: ") + argv[2], 100);
  }
  auto show = [&](int line, const char* why) {
    std::printf("%s: %s: line %u: %s\n", domain.c_str(), why, t->lines()[line].line_no,
                destinations::describe(t->lines()[line]).c_str());
  };
  int line = t->by_domain(domain);
  if (line != destinations::Table::none) {
    show(line, "by its name");
    return 0;
  }
  if (argc > 1) {
    line = t->by_route(host, address ? &*address : nullptr);
    if (line != destinations::Table::none) {
      show(line, "by its route");
      return 0;
    }
  } else if (t->has_route_lines()) {
    std::printf("%s: mx: and ip: lines may apply once its route is known (give HOST [ADDRESS])\n",
                domain.c_str());
  }
  if (t->fallback() != destinations::Table::none) {
    line = t->fallback();
    std::printf("%s: a budget of its own from line %u: %s\n", domain.c_str(), t->lines()[line].line_no,
                destinations::describe(t->lines()[line]).c_str());
  } else if (argc == 1 && t->has_route_lines()) {
    std::printf("%s: one delivery at a time until its route is known, then no limit unless a route line "
                "applies\n",
                domain.c_str());
  } else {
    std::printf("%s: no limit\n", domain.c_str());
  }
  return 0;
}

// The qmail-send running from this qmail home: its cwd is QMAIL_HOME/queue.
pid_t find_qmail_send(const std::string& queue) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  pid_t found = -1;
  while (dirent* e = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::string base = std::string("/proc/") + e->d_name;
    std::string comm;
    if (!read_file((base + "/comm").c_str(), &comm) || comm != "qmail-send\n") continue;
    char cwd[PATH_MAX];
    ssize_t n = readlink((base + "/cwd").c_str(), cwd, sizeof cwd - 1);
    if (n <= 0) continue;
    if (std::string(cwd, static_cast<std::size_t>(n)) == queue) {
      found = static_cast<pid_t>(pid);
      break;
    }
  }
  closedir(proc);
  return found;
}

std::string state_of(const destinations::StateRecord& b) {
  std::string why(b.get("why"));
  std::string state(b.get("state"));
  if (state == "paused") return "paused, " + std::string(b.get("until")) + "s more, then one probing delivery";
  if (state == "probing") return "probing with one delivery";
  if (why == "none") return std::string(b.get("held")) == "0" ? "-" : "may start";
  if (why == "concurrency") return "at its limit";
  if (why == "rate") return "at its rate limit";
  if (why == "zero") return "holds everything (limit 0)";
  return why;
}

int show(int argc, char** argv, int timeout) {
  char real[PATH_MAX];
  if (realpath("queue", real) == nullptr) return fail(std::string("unable to find the queue: ") + std::strerror(errno));
  const pid_t pid = find_qmail_send(real);
  if (pid <= 0) {
    std::fprintf(stderr, "%s: qmail-send is not running from %s\n", me, auto_qmail);
    return 1;
  }
  struct stat before {};
  const bool had = stat(state_file, &before) == 0;
  if (kill(pid, SIGUSR1) == -1) return fail(std::string("unable to signal qmail-send: ") + std::strerror(errno));
  std::string text;
  for (int waited = 0;; waited += 50) {
    struct stat now {};
    if (stat(state_file, &now) == 0 &&
        (!had || now.st_ino != before.st_ino || now.st_mtim.tv_nsec != before.st_mtim.tv_nsec ||
         now.st_mtim.tv_sec != before.st_mtim.tv_sec) &&
        read_file(state_file, &text))
      break;
    if (waited >= timeout * 1000) {
      std::fprintf(stderr, "%s: qmail-send (pid %d) did not write %s/%s within %d seconds\n", me,
                   static_cast<int>(pid), auto_qmail, state_file, timeout);
      return 1;
    }
    usleep(50000);
  }
  std::optional<destinations::State> st = destinations::parse_state(text);
  if (!st) return fail(std::string(state_file) + " is not a state file I understand", 1);
  std::string lines = std::string(st->header["lines"]);
  std::printf("qmail-send %d: %s destination lines, %s recipients held, %s domains remembered\n",
              static_cast<int>(pid), lines.c_str(), st->header["held"].c_str(), st->header["domains"].c_str());
  if (lines == "0" && st->budgets.empty()) {
    std::printf("no per-destination limits (no %s/%s)\n", auto_qmail, control_file);
    return 0;
  }
  std::vector<std::string> wanted;
  for (int i = 0; i < argc; ++i) wanted.push_back(destinations::canonical_name(argv[i]));
  auto want_domain = [&](const destinations::StateRecord& d) {
    if (wanted.empty()) return true;
    for (const auto& w : wanted)
      if (w == d.name) return true;
    return false;
  };
  std::vector<std::string> budgets_shown;
  for (const auto& d : st->domains)
    if (want_domain(d)) budgets_shown.emplace_back(d.get("budget"));
  std::printf("\n%-32s %-9s %6s %9s %8s  %s\n", "destination", "kind", "limit", "in flight", "held", "state");
  for (const auto& b : st->budgets) {
    if (!wanted.empty()) {
      bool any = false;
      for (const auto& n : budgets_shown) any = any || n == b.name;
      if (!any) continue;
    }
    std::string kind(b.get("kind"));
    if (kind == "line") kind = "line " + std::string(b.get("line"));
    std::string limit(b.get("limit"));
    if (std::string(b.get("rate")) != "-") limit += " " + std::string(b.get("rate"));
    std::printf("%-32s %-9s %6s %9s %8s  %s\n", b.name.c_str(), kind.c_str(), limit.c_str(),
                std::string(b.get("inflight")).c_str(), std::string(b.get("held")).c_str(), state_of(b).c_str());
  }
  std::printf("\n%-32s %-32s %9s %8s  %s\n", "domain", "destination", "in flight", "held", "route");
  for (const auto& d : st->domains) {
    if (!want_domain(d)) continue;
    std::string route = "-";
    if (std::string(d.get("learned")) != "-")
      route = std::string(d.get("mx")) + " " + std::string(d.get("ip")) + ", learned " +
              std::string(d.get("learned")) + "s ago";
    std::printf("%-32s %-32s %9s %8s  %s\n", d.name.c_str(), std::string(d.get("budget")).c_str(),
                std::string(d.get("inflight")).c_str(), std::string(d.get("held")).c_str(), route.c_str());
  }
  for (const auto& w : wanted) {
    bool seen = false;
    for (const auto& d : st->domains) seen = seen || d.name == w;
    if (!seen) std::printf("%-32s (nothing in flight, held or learned)\n", w.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (chdir(auto_qmail) == -1) return fail(std::string("unable to switch to ") + auto_qmail + ": " + std::strerror(errno));
  int timeout = 10;
  int i = 1;
  if (i < argc && std::strcmp(argv[i], "-c") == 0) {
    if (argc > i + 2) return usage();
    return check(argc > i + 1 ? argv[i + 1] : control_file);
  }
  if (i < argc && std::strcmp(argv[i], "-x") == 0) {
    if (argc < i + 2 || argc > i + 4) return usage();
    return explain(argc - i - 1, argv + i + 1);
  }
  if (i < argc && std::strcmp(argv[i], "-t") == 0) {
    if (i + 1 >= argc) return usage();
    timeout = std::atoi(argv[i + 1]);
    if (timeout <= 0) return usage();
    i += 2;
  }
  for (int k = i; k < argc; ++k)
    if (argv[k][0] == '-') return usage();
  return show(argc - i, argv + i, timeout);
}
