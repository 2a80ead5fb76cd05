// qmail-newspamt: compile control/spamt and control/relaylimits into
// control/spamt.cdb, or explain which limits apply to a client.
//
//   qmail-newspamt [-d DIR] [-n]
//   qmail-newspamt [-d DIR] -x IP [USER]
//
// Runs in QMAIL_HOME (or DIR). On any error every bad line is reported as
// "file:line: what is wrong", the exit code is 111 and control/spamt.cdb is
// left untouched; the new table is written to control/spamt.cdb.tmp, synced
// and renamed. See doc/qmail-newspamt.8.

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "limits_table.h"
#include "spamt_compile.h"
#include "spamt_explain.h"
#include "spamt_syntax.h"

extern "C" char auto_qmail[];  // auto_qmail.c

namespace {

constexpr const char* me = "qmail-newspamt";
constexpr const char* spamt_path = "control/spamt";
constexpr const char* relaylimits_path = "control/relaylimits";
constexpr const char* cdb_path = "control/spamt.cdb";
constexpr const char* tmp_path = "control/spamt.cdb.tmp";
// Present exactly when some entry limits clients (conn=, connrate=, ...):
// qmail-smtpd's greeting looks at the table only then (doc/DESIGN.md,
// "Client connection limits and inbound rates").
constexpr const char* clients_flag_path = "control/spamt.clients";

bool limits_clients(const spamt::Table& table) {
  for (const spamt::CompiledEntry& e : table.entries)
    if (e.client && !e.client->unlimited()) return true;
  return false;
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "%s: usage: %s [-d dir] [-n]\n"
               "       %s [-d dir] -x ip [user]\n",
               me, me, me);
  std::exit(100);
}

[[noreturn]] void fatal(const std::string& what, int err = 0) {
  if (err != 0)
    std::fprintf(stderr, "%s: fatal: %s: %s\n", me, what.c_str(), std::strerror(err));
  else
    std::fprintf(stderr, "%s: fatal: %s\n", me, what.c_str());
  std::exit(111);
}

// The whole file; false with errno when it cannot be read.
bool slurp(const char* path, std::string& out) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      errno = saved;
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return true;
}

// Reads one source; nullopt-like false when it does not exist.
bool read_source(const char* path, std::string& text) {
  if (slurp(path, text)) return true;
  if (errno == ENOENT) return false;
  fatal(std::string("unable to read ") + path, errno);
}

int write_table(const spamt::Table& table) {
  int fd = ::open(tmp_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fatal(std::string("unable to open ") + tmp_path, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) fatal(std::string("another qmail-newspamt is writing ") + tmp_path);
    fatal(std::string("unable to lock ") + tmp_path, err);
  }
  // from here on the temporary file is ours: remove it on failure
  auto fail = [fd](const std::string& what, int err) {
    ::unlink(tmp_path);
    ::close(fd);
    fatal(what, err);
  };
  if (::ftruncate(fd, 0) != 0) fail(std::string("unable to truncate ") + tmp_path, errno);
  if (::fchmod(fd, 0644) != 0) fail(std::string("unable to chmod ") + tmp_path, errno);
  int err = spamt::write_cdb(table, fd);
  if (err != 0) fail(std::string("unable to write ") + tmp_path, err);
  if (::fsync(fd) != 0) fail(std::string("unable to sync ") + tmp_path, errno);
  // the flag goes before a table without client limits replaces one with
  // them, and comes after a table with them is in place: a stale flag costs
  // a session one lookup; a missing one leaves client limits off between
  // the rename and the flag
  const bool flag = limits_clients(table);
  if (!flag && ::unlink(clients_flag_path) != 0 && errno != ENOENT)
    fail(std::string("unable to remove ") + clients_flag_path, errno);
  if (::rename(tmp_path, cdb_path) != 0)
    fail(std::string("unable to move ") + tmp_path + " to " + cdb_path, errno);
  ::close(fd);
  if (flag) {
    int f = ::open(clients_flag_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) fatal(std::string("unable to create ") + clients_flag_path, errno);
    ::close(f);
  }
  // make the rename itself durable
  int dir = ::open("control", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    (void)::fsync(dir);
    ::close(dir);
  }
  return 0;
}

int compile(bool check_only) {
  std::string spamt_text, relaylimits_text;
  bool have_spamt = read_source(spamt_path, spamt_text);
  bool have_relaylimits = read_source(relaylimits_path, relaylimits_text);
  if (!have_spamt && !have_relaylimits)
    fatal(std::string("neither ") + spamt_path + " nor " + relaylimits_path + " exists");

  spamt::ParsedFile spamt_file, relaylimits_file;
  if (have_spamt) spamt_file = spamt::parse_spamt(spamt_text, spamt_path);
  if (have_relaylimits) relaylimits_file = spamt::parse_relaylimits(relaylimits_text, relaylimits_path);
  spamt::Table table =
      spamt::compile(have_spamt ? &spamt_file : nullptr, have_relaylimits ? &relaylimits_file : nullptr);

  std::size_t errors = 0;
  for (const spamt::Diagnostic& d : table.diagnostics) {
    std::fprintf(stderr, "%s\n", d.text().c_str());
    if (!d.warning) ++errors;
  }
  if (errors != 0) {
    fatal(std::to_string(errors) + (errors == 1 ? " error" : " errors") + "; " + cdb_path + " left unchanged");
  }
  if (check_only) return 0;
  return write_table(table);
}

bool newer(const char* a, const struct stat& b) {
  struct stat st;
  if (::stat(a, &st) != 0) return false;
  return st.st_mtim.tv_sec > b.st_mtim.tv_sec ||
         (st.st_mtim.tv_sec == b.st_mtim.tv_sec && st.st_mtim.tv_nsec > b.st_mtim.tv_nsec);
}

int explain(std::string_view ip, std::string_view user) {
  spamt::LimitsTable table;
  spamt::TableStatus st = table.open(cdb_path);
  if (st != spamt::TableStatus::ok) {
    std::string what = std::string(cdb_path) + ": " + std::string(spamt::status_name(st));
    if (st == spamt::TableStatus::missing) what += " (no limits table: nothing is limited)";
    if (st == spamt::TableStatus::wrong_version) what += " (run qmail-newspamt to rebuild it)";
    fatal(what, st == spamt::TableStatus::unreadable ? table.error() : 0);
  }
  struct stat cdb_st;
  if (::stat(cdb_path, &cdb_st) == 0) {
    for (const char* src : {spamt_path, relaylimits_path})
      if (newer(src, cdb_st))
        std::printf("warning: %s is newer than %s: run qmail-newspamt to use it\n", src, cdb_path);
  }
  std::printf("table %s: %u entries\n", cdb_path, table.index().entries);
  std::string text;
  bool ok = spamt::explain(table, ip, user, text);
  if (!ok) fatal(std::string(text.substr(0, text.size() ? text.size() - 1 : 0)));
  std::fputs(text.c_str(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 111;
}

}  // namespace

int main(int argc, char** argv) {
  const char* dir = auto_qmail;
  bool check_only = false;
  bool explain_mode = false;
  int opt;
  while ((opt = ::getopt(argc, argv, "d:nx")) != -1) {
    switch (opt) {
      case 'd': dir = optarg; break;
      case 'n': check_only = true; break;
      case 'x': explain_mode = true; break;
      default: usage();
    }
  }
  int rest = argc - optind;
  if (explain_mode ? (rest < 1 || rest > 2) : rest != 0) usage();
  if (::chdir(dir) != 0) fatal(std::string("unable to chdir to ") + dir, errno);
  ::umask(022);
  if (explain_mode) return explain(argv[optind], rest == 2 ? argv[optind + 1] : "");
  return compile(check_only);
}
