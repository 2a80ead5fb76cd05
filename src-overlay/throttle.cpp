// throttle.cpp: the extern "C" facade declared in throttle.h.
//
// It holds the per-connection state qmail-smtpd hands over and turns C calls
// into calls on the C++ parts. Nothing here may throw across the boundary:
// every entry point is noexcept and catches what the C++ below it throws.

#include "throttle.h"

#include <string>

namespace {

struct Session {
  std::string remote_ip;
  bool relay_client = false;
};

Session& session() noexcept {
  static Session s;  // constructed on first use: no global constructor
  return s;
}

}  // namespace

extern "C" void throttle_session(const char* remoteip, int relayclient) noexcept {
  try {
    Session& s = session();
    s.remote_ip = remoteip ? remoteip : "";
    s.relay_client = relayclient != 0;
  } catch (...) {
    // Out of memory while noting the client: nothing is throttled then.
  }
}
