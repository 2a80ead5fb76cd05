// auth.cpp: see auth.h.

#include "auth.h"

#include <string.h>

#include "base64.h"
#include "helpers.h"

namespace auth {

namespace {

constexpr std::string_view reply_ok = "235 2.7.0 authentication successful\r\n";
constexpr std::string_view reply_plain_go = "334 \r\n";
constexpr std::string_view reply_username = "334 VXNlcm5hbWU6\r\n";  // "Username:"
constexpr std::string_view reply_password = "334 UGFzc3dvcmQ6\r\n";  // "Password:"
constexpr std::string_view reply_unimpl = "502 unimplemented (#5.5.1)\r\n";  // stock's
constexpr std::string_view reply_need_tls = "538 5.7.11 encryption required for requested authentication mechanism\r\n";
constexpr std::string_view reply_twice = "503 5.5.1 already authenticated\r\n";
constexpr std::string_view reply_in_mail = "503 5.5.1 AUTH not permitted during a mail transaction\r\n";
constexpr std::string_view reply_no_exchange = "503 5.5.1 no AUTH exchange in progress\r\n";
constexpr std::string_view reply_syntax = "501 5.5.4 syntax error in AUTH command\r\n";
constexpr std::string_view reply_mechanism = "504 5.5.4 unrecognized authentication mechanism\r\n";
constexpr std::string_view reply_decode = "501 5.5.2 cannot decode response\r\n";
constexpr std::string_view reply_cancelled = "501 5.0.0 authentication cancelled\r\n";
constexpr std::string_view reply_too_long = "500 5.5.6 authentication exchange line is too long\r\n";
constexpr std::string_view reply_refused = "535 5.7.8 authentication credentials invalid\r\n";
constexpr std::string_view reply_temporary = "454 4.7.0 temporary authentication failure\r\n";
constexpr std::string_view reply_too_many = "421 4.7.0 too many authentication failures, closing connection\r\n";
constexpr std::string_view reply_required = "530 5.7.0 authentication required\r\n";
constexpr std::string_view reply_starttls_first = "530 5.7.0 must issue a STARTTLS command first\r\n";

using helpers::iequals;

// The next space-separated word of `s`, removed from it.
std::string_view word(std::string_view& s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  std::size_t end = s.find(' ');
  std::string_view w = s.substr(0, end);
  s.remove_prefix(end == std::string_view::npos ? s.size() : end);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return w;
}

bool has_control_bytes(std::string_view s) {
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

}  // namespace

Config parse_config(bool have_checker, const char* smtpauth, const char* forcetls) {
  Config c;
  c.have_checker = have_checker;
  c.mode = Mode::on;
  if (smtpauth != nullptr && smtpauth[0] == '!') c.mode = Mode::required;
  if (smtpauth != nullptr && smtpauth[0] == '-') c.mode = Mode::off;
  c.force_tls = !(forcetls != nullptr && std::string_view(forcetls) == "0");
  return c;
}

void Secret::wipe() noexcept {
  explicit_bzero(s_.data(), s_.capacity());
  s_.clear();
}

bool Session::offered(bool tls) const noexcept {
  return config_.mode != Mode::off && config_.have_checker && (tls || !config_.force_tls);
}

std::optional<std::string_view> Session::refuse_mail(bool tls) const noexcept {
  if (config_.mode != Mode::required || authenticated_) return std::nullopt;
  if (config_.have_checker && config_.force_tls && !tls) return reply_starttls_first;
  return reply_required;
}

std::string_view Session::mechanism() const noexcept {
  switch (mech_) {
    case Mech::plain: return "PLAIN";
    case Mech::login: return "LOGIN";
    case Mech::none: break;
  }
  return "-";
}

Outcome Session::begin(std::string_view arg, bool in_transaction, bool tls) {
  await_ = Await::nothing;
  mech_ = Mech::none;
  reason_ = {};
  user_.clear();
  password_.wipe();
  decoded_.wipe();
  if (config_.mode == Mode::off || !config_.have_checker) return {Step::error, reply_unimpl};
  if (!offered(tls)) return {Step::error, reply_need_tls};
  if (authenticated_) return {Step::error, reply_twice};
  if (in_transaction) return {Step::error, reply_in_mail};
  if (arg.size() > line_max) return {Step::error, reply_too_long};

  std::string_view rest = arg;
  std::string_view name = word(rest);
  std::string_view initial = word(rest);
  if (name.empty() || !rest.empty()) return {Step::error, reply_syntax};
  if (iequals(name, "PLAIN")) {
    mech_ = Mech::plain;
    if (initial.empty()) {
      await_ = Await::plain_response;
      return {Step::more, reply_plain_go};
    }
    return plain_response(initial == "=" ? std::string_view() : initial);
  }
  if (iequals(name, "LOGIN")) {
    mech_ = Mech::login;
    if (initial.empty()) {
      await_ = Await::login_user;
      return {Step::more, reply_username};
    }
    return login_user(initial == "=" ? std::string_view() : initial);
  }
  return {Step::error, reply_mechanism};
}

Outcome Session::next(std::string_view line) {
  if (await_ == Await::nothing) return {Step::error, reply_no_exchange};
  if (line.size() > line_max) return abort(reply_too_long);
  if (line == "*") return abort(reply_cancelled);
  switch (await_) {
    case Await::plain_response: return plain_response(line);
    case Await::login_user: return login_user(line);
    case Await::login_password: return login_password(line);
    case Await::nothing: break;
  }
  return {Step::error, reply_no_exchange};
}

Outcome Session::plain_response(std::string_view text) {
  // authzid NUL authcid NUL passwd (RFC 4616)
  if (!base64::decode(text, decoded_.str())) return abort(reply_decode);
  std::string_view d = decoded_.str();
  std::size_t first = d.find('\0');
  std::size_t second = first == std::string_view::npos ? first : d.find('\0', first + 1);
  if (second == std::string_view::npos) return abort(reply_decode);
  std::string_view authzid = d.substr(0, first);
  user_.assign(d.substr(first + 1, second - first - 1));
  password_.str().assign(d.substr(second + 1));
  // We cannot tell whether one user may act as another: only "as himself".
  bool as_other = !authzid.empty() && authzid != user_;
  decoded_.wipe();
  if (as_other) return refuse("authorization identity");
  return credentials_ready();
}

Outcome Session::login_user(std::string_view text) {
  if (!base64::decode(text, decoded_.str())) return abort(reply_decode);
  user_.assign(decoded_.str());
  decoded_.wipe();
  await_ = Await::login_password;
  return {Step::more, reply_password};
}

Outcome Session::login_password(std::string_view text) {
  if (!base64::decode(text, password_.str())) return abort(reply_decode);
  return credentials_ready();
}

Outcome Session::credentials_ready() {
  await_ = Await::nothing;
  if (user_.empty() || user_.size() > user_max || has_control_bytes(user_)) return refuse("invalid user name");
  if (password_.str().empty()) return refuse("empty password");
  if (password_.str().size() > password_max) return refuse("password too long");
  if (password_.str().find('\0') != std::string::npos) return refuse("invalid password");
  return {Step::check, {}};
}

Outcome Session::finish(Verdict verdict) {
  password_.wipe();
  switch (verdict) {
    case Verdict::accepted:
      authenticated_ = true;
      return {Step::ok, reply_ok};
    case Verdict::temporary:
      return {Step::error, reply_temporary};
    case Verdict::refused:
      break;
  }
  return refuse({});
}

Outcome Session::refuse(std::string_view reason) {
  await_ = Await::nothing;
  reason_ = reason;
  password_.wipe();
  decoded_.wipe();
  ++failures_;
  // a growing delay: the n-th failure of the session waits n seconds
  if (config_.failure_limit != 0 && failures_ >= config_.failure_limit)
    return {Step::drop, reply_too_many, failures_};
  return {Step::fail, reply_refused, failures_};
}

Outcome Session::abort(std::string_view reply) {
  await_ = Await::nothing;
  password_.wipe();
  decoded_.wipe();
  return {Step::error, reply};
}

std::string identity(std::string_view user, std::string_view default_domain) {
  std::string id(user);
  if (id.find('@') == std::string::npos && !default_domain.empty()) {
    id += '@';
    id += default_domain;
  }
  return id;
}

}  // namespace auth
