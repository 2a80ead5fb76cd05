// redis_connection.h: one blocking connection to one Redis node (hiredis),
// with bounded waits and pipelining.
//
//   redis::Connection c;
//   if (!c.open({"127.0.0.1", 6379}, timeouts, setup).ok()) ...   // connect only
//   c.append({"FCALL", "qt1_charge", ...});      // queued, not sent
//   c.append({"GET", "k"});
//   c.flush();                                   // both go out in one write
//   c.receive(reply1); c.receive(reply2);        // in order
//
// Setup commands (AUTH, SELECT) given to open() are queued ahead of the first
// command and their replies consumed by the first receive(): a new
// connection costs the TCP handshake and no extra round trip. A refused
// setup fails that receive() (the reason never contains the password).
//
// Waits are bounded: the connect by connect_ms, each read and write by
// command_ms (SO_RCVTIMEO/SO_SNDTIMEO). Any transport fault (refused, timed
// out, closed, protocol error) closes the connection: hiredis cannot use a
// context after an error. The socket is close-on-exec (qmail-smtpd runs
// qmail-queue and checkpassword). Writing to a peer that went away raises
// SIGPIPE: callers ignore it (qmail-smtpd and qmail-throttlectl do).

#ifndef QT_REDIS_CONNECTION_H
#define QT_REDIS_CONNECTION_H

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store.h"
#include "store_url.h"

struct redisContext;

namespace redis {

// One reply, owned (hiredis's reply objects are freed at once).
struct Reply {
  enum class Type : std::uint8_t { nil, integer, string, status, error, array };
  Type type = Type::nil;
  long long integer = 0;
  std::string str;              // string, status, error
  std::vector<Reply> elements;  // array

  bool is_error() const noexcept { return type == Type::error; }
  // An error reply whose first word is `code` ("MOVED", "NOSCRIPT", ...).
  bool error_code_is(std::string_view code) const noexcept;
};

struct Timeouts {
  std::uint32_t connect_ms = store_url::default_connect_timeout_ms;
  std::uint32_t command_ms = store_url::default_timeout_ms;
};

// Arguments of one command; views into strings that outlive append().
using Args = std::span<const std::string_view>;

class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects (TCP, at most connect_ms) and queues `setup` (each a command).
  store::Result open(const store_url::HostPort& where, const Timeouts& t,
                     const std::vector<std::vector<std::string>>& setup);
  void close() noexcept;
  bool is_open() const noexcept { return ctx_ != nullptr; }
  // Whether the server has closed this connection already (a restart, a
  // failover, an idle timeout), seen without blocking: nothing sent on it
  // now could arrive. Closes it then.
  bool closed_by_peer() noexcept;
  const store_url::HostPort& where() const noexcept { return where_; }

  // Queues a command; nothing is sent until flush() or receive().
  store::Result append(Args args);
  store::Result append(std::initializer_list<std::string_view> args) {
    return append(Args(args.begin(), args.size()));
  }
  // Sends everything queued.
  store::Result flush();
  // The next reply (flushing first when needed).
  store::Result receive(Reply& out);

 private:
  store::Result fault(const char* what);

  redisContext* ctx_ = nullptr;
  store_url::HostPort where_;
  Timeouts timeouts_;
  std::vector<std::string> setup_names_;  // replies to consume first, by command name
};

}  // namespace redis

#endif
