// client_wait.h: wait while watching the client's connection.
//
// The teergrube holds a client for up to minutes. While it waits it polls
// the socket for POLLRDHUP, POLLHUP and POLLERR - not for input - so a
// client that closes its end (FIN) or resets the connection (RST) is noticed
// at once, however much input it left unread; spamthrottle's getpeername()
// check saw only the RST. Every `tg_seconds` it sends a continuation line
// through a callback (qmail-smtpd's own output, so it works under TLS too).

#ifndef QT_CLIENT_WAIT_H
#define QT_CLIENT_WAIT_H

#include <cstdint>

namespace client_wait {

enum class Outcome : std::uint8_t {
  complete,  // waited the whole time
  closed,    // the client closed its end (FIN)
  reset,     // the connection failed (RST, or another socket error)
};

const char* outcome_name(Outcome o) noexcept;

// Sends one continuation line. It does not fail: qmail-smtpd's output ends
// the process when it cannot write.
using Continuation = void (*)() noexcept;

struct Result {
  Outcome outcome = Outcome::complete;
  std::uint64_t waited_ms = 0;
  unsigned continuations = 0;
};

// Waits `total_ms` on descriptor `fd` (a socket), calling `continuation`
// every `tg_seconds` (0: never; null: never).
Result wait(int fd, std::uint64_t total_ms, std::uint32_t tg_seconds, Continuation continuation) noexcept;

// Whether input is waiting on `fd` now (without reading it).
bool input_pending(int fd) noexcept;

}  // namespace client_wait

#endif
