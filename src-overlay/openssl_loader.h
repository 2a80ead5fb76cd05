// openssl_loader.h: OpenSSL's functions, resolved with dlopen()/dlsym().
//
// qmail-smtpd is exec'd once per connection; linking libssl/libcrypto would
// cost every connection ~2.4 ms of loading (doc/DESIGN.md, "Start-up cost").
// So nothing links against OpenSSL: its headers give the types, and the
// functions a TLS session calls are looked up here, by SONAME, the first time
// a session starts TLS. OpenSSL's function-like macros (SSL_CTX_set_mode,
// SSL_CTX_set_min_proto_version, ...) expand to SSL_CTX_ctrl, which is in
// the table; callers spell those out with the SSL_CTRL_* constants.

#ifndef QT_OPENSSL_LOADER_H
#define QT_OPENSSL_LOADER_H

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string>

namespace tls {

struct OpenSsl {
#define QT_OPENSSL_FUNCTIONS(X)                                                                  \
  X(OPENSSL_init_ssl) X(TLS_server_method) X(SSL_CTX_new) X(SSL_CTX_free) X(SSL_CTX_ctrl)        \
  X(SSL_CTX_set_options) X(SSL_CTX_set_num_tickets) X(SSL_CTX_set_cipher_list)                  \
  X(SSL_CTX_set_ciphersuites) X(SSL_CTX_use_certificate_chain_file)                             \
  X(SSL_CTX_use_PrivateKey_file) X(SSL_CTX_check_private_key) X(SSL_new) X(SSL_set_rfd)         \
  X(SSL_set_wfd) X(SSL_accept) X(SSL_read) X(SSL_pending) X(SSL_write) X(SSL_shutdown) X(SSL_get_error)        \
  X(SSL_get_version) X(SSL_get_current_cipher) X(SSL_CIPHER_get_name) X(ERR_get_error)          \
  X(ERR_error_string_n) X(ERR_clear_error) X(SSL_CTX_callback_ctrl) X(SSL_get_servername)         \
  X(SSL_set_SSL_CTX)
#define QT_OPENSSL_POINTER(name) decltype(&::name) name = nullptr;
  QT_OPENSSL_FUNCTIONS(QT_OPENSSL_POINTER)
#undef QT_OPENSSL_POINTER
};

struct Loaded {
  const OpenSsl* lib = nullptr;  // null when loading failed
  std::string error;             // why, for the log
};

// Loads libssl and libcrypto by the names given and resolves every function
// of the table into `table`. Nothing is kept: see load_openssl().
Loaded load_openssl_from(const char* libssl, const char* libcrypto, OpenSsl& table);

// The same for OpenSSL 3 by SONAME ("libssl.so.3", "libcrypto.so.3"), done
// once: the first successful result is kept for the life of the process.
Loaded load_openssl();

}  // namespace tls

#endif
