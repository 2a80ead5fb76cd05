// smtpd_tls.cpp: the extern "C" facade declared in smtpd_tls.h.
//
// It reads the configuration (environment and control files), owns the one
// tls::Server of the process and writes the log lines. Overlay C++ is built
// without exceptions: every entry point is noexcept and errors are values.

#include "smtpd_tls.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <unistd.h>

#include "control_file.h"
#include "logline.h"
#include "tls.h"

namespace {

constexpr const char* certificate = "control/servercert.pem";

// Constructed on first use (no global constructor) by what needs it:
// asking whether TLS is active does not, so that a session without TLS
// never builds it.
bool server_built = false;

tls::Server& server() noexcept {
  static tls::Server s;
  server_built = true;
  return s;
}

// An environment switch: on when set, unless it is "0".
bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, "0") != 0;
}

void log_tls(std::string_view event, std::string_view detail) {
  std::string line = "tls: ";
  line.append(event).append(" ip ").append(logline::remote_ip());
  if (!detail.empty()) line.append(" ").append(detail);
  logline::emit(line);
}

std::string cipher_config() {
  const char* env = std::getenv("TLSCIPHERS");
  if (env != nullptr && *env != '\0') return env;
  control_file::Contents c = control_file::read("control/tlsserverciphers");
  std::string joined;
  for (std::string_view line : control_file::lines(c.text)) {
    if (!joined.empty()) joined += ':';
    joined += line;
  }
  return joined;
}

}  // namespace

extern "C" int smtpd_tls_offer(void) noexcept {
  if (env_on("DISABLETLS")) return 0;
  if (access(certificate, R_OK) == 0) return 1;
  // there, but qmail-smtpd's user cannot read it: say so, or nobody will know
  if (errno != ENOENT) log_tls("not offered", std::string("reason cannot read ") + certificate + ": " + std::strerror(errno));
  return 0;
}

extern "C" int smtpd_tls_smtps(void) noexcept { return env_on("SMTPS") ? 1 : 0; }

extern "C" int smtpd_tls_prepare(void) noexcept {
  tls::Settings settings;
  settings.certificate = certificate;
  settings.ciphers = cipher_config();
  if (server().prepare(settings)) return 1;
  log_tls("unavailable", "reason " + logline::text(server().error()));
  return 0;
}

extern "C" int smtpd_tls_handshake(int timeout) noexcept {
  tls::Server& s = server();
  if (!s.handshake(0, 1, timeout)) {
    log_tls("handshake failed", "reason " + logline::text(s.error()));
    return 0;
  }
  // a certificate of its own for the name the client asked for (SNI) that
  // cannot be used: the default one was served instead
  if (!s.sni_error().empty()) log_tls("sni certificate unusable", "reason " + logline::text(s.sni_error()));
  std::string started = "version " + s.version() + " cipher " + s.cipher();
  if (!s.sni_certificate().empty()) started += " certificate " + logline::text(s.sni_certificate());
  log_tls("started", started);
  return 1;
}

extern "C" int smtpd_tls_active(void) noexcept { return server_built && server().active() ? 1 : 0; }

extern "C" int smtpd_tls_read(int timeout, char* buf, int len) noexcept { return server().read(timeout, buf, len); }

extern "C" int smtpd_tls_read_waiting(char* buf, int len) noexcept {
  return smtpd_tls_active() ? server().read_waiting(buf, len) : 0;
}

extern "C" int smtpd_tls_write(int timeout, const char* buf, int len) noexcept {
  return server().write(timeout, buf, len);
}

extern "C" void smtpd_tls_close(void) noexcept {
  if (server_built) server().close(5);
}
