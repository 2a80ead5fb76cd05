// client_wait.cpp: see client_wait.h.

#include "client_wait.h"

#include <cerrno>

#include <poll.h>
#include <time.h>

#include "helpers.h"

namespace client_wait {

using helpers::monotonic_ms;

const char* outcome_name(Outcome o) noexcept {
  switch (o) {
    case Outcome::complete: return "complete";
    case Outcome::closed: return "client closed";
    case Outcome::reset: return "connection reset";
  }
  return "?";
}

Result wait(int fd, std::uint64_t total_ms, std::uint32_t tg_seconds, Continuation continuation) noexcept {
  Result r;
  const std::uint64_t start = monotonic_ms();
  const std::uint64_t end = start + total_ms;
  const bool teergrube = tg_seconds != 0 && continuation != nullptr;
  std::uint64_t next_line = teergrube ? start + std::uint64_t{tg_seconds} * 1000 : end;
  for (;;) {
    std::uint64_t now = monotonic_ms();
    if (now >= end) break;
    if (teergrube && now >= next_line) {
      continuation();
      ++r.continuations;
      next_line += std::uint64_t{tg_seconds} * 1000;
      continue;
    }
    std::uint64_t until = next_line < end ? next_line : end;
    std::uint64_t step = until - now;
    struct pollfd p {};
    p.fd = fd;
    p.events = POLLRDHUP;  // not POLLIN: pipelined input must not wake us
    // POLLRDHUP wakes us when the client leaves: no need to look every second
    int n = poll(&p, 1, static_cast<int>(step > 3600000 ? 3600000 : step));
    if (n < 0) {
      if (errno == EINTR) continue;
      r.outcome = Outcome::reset;
      break;
    }
    if (n == 0) continue;
    if (p.revents & (POLLERR | POLLNVAL)) {
      r.outcome = Outcome::reset;
      break;
    }
    if (p.revents & (POLLRDHUP | POLLHUP)) {
      r.outcome = (p.revents & POLLHUP) && !(p.revents & POLLRDHUP) ? Outcome::reset : Outcome::closed;
      break;
    }
  }
  r.waited_ms = monotonic_ms() - start;
  return r;
}

bool input_pending(int fd) noexcept {
  struct pollfd p {};
  p.fd = fd;
  p.events = POLLIN;
  return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

}  // namespace client_wait
