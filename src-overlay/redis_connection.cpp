// redis_connection.cpp: see redis_connection.h.

#include "redis_connection.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

namespace redis {

namespace {

struct timeval to_timeval(std::uint32_t ms) {
  struct timeval tv;
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

void convert(const redisReply* r, Reply& out) {
  out.elements.clear();
  out.str.clear();
  out.integer = 0;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.resize(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) convert(r->element[i], out.elements[i]);
      break;
    default:
      out.type = Reply::Type::nil;
      break;
  }
}

}  // namespace

bool Reply::error_code_is(std::string_view code) const noexcept {
  if (type != Type::error) return false;
  std::string_view s(str);
  return s.substr(0, code.size()) == code && (s.size() == code.size() || s[code.size()] == ' ');
}

Connection::~Connection() { close(); }

void Connection::close() noexcept {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
  setup_names_.clear();
}

store::Result Connection::fault(const char* what) {
  std::string why = std::string(what) + " " + where_.text() + ": ";
  if (ctx_ == nullptr) {
    why += "out of memory";
  } else if (ctx_->err == REDIS_ERR_IO && (std::strcmp(ctx_->errstr, std::strerror(EAGAIN)) == 0 ||
                                          std::strcmp(ctx_->errstr, std::strerror(EINPROGRESS)) == 0)) {
    why += "timed out after " + std::to_string(what[0] == 'c' ? timeouts_.connect_ms : timeouts_.command_ms) + " ms";
  } else if (ctx_->err == REDIS_ERR_EOF) {
    why += "connection closed";
  } else {
    why += ctx_->errstr;
  }
  close();
  return store::Result::failure(store::Status::unavailable, std::move(why));
}

store::Result Connection::open(const store_url::HostPort& where, const Timeouts& t,
                               const std::vector<std::vector<std::string>>& setup) {
  close();
  where_ = where;
  timeouts_ = t;
  ctx_ = redisConnectWithTimeout(where.host.c_str(), where.port, to_timeval(t.connect_ms));
  if (ctx_ == nullptr || ctx_->err != 0) return fault("connect to");
  // hiredis makes the socket without SOCK_CLOEXEC.
  fcntl(ctx_->fd, F_SETFD, FD_CLOEXEC);
  if (redisSetTimeout(ctx_, to_timeval(t.command_ms)) != REDIS_OK) return fault("set timeouts on");
  for (const std::vector<std::string>& cmd : setup) {
    std::vector<std::string_view> args(cmd.begin(), cmd.end());
    if (store::Result r = append(args); !r.ok()) return r;
    setup_names_.push_back(cmd.empty() ? std::string() : cmd[0]);
  }
  return {};
}

bool Connection::closed_by_peer() noexcept {
  if (ctx_ == nullptr) return false;
  struct pollfd p = {ctx_->fd, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) != 1) return false;
  bool gone = (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  if (!gone && (p.revents & POLLIN)) {
    char c;
    gone = recv(ctx_->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
  }
  if (gone) close();
  return gone;
}

store::Result Connection::append(Args args) {
  if (ctx_ == nullptr) return store::Result::failure(store::Status::unavailable, "not connected");
  const char* argv[64];
  std::size_t lens[64];
  std::vector<const char*> big_argv;
  std::vector<std::size_t> big_lens;
  const char** av = argv;
  std::size_t* al = lens;
  if (args.size() > 64) {
    big_argv.resize(args.size());
    big_lens.resize(args.size());
    av = big_argv.data();
    al = big_lens.data();
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    av[i] = args[i].data();
    al[i] = args[i].size();
  }
  if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), av, al) != REDIS_OK) return fault("queue for");
  return {};
}

store::Result Connection::flush() {
  if (ctx_ == nullptr) return store::Result::failure(store::Status::unavailable, "not connected");
  int done = 0;
  while (!done) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return fault("write to");
  }
  return {};
}

store::Result Connection::receive(Reply& out) {
  if (ctx_ == nullptr) return store::Result::failure(store::Status::unavailable, "not connected");
  while (true) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) return fault("read from");
    convert(static_cast<redisReply*>(raw), out);
    freeReplyObject(raw);
    if (setup_names_.empty()) return {};
    const std::string name = std::move(setup_names_.front());
    setup_names_.erase(setup_names_.begin());
    if (out.is_error()) {
      // AUTH's arguments are never repeated: only the server's words.
      std::string why = name + " refused by " + where_.text() + ": " + out.str;
      close();
      return store::Result::failure(store::Status::unavailable, std::move(why));
    }
  }
}

}  // namespace redis
