// destlimit.cpp: see destlimit.h.

#include "destlimit.h"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "destination_scheduler.h"
#include "destination_state.h"
#include "helpers.h"

static_assert(DESTLIMIT_PARKED == destinations::Held::parked);

namespace {

using destinations::Ms;
using destinations::Scheduler;

// qmail-send's log is its descriptor 0; each line goes out in one write.
class SendLog final : public destinations::LogSink {
 public:
  void line(std::string_view text) override {
    std::string l(text);
    l += '\n';
    std::size_t off = 0;
    while (off < l.size()) {
      ssize_t w = write(0, l.data() + off, l.size() - off);
      if (w > 0) {
        off += static_cast<std::size_t>(w);
      } else if (w == -1 && errno == EINTR) {
        continue;
      } else {
        return;
      }
    }
  }
};

SendLog* send_log = nullptr;
Scheduler* scheduler = nullptr;  // made at the first file with lines (or a bad one at start)
bool dump_failed_logged = false;

Ms now_ms() noexcept { return static_cast<Ms>(helpers::monotonic_ms()); }

SendLog& logger() {
  if (send_log == nullptr) send_log = new SendLog;
  return *send_log;
}

Scheduler& the_scheduler() {
  if (scheduler == nullptr) scheduler = new Scheduler(logger());
  return *scheduler;
}

constexpr std::size_t max_file = 16u << 20;

// The whole file: 1 read, 0 absent, -1 error (errno set).
int read_file(const char* fn, std::string* out) {
  int fd = open(fn, O_RDONLY | O_CLOEXEC);
  if (fd == -1) return errno == ENOENT ? 0 : -1;
  out->clear();
  char buf[8192];
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r == 0) break;
    if (r == -1) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    out->append(buf, static_cast<std::size_t>(r));
    if (out->size() > max_file) {
      close(fd);
      errno = EFBIG;
      return -1;
    }
  }
  close(fd);
  return 1;
}

// What a held recipient's bounce says when its destination stays paused.
std::string paused_bounce(std::string_view destination, std::string_view report) {
  std::string s = "Sorry, I couldn't deliver to ";
  s += destination;
  s += ": it was paused after repeated failures, the last one:\n";
  s += report;
  if (!s.empty() && s.back() != '\n') s += '\n';
  s += "I'm not going to try again; this message has been in the queue too long.\n";
  return s;
}

}  // namespace

extern "C" {

int destlimit_load(const char* fn, int atstart) noexcept {
  std::string text;
  const int r = read_file(fn, &text);
  std::vector<destinations::Error> errors;
  std::optional<destinations::Table> table;
  if (r == 1) {
    table = destinations::Table::parse(text, &errors);
  } else if (r == 0) {
    table = destinations::Table{};
  } else {
    errors.push_back({0, std::string("unable to read: ") + std::strerror(errno)});
  }
  if (!table) {
    for (const auto& e : errors)
      logger().line(std::string("warning: ") + fn + (e.line_no ? ":" + std::to_string(e.line_no) : "") + ": " +
                    e.message);
    if (atstart) {
      // Nothing in force yet: holding everything is the only safe choice.
      std::vector<destinations::Error> none;
      the_scheduler().configure(*destinations::Table::parse("* 0\n", &none), now_ms());
      logger().line(std::string("warning: ") + fn + " has errors: every remote delivery is held until it is "
                    "fixed and qmail-send gets a HUP");
    } else {
      logger().line(std::string("warning: ") + fn + " has errors: the settings in force stay");
    }
    return 0;
  }
  if (table->empty() && scheduler == nullptr) return 1;  // stock qmail-send
  const std::size_t lines = table->lines().size();
  the_scheduler().configure(std::move(*table), now_ms());
  logger().line(std::string("destinations: ") + fn + ": " + std::to_string(lines) +
                (lines == 1 ? " destination" : " destinations") + " in force");
  return 1;
}

int destlimit_on(void) noexcept { return scheduler != nullptr && scheduler->active(); }

int destlimit_admit(const char* recip, int job, unsigned long mpos, unsigned long id) noexcept {
  if (!destlimit_on()) return DESTLIMIT_START;
  switch (scheduler->admit(recip, job, mpos, id, now_ms())) {
    case Scheduler::Admit::start: return DESTLIMIT_START;
    case Scheduler::Admit::hold: return DESTLIMIT_HOLD;
    case Scheduler::Admit::later: return DESTLIMIT_LATER;
  }
  return DESTLIMIT_START;
}

int destlimit_park(int job, unsigned long id, long birth, int refs) noexcept {
  return scheduler != nullptr && scheduler->park(job, id, birth, refs);
}

void destlimit_started(unsigned int slot, const char* recip) noexcept {
  if (scheduler != nullptr) scheduler->started(slot, recip, now_ms());
}

void destlimit_finished(unsigned int slot, const char* route, unsigned int routelen, const char* report) noexcept {
  if (scheduler == nullptr) return;
  std::optional<destinations::Route> r;
  if (route != nullptr) r = destinations::parse_route(std::string_view(route, routelen));
  scheduler->finished(slot, r, report != nullptr ? report : "", now_ms());
}

int destlimit_next(int* job, unsigned long* mpos, char** recip) noexcept {
  if (scheduler == nullptr) return 0;
  std::optional<destinations::Held> h = scheduler->next(now_ms());
  if (!h) return 0;
  *job = h->job;
  *mpos = h->mpos;
  *recip = const_cast<char*>(h->recip.data());  // NUL-terminated in the queue
  return 1;
}

void destlimit_taken(void) noexcept {
  if (scheduler != nullptr) scheduler->taken(now_ms());
}

int destlimit_ready(void) noexcept { return scheduler != nullptr && scheduler->ready(); }

int destlimit_wakeup(unsigned long* seconds) noexcept {
  if (scheduler == nullptr) return 0;
  std::optional<Ms> at = scheduler->wakeup();
  if (!at) return 0;
  const Ms wait = *at - now_ms();
  *seconds = wait <= 0 ? 0 : static_cast<unsigned long>((wait + 999) / 1000);
  return 1;
}

void destlimit_sweep(int (*expire)(int, unsigned long, const char*, const char*)) noexcept {
  if (scheduler == nullptr || !scheduler->needs_sweep()) return;
  scheduler->sweep(now_ms(), [expire](const destinations::Held& h, std::string_view report) {
    if (h.is_parked()) return expire(DESTLIMIT_PARKED, 0, h.recip.data(), "") != 0;
    const std::string text = paused_bounce(h.domain->budget->name, report);
    return expire(h.job, h.mpos, h.recip.data(), text.c_str()) != 0;
  });
}

int destlimit_dump(const char* fn) noexcept {
  const std::string text =
      scheduler == nullptr ? destinations::state_text_off() : destinations::state_text(*scheduler, now_ms());
  const std::string tmp = std::string(fn) + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd != -1;
  std::size_t off = 0;
  while (ok && off < text.size()) {
    ssize_t w = write(fd, text.data() + off, text.size() - off);
    if (w > 0) off += static_cast<std::size_t>(w);
    else if (!(w == -1 && errno == EINTR)) ok = false;
  }
  if (fd != -1 && close(fd) == -1) ok = false;
  if (ok && rename(tmp.c_str(), fn) == -1) ok = false;
  if (!ok) {
    if (!dump_failed_logged)
      logger().line(std::string("warning: unable to write ") + fn + ": " + std::strerror(errno));
    dump_failed_logged = true;
    unlink(tmp.c_str());
    return 0;
  }
  dump_failed_logged = false;
  return 1;
}

}  // extern "C"
