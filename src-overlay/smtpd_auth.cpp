// smtpd_auth.cpp: the extern "C" facade declared in smtpd_auth.h.
//
// It owns the session's auth::Session, runs checkpassword when an exchange
// has collected credentials, waits the failure delay and writes one log line
// per success or failure (user and client IP, never a password). Overlay C++
// is built without exceptions: every entry point is noexcept.

#include "smtpd_auth.h"

#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <string>

#include "auth.h"
#include "checkpassword.h"
#include "control_file.h"
#include "logline.h"

namespace {

struct State {
  auth::Session session;
  char** checkpassword = nullptr;
  unsigned timeout = 60;
  std::string reply;
  std::string identity;
};

State& state() noexcept {
  static State s;  // constructed on first use: no global constructor
  return s;
}

void pause_seconds(unsigned seconds) {
  timespec t{static_cast<time_t>(seconds), 0};
  while (nanosleep(&t, &t) == -1 && errno == EINTR) {
  }
}

void log_auth(std::string_view event, const auth::Session& s, std::string_view detail) {
  std::string line = "auth: ";
  line.append(event)
      .append(" user ")
      .append(logline::field(s.user()))
      .append(" ip ")
      .append(logline::remote_ip())
      .append(" mechanism ")
      .append(s.mechanism());
  if (!detail.empty()) line.append(" ").append(detail);
  logline::emit(line);
}

std::string default_domain() {
  std::string d = control_file::first_line("control/defaultdomain");
  if (d.empty()) d = control_file::first_line("control/me");
  return d;
}

int code(auth::Step step) {
  switch (step) {
    case auth::Step::ok: return SMTPD_AUTH_OK;
    case auth::Step::more: return SMTPD_AUTH_MORE;
    case auth::Step::fail: return SMTPD_AUTH_FAIL;
    case auth::Step::drop: return SMTPD_AUTH_DROP;
    case auth::Step::check:
    case auth::Step::error: break;
  }
  return SMTPD_AUTH_ERROR;
}

// Runs the checker when the exchange asks for it, then logs, waits and keeps
// the reply: the result for qmail-smtpd.
int settle(State& st, auth::Outcome o) {
  auth::Session& s = st.session;
  if (o.step == auth::Step::check) {
    checkpassword::Outcome c = checkpassword::run(st.checkpassword, s.user(), s.password(), st.timeout);
    switch (c.result) {
      case checkpassword::Result::accepted: o = s.finish(auth::Verdict::accepted); break;
      case checkpassword::Result::refused: o = s.finish(auth::Verdict::refused); break;
      case checkpassword::Result::temporary:
        o = s.finish(auth::Verdict::temporary);
        log_auth("temporary failure", s, "reason " + logline::text(c.problem));
        break;
    }
  }
  std::string why;
  if (!s.refusal_reason().empty()) why.append(" reason ").append(s.refusal_reason());
  std::string count = "failure " + std::to_string(s.failures()) + "/" + std::to_string(s.config().failure_limit);
  switch (o.step) {
    case auth::Step::ok:
      st.identity = auth::identity(s.user(), default_domain());
      log_auth("accepted", s, "identity " + logline::field(st.identity));
      break;
    case auth::Step::fail: log_auth("refused", s, count + why); break;
    case auth::Step::drop: log_auth("refused", s, count + why + ": 421"); break;
    default: break;
  }
  pause_seconds(o.delay_seconds);
  st.reply.assign(o.reply);
  return code(o.step);
}

}  // namespace

extern "C" int smtpd_auth_setup(char** checkpassword, int timeout) noexcept {
  State& st = state();
  bool have = checkpassword != nullptr && checkpassword[0] != nullptr;
  st.checkpassword = checkpassword;
  st.timeout = timeout > 0 ? static_cast<unsigned>(timeout) : 1;
  st.session.configure(auth::parse_config(have, std::getenv("SMTPAUTH"), std::getenv("FORCETLS")));
  return have && st.session.config().mode != auth::Mode::off ? 1 : 0;
}

extern "C" int smtpd_auth_offered(int tls) noexcept { return state().session.offered(tls != 0) ? 1 : 0; }

extern "C" const char* smtpd_auth_ehlo(void) noexcept { return "250-AUTH LOGIN PLAIN\r\n"; }

extern "C" int smtpd_auth_mail(int tls) noexcept {
  State& st = state();
  std::optional<std::string_view> refusal = st.session.refuse_mail(tls != 0);
  if (!refusal) return 0;
  st.reply.assign(*refusal);
  return 1;
}

extern "C" int smtpd_auth_begin(const char* arg, int intransaction, int tls) noexcept {
  State& st = state();
  return settle(st, st.session.begin(arg != nullptr ? arg : "", intransaction != 0, tls != 0));
}

extern "C" int smtpd_auth_next(const char* line, unsigned int len) noexcept {
  State& st = state();
  return settle(st, st.session.next(std::string_view(line != nullptr ? line : "", line != nullptr ? len : 0)));
}

extern "C" const char* smtpd_auth_reply(void) noexcept { return state().reply.c_str(); }

extern "C" const char* smtpd_auth_user(void) noexcept {
  const State& st = state();
  return st.session.authenticated() ? st.session.user().c_str() : nullptr;
}

extern "C" const char* smtpd_auth_identity(void) noexcept {
  const State& st = state();
  return st.session.authenticated() ? st.identity.c_str() : nullptr;
}
