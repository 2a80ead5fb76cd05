// tls.cpp: see tls.h.

#include "tls.h"

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "helpers.h"
#include "openssl_loader.h"

namespace tls {

namespace {

long now_ms() { return static_cast<long>(helpers::monotonic_ms()); }

bool separator(char c) { return c == ':' || c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

void append(std::string& list, std::string_view entry) {
  if (!list.empty()) list += ':';
  list += entry;
}

bool set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  return flags != -1 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != -1;
}

}  // namespace

Ciphers split_ciphers(std::string_view config) {
  Ciphers c;
  while (!config.empty()) {
    std::size_t i = 0;
    while (i < config.size() && !separator(config[i])) ++i;
    std::string_view entry = config.substr(0, i);
    config.remove_prefix(i < config.size() ? i + 1 : i);
    if (entry.empty()) continue;
    append(entry.substr(0, 4) == "TLS_" ? c.tls13 : c.tls12, entry);
  }
  return c;
}

std::string sni_file_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return {};
  std::string name;
  name.reserve(host.size() + 4);
  char previous = '.';
  for (char c : host) {
    c = helpers::lower(c);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok || (c == '.' && previous == '.')) return {};
    name += c;
    previous = c;
  }
  if (previous == '.') return {};
  return name + ".pem";
}

bool Server::prepare(const Settings& settings) {
  if (ctx_ != nullptr) return true;
  Loaded loaded = load_openssl();
  if (loaded.lib == nullptr) {
    error_ = loaded.error;
    return false;
  }
  const OpenSsl& o = *loaded.lib;
  lib_ = loaded.lib;
  settings_ = settings;
  o.ERR_clear_error();
  if (o.OPENSSL_init_ssl(0, nullptr) != 1) {  // also reads openssl.cnf, the system's policy
    error_ = "cannot initialise OpenSSL: " + openssl_error(0, SSL_ERROR_SSL);
    return false;
  }
  SSL_CTX* ctx = make_context(settings.certificate, error_);
  if (ctx == nullptr) return false;
  if (settings.sni_directory != nullptr && *settings.sni_directory != '\0') {
    o.SSL_CTX_callback_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB, reinterpret_cast<void (*)()>(&on_server_name));
    o.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG, 0, this);
  }
  SSL* ssl = o.SSL_new(ctx);
  if (ssl == nullptr) {
    error_ = "cannot make a TLS session: " + openssl_error(0, SSL_ERROR_SSL);
    o.SSL_CTX_free(ctx);  // a client may try STARTTLS again
    return false;
  }
  ctx_ = ctx;  // kept for the life of the process
  ssl_ = ssl;
  return true;
}

SSL_CTX* Server::make_context(const char* certificate, std::string& why) {
  const OpenSsl& o = *lib_;
  SSL_CTX* ctx = o.SSL_CTX_new(o.TLS_server_method());
  if (ctx == nullptr) {
    why = "cannot make a TLS context: " + openssl_error(0, SSL_ERROR_SSL);
    return nullptr;
  }
  // freed when it cannot be made as asked
  struct FreeOnFailure {
    const OpenSsl& o;
    SSL_CTX*& ctx;
    ~FreeOnFailure() {
      if (ctx != nullptr) o.SSL_CTX_free(ctx);
    }
  } guard{o, ctx};
  // TLS 1.2 at least; a stricter system-wide minimum (openssl.cnf) stays
  long min = o.SSL_CTX_ctrl(ctx, SSL_CTRL_GET_MIN_PROTO_VERSION, 0, nullptr);
  if (min < TLS1_2_VERSION && o.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, nullptr) != 1) {
    why = "cannot require TLS 1.2: " + openssl_error(0, SSL_ERROR_SSL);
    return nullptr;
  }
  // One process per session: no session cache or tickets to resume from,
  // and no renegotiation for a client to burn our CPU with.
  o.SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_NO_TICKET);
  o.SSL_CTX_set_num_tickets(ctx, 0);
  o.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_SESS_CACHE_MODE, SSL_SESS_CACHE_OFF, nullptr);
  o.SSL_CTX_ctrl(ctx, SSL_CTRL_MODE,
                 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS,
                 nullptr);
  o.SSL_CTX_ctrl(ctx, SSL_CTRL_SET_DH_AUTO, 1, nullptr);

  Ciphers ciphers = split_ciphers(settings_.ciphers);
  if (!ciphers.tls12.empty() && o.SSL_CTX_set_cipher_list(ctx, ciphers.tls12.c_str()) != 1) {
    why = "no usable TLS 1.2 cipher in \"" + ciphers.tls12 + "\": " + openssl_error(0, SSL_ERROR_SSL);
    return nullptr;
  }
  if (!ciphers.tls13.empty() && o.SSL_CTX_set_ciphersuites(ctx, ciphers.tls13.c_str()) != 1) {
    why = "no usable TLS 1.3 suite in \"" + ciphers.tls13 + "\": " + openssl_error(0, SSL_ERROR_SSL);
    return nullptr;
  }
  if (o.SSL_CTX_use_certificate_chain_file(ctx, certificate) != 1 ||
      o.SSL_CTX_use_PrivateKey_file(ctx, certificate, SSL_FILETYPE_PEM) != 1 ||
      o.SSL_CTX_check_private_key(ctx) != 1) {
    why = std::string("cannot use ") + certificate + ": " + openssl_error(0, SSL_ERROR_SSL);
    return nullptr;
  }
  SSL_CTX* made = ctx;
  ctx = nullptr;  // kept
  return made;
}

// OpenSSL calls this during the handshake with the name the client asked
// for. A name with a certificate file of its own gets a context with that
// certificate; any other name, or a file that cannot be used (recorded for
// the log), the default certificate. The handshake goes on either way.
int Server::on_server_name(SSL* ssl, int*, void* arg) {
  Server& self = *static_cast<Server*>(arg);
  const OpenSsl& o = *self.lib_;
  const char* host = o.SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (host == nullptr || self.sni_ctx_ != nullptr) return SSL_TLSEXT_ERR_OK;
  const std::string file = sni_file_name(host);
  if (file.empty()) return SSL_TLSEXT_ERR_OK;
  const std::string path = std::string(self.settings_.sni_directory) + "/" + file;
  if (access(path.c_str(), F_OK) != 0) return SSL_TLSEXT_ERR_OK;  // no certificate of its own
  SSL_CTX* ctx = self.make_context(path.c_str(), self.sni_error_);
  if (ctx == nullptr) return SSL_TLSEXT_ERR_OK;
  o.SSL_set_SSL_CTX(ssl, ctx);
  self.sni_ctx_ = ctx;
  self.sni_certificate_ = path;
  return SSL_TLSEXT_ERR_OK;
}

template <class Op>
int Server::until_done(int timeout, Op op, Wait& end) {
  long deadline = now_ms() + static_cast<long>(timeout) * 1000;
  for (;;) {
    lib_->ERR_clear_error();
    int r = op();
    if (r > 0) return r;
    end = wait_for(r, deadline);
    if (end != Wait::again) return 0;
  }
}

bool Server::handshake(int rfd, int wfd, int timeout) {
  if (ssl_ == nullptr) {
    error_ = "TLS is not prepared";
    return false;
  }
  if (!set_nonblocking(rfd) || !set_nonblocking(wfd)) {
    error_ = std::string("cannot make the connection non-blocking: ") + std::strerror(errno);
    return false;
  }
  rfd_ = rfd;
  wfd_ = wfd;
  lib_->SSL_set_rfd(ssl_, rfd);
  lib_->SSL_set_wfd(ssl_, wfd);
  Wait end;
  if (until_done(timeout, [this] { return lib_->SSL_accept(ssl_); }, end) == 0) return false;
  active_ = true;
  return true;
}

Server::Wait Server::wait_for(int ret, long deadline_ms) {
  int saved_errno = errno;
  int e = lib_->SSL_get_error(ssl_, ret);
  pollfd p{};
  if (e == SSL_ERROR_WANT_READ) {
    p.fd = rfd_;
    p.events = POLLIN;
  } else if (e == SSL_ERROR_WANT_WRITE) {
    p.fd = wfd_;
    p.events = POLLOUT;
  } else {
    errno = saved_errno;
    error_ = openssl_error(ret, e);
    errno = e == SSL_ERROR_ZERO_RETURN ? 0 : EPROTO;
    return e == SSL_ERROR_ZERO_RETURN ? Wait::done : Wait::failed;
  }
  for (;;) {
    long left = deadline_ms - now_ms();
    if (left <= 0) break;
    int r = poll(&p, 1, left > 60000 ? 60000 : static_cast<int>(left));
    if (r > 0) return Wait::again;
    if (r == -1 && errno != EINTR) {
      error_ = std::string("poll: ") + std::strerror(errno);
      return Wait::failed;
    }
  }
  error_ = "timeout";
  errno = ETIMEDOUT;
  return Wait::failed;
}

int Server::read(int timeout, char* buf, int len) {
  if (!active_) {
    errno = EBADF;
    return -1;
  }
  Wait end;
  int r = until_done(timeout, [&] { return lib_->SSL_read(ssl_, buf, len); }, end);
  if (r > 0 || end == Wait::done) return r;
  return errno == ETIMEDOUT ? -1 : 0;  // a broken stream ends like EOF
}

int Server::read_waiting(char* buf, int len) {
  if (!active_) return 0;
  if (lib_->SSL_pending(ssl_) <= 0) {  // nothing decrypted left: any input on the socket?
    pollfd p{};
    p.fd = rfd_;
    p.events = POLLIN;
    if (poll(&p, 1, 0) <= 0) return 0;
  }
  // The socket is non-blocking (handshake()): part of a record is read into
  // OpenSSL's buffer and SSL_read answers "want read" instead of waiting.
  lib_->ERR_clear_error();
  int r = lib_->SSL_read(ssl_, buf, len);
  return r > 0 ? r : 0;
}

int Server::write(int timeout, const char* buf, int len) {
  if (!active_) {
    errno = EBADF;
    return -1;
  }
  Wait end;
  int r = until_done(timeout, [&] { return lib_->SSL_write(ssl_, buf, len); }, end);
  if (r > 0) return r;
  if (errno != ETIMEDOUT) errno = EPIPE;
  return -1;
}

void Server::close(int timeout) {
  if (!active_) return;
  active_ = false;
  // close_notify: SSL_shutdown returns 0 once it is sent; the client's own
  // close_notify is not awaited
  Wait end;
  until_done(timeout, [this] { return lib_->SSL_shutdown(ssl_) >= 0 ? 1 : -1; }, end);
}

std::string Server::version() const {
  const char* v = ssl_ != nullptr ? lib_->SSL_get_version(ssl_) : nullptr;
  return v != nullptr ? v : "-";
}

std::string Server::cipher() const {
  const SSL_CIPHER* c = ssl_ != nullptr ? lib_->SSL_get_current_cipher(ssl_) : nullptr;
  const char* name = c != nullptr ? lib_->SSL_CIPHER_get_name(c) : nullptr;
  return name != nullptr ? name : "-";
}

std::string Server::openssl_error(int ret, int ssl_error) {
  int saved_errno = errno;
  unsigned long code = lib_->ERR_get_error();
  if (code != 0) {
    char text[256];
    lib_->ERR_error_string_n(code, text, sizeof text);
    lib_->ERR_clear_error();
    return text;
  }
  if (ssl_error == SSL_ERROR_ZERO_RETURN || (ssl_error == SSL_ERROR_SYSCALL && (ret == 0 || saved_errno == 0)))
    return "connection closed by the client";
  if (ssl_error == SSL_ERROR_SYSCALL) return std::strerror(saved_errno);
  return "TLS error " + std::to_string(ssl_error);
}

}  // namespace tls
