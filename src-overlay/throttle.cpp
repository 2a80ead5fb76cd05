// throttle.cpp: the extern "C" facade declared in throttle.h.
//
// One SessionThrottle per qmail-smtpd process (a connection). It is built
// on first use - a function-local static, not a global constructor - and
// reads nothing until a decision needs it. Overlay C++ is compiled without
// exceptions (conf-cxx): errors come back as values; every entry point is
// noexcept.

#include "throttle.h"

#include <cstdlib>

#include <unistd.h>

#include "session_throttle.h"
#include "smtpd_teergrube.h"

throttle::SessionThrottle& throttle::current_session() noexcept {
  static throttle::SessionThrottle s;
  return s;
}

namespace {

// A session of a server without any throttling configured must cost what
// stock qmail-smtpd costs: until something may apply, the facade answers
// from these few bytes and touches nothing else of the overlay.
const char* client_ip = "";
bool client_relay = false;
bool started = false;     // the SessionThrottle knows the client
bool checked = false;     // nothing_configured() has looked
bool unconfigured = false;
bool clients_checked = false;  // no_client_limits() has looked
bool clients_unlimited = false;

throttle::SessionThrottle& session() noexcept {
  throttle::SessionThrottle& s = throttle::current_session();
  if (!started) {
    started = true;
    s.start(client_ip, client_relay);
  }
  return s;
}

// NOTHROTTLE is set, or there is no limits table: nothing can apply to this
// session (a table installed meanwhile applies to the next ones).
bool nothing_configured() noexcept {
  if (!checked) {
    checked = true;
    unconfigured = std::getenv("NOTHROTTLE") != nullptr || access("control/spamt.cdb", F_OK) != 0;
  }
  return unconfigured;
}

// Client limits (the greeting, tlsrate=): qmail-newspamt leaves
// control/spamt.clients exactly when some entry limits clients, so a server
// without client limits opens no table for them: one access() a session.
bool no_client_limits() noexcept {
  if (!clients_checked) {
    clients_checked = true;
    clients_unlimited = std::getenv("NOTHROTTLE") != nullptr || access("control/spamt.clients", F_OK) != 0;
  }
  return clients_unlimited || nothing_configured();
}

int decision(throttle::Decision d) noexcept {
  switch (d) {
    case throttle::Decision::defer: return THROTTLE_DEFER;
    case throttle::Decision::drop: return THROTTLE_DROP;
    default: return THROTTLE_OK;
  }
}

}  // namespace

extern "C" void throttle_session(const char* remoteip, int relayclient) noexcept {
  client_ip = remoteip ? remoteip : "";  // qmail-smtpd's, valid for the session
  client_relay = relayclient != 0;
  started = checked = clients_checked = false;
}

extern "C" int throttle_greeting(void) noexcept {
  if (no_client_limits()) return THROTTLE_OK;
  return decision(session().greeting());
}

// The greeting looked at control/spamt.clients already: a session without
// client limits pays nothing here.
extern "C" int throttle_inbound_rcpt(void) noexcept {
  if (client_relay || no_client_limits()) return THROTTLE_OK;
  return decision(session().inbound_rcpt());
}

extern "C" int throttle_tls(int smtps) noexcept {
  if (no_client_limits()) return THROTTLE_OK;
  return decision(session().tls(smtps != 0));
}

extern "C" int throttle_relaylimited(void) noexcept {
  if (nothing_configured()) return 0;
  return session().relay_limited() ? 1 : 0;
}

extern "C" int throttle_rcpt(void) noexcept { return decision(session().rcpt()); }

extern "C" void throttle_transaction(int queued) noexcept {
  if (started) session().end_transaction(queued != 0);
}

extern "C" const char* throttle_reply(void) noexcept { return session().reply().c_str(); }

extern "C" void throttle_exit(int status) noexcept {
  // Not twice (a refund that itself ran out of memory ends here again), and
  // not from inside a store operation, which cannot be entered again half-way
  // through: then the charges stay until their window passes.
  static bool refunding = false;
  if (started && !refunding && !throttle::current_session().store_busy()) {
    refunding = true;
    session().end_transaction(false);
  }
  if (started) session().end_session();
  _exit(status);
}

// cxx_runtime.cpp's fatal end (out of memory, a library precondition) is one
// more way out of qmail-smtpd: it gives back what was not queued, too.
extern "C" void cxx_runtime_exit(int status) noexcept { throttle_exit(status); }

extern "C" int throttle_auth_attempt(void) noexcept {
  if (nothing_configured()) return THROTTLE_OK;
  return decision(session().auth_attempt());
}

extern "C" int throttle_auth_failure(void) noexcept {
  if (nothing_configured()) return THROTTLE_OK;
  return decision(session().auth_failure());
}

extern "C" void throttle_user(const char* user) noexcept {
  client_relay = true;
  if (!nothing_configured()) session().set_user(user ? user : "");
}

namespace {

void (*teergrube_say)(const char*) = nullptr;
teergrube::DataResult teergrube_result;

void say_continuation() noexcept {
  teergrube_say(teergrube::line_text());  // qmail-smtpd's flush() ends the process when it cannot write
}

}  // namespace

extern "C" int throttle_pipelining(void) noexcept {
  if (nothing_configured()) return 1;
  return teergrube::offer_pipelining(session()) ? 1 : 0;
}

extern "C" int throttle_data(unsigned int rcpts, void (*say)(const char* line)) noexcept {
  teergrube_say = say;
  teergrube_result = {};
  if (nothing_configured()) return THROTTLE_OK;
  teergrube_result = teergrube::at_data(session(), rcpts, 0, say ? say_continuation : nullptr);
  return teergrube_result.client_gone ? THROTTLE_DROP : THROTTLE_OK;
}

extern "C" int throttle_data_continued(void) noexcept { return teergrube_result.continuations != 0; }

extern "C" int throttle_data_flush(void) noexcept { return teergrube_result.flush ? 1 : 0; }

extern "C" int throttle_input_pending(void) noexcept { return client_wait::input_pending(0) ? 1 : 0; }
