// throttle.cpp: the extern "C" facade declared in throttle.h.
//
// It holds the per-connection state qmail-smtpd hands over and turns C calls
// into calls on the C++ parts. Overlay C++ is compiled without exceptions
// (conf-cxx): errors come back as values, and every entry point is noexcept.

#include "throttle.h"

#include <string>

namespace {

struct Session {
  std::string remote_ip;
  bool relay_client = false;
  std::string user;  // the authenticated identity, user@domain; "" before AUTH
};

Session& session() noexcept {
  static Session s;  // constructed on first use: no global constructor
  return s;
}

}  // namespace

extern "C" void throttle_session(const char* remoteip, int relayclient) noexcept {
  Session& s = session();
  s.remote_ip = remoteip ? remoteip : "";
  s.relay_client = relayclient != 0;
}

// Not wired to the limits table and store yet: no authfail limit is
// configured, so AUTH is never refused here (smtpd_auth's own per-session
// limit still applies).
extern "C" int throttle_auth_attempt(void) noexcept { return THROTTLE_OK; }

extern "C" int throttle_auth_failure(void) noexcept { return THROTTLE_OK; }

extern "C" void throttle_user(const char* user) noexcept {
  Session& s = session();
  s.user = user ? user : "";
  s.relay_client = true;
}
