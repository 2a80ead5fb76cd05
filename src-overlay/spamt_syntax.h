// spamt_syntax.h: the text of control/spamt and control/relaylimits.
//
// parse_spamt() reads control/spamt, whose lines are either native
//     IDENTITY SETTING...          192.0.2.0/24 rcpt=100/1h,1000/1d st=2000
// or spamthrottle 2.x lines
//     ipblock:dir:st:stmax:flush:rcpt:tg:tg_resp:
// and parse_relaylimits() reads the relaylimits file of rcptcheck-overlimit
//     key:N          (":N" is the default)
// Each good line becomes one Definition: a canonical identity with the
// settings the line gives, and where it came from ("control/spamt:12").
// Every bad line gives one error Diagnostic; parsing goes on, so the admin
// sees all of them at once. Combining definitions (duplicates, the default,
// relaylimits against spamt) is spamt_compile.h's job.
//
// doc/spamt.5 is the reference for the syntax; this is its implementation.
// Used by qmail-newspamt, the unit tests and the fuzzer; never by qmail-smtpd.

#ifndef QT_SPAMT_SYNTAX_H
#define QT_SPAMT_SYNTAX_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ip_address.h"
#include "spamt_settings.h"

namespace spamt {

// Where a definition came from, which decides how duplicates combine.
enum class Source : std::uint8_t {
  native,        // IDENTITY SETTING... in control/spamt
  spamthrottle,  // ipblock:dir:st:stmax:flush:rcpt:tg:tg_resp: in control/spamt
  relaylimits,   // key:N in control/relaylimits
};

struct Diagnostic {
  std::string where;    // "control/spamt:12", or a file name alone
  std::string message;  // what is wrong, one line
  bool warning = false;

  // "control/spamt:12: message" or "control/spamt:12: warning: message"
  std::string text() const;
};

// The longest group name accepted (bytes); names: spamt::name_max.
constexpr std::size_t group_max = 64;
// The longest teergrube continuation text (a reply line stays short).
constexpr std::size_t tgtext_max = 200;

// An identity in canonical form.
struct Identity {
  Kind kind = Kind::fallback;
  // user: "alice@example.com" or "alice"; domain: "example.com" (lower case);
  // empty for the others.
  std::string name;
  // address and network kinds; an address has the full prefix.
  ip::Network network;

  // The text an admin recognises: "alice@example.com", "@example.com",
  // "192.0.2.7", "2001:db8::/32", "default".
  std::string text() const;
  // The key of the budget this identity's entry counts in: "u:alice@example.com",
  // "d:example.com", "a:192.0.2.7", "n:192.0.2.0/24"; empty for default.
  std::string budget_key() const;
  bool operator==(const Identity&) const = default;
};

// One line's worth of settings for one identity (owning).
struct Definition {
  Identity identity;
  Source source = Source::native;
  std::string origin;  // "control/spamt:12"

  std::optional<Relay> relay;
  std::optional<Teergrube> teergrube;
  std::string tgtext;  // when teergrube->set has field::tgtext
  std::string group;   // when teergrube->set has field::group
  std::optional<Windows> authfail;
  std::optional<Client> client;
};

struct ParsedFile {
  std::vector<Definition> definitions;  // in file order
  std::vector<Diagnostic> diagnostics;  // errors and warnings, in file order

  bool ok() const noexcept;  // no errors (warnings allowed)
};

// control/spamt: native and spamthrottle lines. `filename` is only used in
// origins and diagnostics.
ParsedFile parse_spamt(std::string_view text, std::string_view filename);

// control/relaylimits of rcptcheck-overlimit.
ParsedFile parse_relaylimits(std::string_view text, std::string_view filename);

// --- pieces, for the parsers and the tests ----------------------------------
// Each returns nothing and sets *error (one line, no location) on bad input.

// A native identity: alice@example.com, user:alice, @example.com, 192.0.2.7,
// 192.0.2.0/24, 2001:db8::/32, default. Case is folded (ASCII lower case).
std::optional<Identity> parse_identity(std::string_view word, std::string* error);

// "100/1h,1000/1d", "0" (no limit), "0/1d". Sorted shortest window first.
std::optional<Windows> parse_windows(std::string_view value, std::string* error);

// "30s", "10m", "1h", "1d", "2w", "h" (= 1h): seconds, 1s .. 366d.
std::optional<std::uint32_t> parse_period(std::string_view value, std::string* error);

}  // namespace spamt

#endif
