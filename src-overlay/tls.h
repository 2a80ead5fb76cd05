// tls.h: one TLS server session on qmail-smtpd's descriptors.
//
// tls::Server loads OpenSSL (openssl_loader.h) and the certificate only when
// a session asks for TLS, does the handshake, and then reads and writes with
// the same timeouts qmail-smtpd's timeoutread()/timeoutwrite() give plain
// sessions. TLS 1.2 is the oldest version accepted. The socket is switched to
// non-blocking mode, so a client that stalls half-way through a record costs
// no more than the timeout.

#ifndef QT_TLS_H
#define QT_TLS_H

#include <string>
#include <string_view>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace tls {

struct OpenSsl;

// A cipher configuration (control/tlsserverciphers or TLSCIPHERS) split for
// OpenSSL: names beginning with "TLS_" are TLS 1.3 suites, the rest the
// TLS 1.2 cipher list. Lines and ':' separate entries; an empty part means
// OpenSSL's defaults for that version.
struct Ciphers {
  std::string tls12;
  std::string tls13;
};
Ciphers split_ciphers(std::string_view config);

struct Settings {
  const char* certificate = "control/servercert.pem";  // certificate chain and key
  std::string ciphers;                                 // as in the control file; "" = defaults
  // SNI: the certificate for a name the client asks for is DIR/NAME.pem
  // (NAME in lower case) when that file exists; else `certificate`. "" or
  // null: off. Not owned, as `certificate`: a literal, so that a session
  // that never starts TLS allocates nothing here.
  const char* sni_directory = "control/servercerts";
};

// The file name an SNI host name maps to ("mail.example.com" ->
// "mail.example.com.pem"), or "" for a name that is not a plain DNS name
// (letters, digits, '-', '.'; no empty label; at most 253 bytes): such a
// name gets the default certificate and never reaches the file system.
std::string sni_file_name(std::string_view host);

class Server {
 public:
  Server() = default;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads OpenSSL and the certificate. false: error() says why.
  bool prepare(const Settings& settings);
  // The handshake on descriptors rfd/wfd within timeout seconds.
  bool handshake(int rfd, int wfd, int timeout);
  bool active() const noexcept { return active_; }
  // Like read(2)/write(2) with timeoutread()'s and timeoutwrite()'s timeout:
  // > 0 bytes; 0 end of stream; -1 with errno (ETIMEDOUT on timeout).
  int read(int timeout, char* buf, int len);
  int write(int timeout, const char* buf, int len);
  // What can be read now without waiting: > 0 bytes the client sent that
  // OpenSSL has buffered or can decrypt from whole records already on the
  // socket; 0 when nothing more is at hand - no input, only part of a
  // record (kept for the next read()), or an end that read() will report.
  int read_waiting(char* buf, int len);
  // Sends close_notify, waiting at most timeout seconds.
  void close(int timeout);

  const std::string& error() const noexcept { return error_; }
  std::string version() const;
  std::string cipher() const;
  // After the handshake: the certificate file served when SNI chose one
  // ("" for the default), and why a name's certificate could not be used.
  const std::string& sni_certificate() const noexcept { return sni_certificate_; }
  const std::string& sni_error() const noexcept { return sni_error_; }

 private:
  enum class Wait { done, again, failed };
  Wait wait_for(int ret, long deadline_ms);
  // Calls op (one SSL_* call) until it returns > 0, waiting for the socket
  // as OpenSSL asks, at most timeout seconds. Returns op's result, or 0 and
  // how it ended in `end` (done: the client closed; failed: errno, error_).
  template <class Op>
  int until_done(int timeout, Op op, Wait& end);
  std::string openssl_error(int ret, int ssl_error);
  // A context with qmail-smtpd's TLS policy and the certificate file; null
  // with `why` set when it cannot be made.
  SSL_CTX* make_context(const char* certificate, std::string& why);
  static int on_server_name(SSL* ssl, int* alert, void* self);

  const OpenSsl* lib_ = nullptr;
  Settings settings_;
  SSL_CTX* ctx_ = nullptr;
  SSL_CTX* sni_ctx_ = nullptr;  // the context of the name's certificate, when SNI chose one (kept, as ctx_)
  std::string sni_certificate_;
  std::string sni_error_;
  SSL* ssl_ = nullptr;
  int rfd_ = -1;
  int wfd_ = -1;
  bool active_ = false;
  std::string error_;
};

}  // namespace tls

#endif
