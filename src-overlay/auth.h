// auth.h: the SMTP AUTH exchange (RFC 4954), PLAIN and LOGIN, as pure logic.
//
// auth::Session knows the configuration (SMTPAUTH, FORCETLS), walks one
// client through an exchange and counts failures; it takes the client's
// lines and returns the reply to send and what happens next. It does no I/O:
// the credentials it collects are checked by the caller (checkpassword.h),
// which hands the verdict back with finish(). Replies end in CRLF.

#ifndef QT_AUTH_H
#define QT_AUTH_H

#include <optional>
#include <string>
#include <string_view>

namespace auth {

// The longest line the client may send during an exchange (RFC 4954 4.).
constexpr std::size_t line_max = 12288;
// Limits of what checkpassword's descriptor 3 can carry (512 bytes in all).
constexpr std::size_t user_max = 255;
constexpr std::size_t password_max = 254;

enum class Mode { off, on, required };

struct Config {
  Mode mode = Mode::off;
  bool have_checker = false;        // a checkpassword program was given
  bool force_tls = true;            // no AUTH before TLS
  unsigned failure_limit = 3;       // the session ends at this many failures
};

// SMTPAUTH: unset or "" -> on, "!..." -> required, "-..." -> off, anything
// else (e.g. "+cram" from other patches) -> on. FORCETLS: on unless "0".
// Without a checkpassword program AUTH is never offered; "required" then
// still refuses MAIL (fail closed).
Config parse_config(bool have_checker, const char* smtpauth, const char* forcetls);

// A string that is wiped when it goes away (passwords, decoded responses).
class Secret {
 public:
  Secret() = default;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret() { wipe(); }
  void wipe() noexcept;
  std::string& str() noexcept { return s_; }
  const std::string& str() const noexcept { return s_; }

 private:
  std::string s_;
};

enum class Step {
  more,   // send reply(), read one line, call next()
  check,  // check user()/password() now, then call finish()
  ok,     // authenticated: send reply()
  fail,   // credentials refused: wait delay_seconds, send reply()
  error,  // protocol error or temporary failure: send reply(), nothing changed
  drop,   // too many failures: wait delay_seconds, send reply(), end the session
};

enum class Verdict { accepted, refused, temporary };

struct Outcome {
  Step step;
  std::string_view reply;
  unsigned delay_seconds = 0;
};

class Session {
 public:
  Session() = default;
  explicit Session(Config config) : config_(config) {}

  void configure(Config config) noexcept { config_ = config; }
  const Config& config() const noexcept { return config_; }
  // AUTH is announced in EHLO and accepted now.
  bool offered(bool tls) const noexcept;
  // MAIL must be refused with the returned reply (SMTPAUTH="!" before AUTH).
  std::optional<std::string_view> refuse_mail(bool tls) const noexcept;

  // "AUTH <arg>": arg is everything after the verb.
  Outcome begin(std::string_view arg, bool in_transaction, bool tls);
  // One line of the exchange, without its CRLF.
  Outcome next(std::string_view line);
  // The caller's verdict on user()/password() after Step::check.
  Outcome finish(Verdict verdict);

  bool authenticated() const noexcept { return authenticated_; }
  // The user of the current or last exchange (as the client gave it).
  const std::string& user() const noexcept { return user_; }
  const std::string& password() const noexcept { return password_.str(); }
  std::string_view mechanism() const noexcept;
  unsigned failures() const noexcept { return failures_; }
  // Why the last refusal happened without asking checkpassword, or "".
  std::string_view refusal_reason() const noexcept { return reason_; }

 private:
  enum class Mech { none, plain, login };
  enum class Await { nothing, plain_response, login_user, login_password };

  Outcome plain_response(std::string_view base64);
  Outcome login_user(std::string_view base64);
  Outcome login_password(std::string_view base64);
  Outcome credentials_ready();
  Outcome refuse(std::string_view reason);
  Outcome abort(std::string_view reply);

  Config config_;
  Mech mech_ = Mech::none;
  Await await_ = Await::nothing;
  bool authenticated_ = false;
  unsigned failures_ = 0;
  std::string user_;
  std::string_view reason_;
  Secret password_;
  Secret decoded_;
};

// The identity relay limits key on: user@domain. A name without '@' gets
// "@" + default_domain; with an empty default_domain it stays as it is.
std::string identity(std::string_view user, std::string_view default_domain);

}  // namespace auth

#endif
