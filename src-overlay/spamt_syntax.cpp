// spamt_syntax.cpp: see spamt_syntax.h and doc/spamt.5.

#include "spamt_syntax.h"

#include "text_syntax.h"

#include <algorithm>
#include <iterator>

namespace spamt {

namespace {

using text::is_digit;
using text::is_space;
using text::lower;
using text::lowered;
using text::parse_uint32;
using text::quoted;
using text::shown;
using text::trim;
using text::valid_domain;

// Printable ASCII but '"' and '\', or any byte >= 0x80 (UTF-8 logins).
bool valid_login(std::string_view u) noexcept {
  if (u.empty() || u.size() > name_max) return false;
  for (unsigned char c : u) {
    if (c >= 0x80) continue;
    if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\') return false;
  }
  return true;
}

bool valid_group(std::string_view g) noexcept {
  if (g.empty() || g.size() > group_max || g.front() == '/') return false;
  for (char c : g) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' || c == '_' ||
              c == '-' || c == '/';
    if (!ok) return false;
  }
  return true;
}

bool valid_text(std::string_view t) noexcept {
  for (unsigned char c : t)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

std::string location(std::string_view filename, std::size_t line) {
  return std::string(filename) + ":" + std::to_string(line);
}

// The lines of a file, numbered from 1, without their '\n'.
template <class F>
void for_each_line(std::string_view text, F&& f) {
  std::size_t number = 0;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    ++number;
    if (!f(number, line)) return;
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

// ---- native lines -----------------------------------------------------------

struct Setting {
  std::string key;
  std::string value;
  bool has_value = false;
};

// Splits a native line into words. A word is key, key=value or
// key="quoted value" (\" and \\ escape inside quotes); '#' at the start of
// a word begins a comment.
bool split_words(std::string_view line, std::vector<std::string>& words, std::string* error) {
  std::size_t i = 0;
  while (true) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i >= line.size() || line[i] == '#') return true;
    std::string word;
    bool in_quotes = false;
    bool was_quoted = false;
    while (i < line.size()) {
      char c = line[i];
      if (in_quotes) {
        if (c == '\\' && i + 1 < line.size() && (line[i + 1] == '"' || line[i + 1] == '\\')) {
          word += line[i + 1];
          i += 2;
          continue;
        }
        if (c == '"') {
          in_quotes = false;
          ++i;
          if (i < line.size() && !is_space(line[i])) {
            *error = "text after the closing quote in " + quoted(word);
            return false;
          }
          continue;
        }
        word += c;
        ++i;
        continue;
      }
      if (is_space(c)) break;
      if (c == '"') {
        if (was_quoted || word.empty() || word.back() != '=') {
          *error = "a quote may only start a value (key=\"...\")";
          return false;
        }
        in_quotes = true;
        was_quoted = true;
        // mark the value as quoted so that an empty "" stays a value
        ++i;
        continue;
      }
      word += c;
      ++i;
    }
    if (in_quotes) {
      *error = "unterminated quote";
      return false;
    }
    words.push_back(std::move(word));
  }
}

enum class Aspect : std::uint8_t { relay, teergrube, authfail, client };

// What a native setting sets and how its value is parsed: what
// LineParser::native() dispatches on.
enum class Handler : std::uint8_t {
  rcpt, msg, authfail,        // windows: "100/1h,1000/1d"
  exempt, each, unauthenticated,  // flags: no value
  action,                     // 451, 450 or 421
  yes_no,                     // flush=yes|no; tarpitrelay[=yes|no]
  number,                     // st=, stmax=, strcpt=, tg=, prefix4=, prefix6=: 0 .. max
  text,                       // tgtext="..."
  group,                      // group=NAME
  conn,                       // conn=N: 0 .. max
  client_windows,             // connrate=, inmsg=, ...: windows; bit: which (client_rate)
};

// The windows of a client setting (KeyInfo::bit of Handler::client_windows).
enum ClientRate : std::uint16_t { connrate, inmsg, inrcpt, tlsrate, authrate };

Windows& client_rate(Client& c, std::uint16_t which) noexcept {
  switch (which) {
    case ClientRate::connrate: return c.connrate;
    case ClientRate::inmsg: return c.inmsg;
    case ClientRate::inrcpt: return c.inrcpt;
    case ClientRate::tlsrate: return c.tlsrate;
    default: return c.authrate;
  }
}

enum class Value : std::uint8_t { required, none, optional };

struct KeyInfo {
  std::string_view name;
  Aspect aspect;
  Handler handler;
  Value value = Value::required;
  std::uint16_t bit = 0;  // teergrube: its field:: bit
  std::uint32_t max = 0;  // number: the largest value
};

constexpr std::uint32_t no_max = 0xffffffffu;

constexpr KeyInfo known_keys[] = {
    {"rcpt", Aspect::relay, Handler::rcpt},
    {"msg", Aspect::relay, Handler::msg},
    {"exempt", Aspect::relay, Handler::exempt, Value::none},
    {"action", Aspect::relay, Handler::action},
    {"each", Aspect::relay, Handler::each, Value::none},
    {"unauthenticated", Aspect::relay, Handler::unauthenticated, Value::none},
    {"st", Aspect::teergrube, Handler::number, Value::required, field::st, no_max},
    {"stmax", Aspect::teergrube, Handler::number, Value::required, field::stmax, no_max},
    {"flush", Aspect::teergrube, Handler::yes_no, Value::required, field::flush},
    {"strcpt", Aspect::teergrube, Handler::number, Value::required, field::strcpt, no_max},
    {"tg", Aspect::teergrube, Handler::number, Value::required, field::tg, no_max},
    {"tgtext", Aspect::teergrube, Handler::text, Value::required, field::tgtext},
    {"prefix4", Aspect::teergrube, Handler::number, Value::required, field::prefix4, 32},
    {"prefix6", Aspect::teergrube, Handler::number, Value::required, field::prefix6, 128},
    {"group", Aspect::teergrube, Handler::group, Value::required, field::group},
    {"tarpitrelay", Aspect::teergrube, Handler::yes_no, Value::optional, field::tarpitrelay},
    {"authfail", Aspect::authfail, Handler::authfail},
    {"conn", Aspect::client, Handler::conn, Value::required, 0, 1000000},
    {"connrate", Aspect::client, Handler::client_windows, Value::required, ClientRate::connrate},
    {"inmsg", Aspect::client, Handler::client_windows, Value::required, ClientRate::inmsg},
    {"inrcpt", Aspect::client, Handler::client_windows, Value::required, ClientRate::inrcpt},
    {"tlsrate", Aspect::client, Handler::client_windows, Value::required, ClientRate::tlsrate},
    {"authrate", Aspect::client, Handler::client_windows, Value::required, ClientRate::authrate},
};
static_assert(std::size(known_keys) <= 32, "LineParser::native() keeps the keys seen in 32 bits");

const KeyInfo* find_key(std::string_view k) noexcept {
  for (const KeyInfo& info : known_keys)
    if (info.name == k) return &info;
  return nullptr;
}

// Sets one numeric teergrube field (v within the field's range).
void set_number(Teergrube& t, std::uint16_t bit, std::uint32_t v) noexcept {
  switch (bit) {
    case field::st: t.st_ms = v; break;
    case field::stmax: t.stmax_ms = v; break;
    case field::strcpt: t.strcpt = v; break;
    case field::tg: t.tg_seconds = v; break;
    case field::prefix4: t.prefix4 = static_cast<std::uint8_t>(v); break;
    case field::prefix6: t.prefix6 = static_cast<std::uint8_t>(v); break;
  }
  t.set |= bit;
}

void set_flag(Teergrube& t, std::uint16_t bit, bool v) noexcept {
  if (bit == field::flush) t.flush = v;
  if (bit == field::tarpitrelay) t.tarpitrelay = v;
  t.set |= bit;
}

bool is_ip_kind(Kind k) noexcept { return k == Kind::address || k == Kind::network; }

std::optional<bool> parse_yes_no(std::string_view v) noexcept {
  if (v == "yes") return true;
  if (v == "no") return false;
  return std::nullopt;
}

struct LineParser {
  std::string_view filename;
  std::size_t number;
  ParsedFile& out;

  void error(std::string message) {
    out.diagnostics.push_back(Diagnostic{location(filename, number), std::move(message), false});
  }
  void warning(std::string message) {
    out.diagnostics.push_back(Diagnostic{location(filename, number), std::move(message), true});
  }

  void native(std::string_view line);
  void spamthrottle(std::string_view line);
  void relaylimits(std::string_view line);
};

void LineParser::native(std::string_view line) {
  std::vector<std::string> words;
  std::string err;
  if (!split_words(line, words, &err)) return error(err);
  if (words.empty()) return;
  std::optional<Identity> id = parse_identity(words[0], &err);
  if (!id) return error(err);
  if (words.size() == 1) return error("no settings for " + id->text());

  Definition def;
  def.identity = *id;
  def.source = Source::native;
  def.origin = location(filename, number);
  Relay relay;
  Teergrube tg;
  Windows authfail;
  Client client;
  bool has_relay = false, has_tg = false, has_authfail = false, has_client = false;
  bool given_rcpt = false, given_msg = false, given_action = false;
  std::uint32_t seen = 0;  // bits of known_keys already given
  std::size_t errors_before = out.diagnostics.size();
  const Kind kind = id->kind;
  const std::string who = id->text();

  for (std::size_t i = 1; i < words.size(); ++i) {
    std::string_view w = words[i];
    std::size_t eq = w.find('=');
    std::string_view key = w.substr(0, eq);
    bool has_value = eq != std::string_view::npos;
    std::string_view value = has_value ? w.substr(eq + 1) : std::string_view();
    const KeyInfo* info = find_key(key);
    if (info == nullptr) {
      error("unknown setting " + quoted(key));
      continue;
    }
    const std::uint32_t seen_bit = std::uint32_t{1} << (info - known_keys);
    if (seen & seen_bit) {
      error(std::string(info->name) + " is given twice (list several windows in one setting: rcpt=10/1m,100/1h)");
      continue;
    }
    seen |= seen_bit;
    if (info->aspect != Aspect::relay && !is_ip_kind(kind) &&
        kind != Kind::fallback) {
      error(std::string(info->name) + "= applies to IP entries and default only, not to " +
            std::string(kind_name(kind)) + " " + who);
      continue;
    }
    const std::string_view k = info->name;
    if (info->value == Value::none && has_value) {
      error(std::string(k) + " takes no value");
      continue;
    }
    if (info->value == Value::required && !has_value) {
      error(std::string(k) + " needs a value (" + std::string(k) + "=...)");
      continue;
    }
    std::string verr;
    switch (info->handler) {
      case Handler::rcpt:
      case Handler::msg:
      case Handler::authfail: {
        std::optional<Windows> ws = parse_windows(value, &verr);
        if (!ws) {
          error(std::string(k) + "=" + shown(value) + ": " + verr);
          continue;
        }
        if (info->handler == Handler::rcpt) {
          relay.rcpt = *ws;
          given_rcpt = has_relay = true;
        } else if (info->handler == Handler::msg) {
          relay.msg = *ws;
          given_msg = has_relay = true;
        } else {
          authfail = *ws;
          has_authfail = true;
        }
        break;
      }
      case Handler::exempt:
        relay.exempt = has_relay = true;
        break;
      case Handler::each:
        if (kind != Kind::network) {
          error("each applies to network entries only (default is already per client)");
          continue;
        }
        relay.each = true;
        break;
      case Handler::unauthenticated:
        if (!is_ip_kind(kind)) {
          error("unauthenticated applies to IP entries only");
          continue;
        }
        relay.unauthenticated = true;
        break;
      case Handler::action:
        if (value == "451" || value == "450" || value == "421") {
          relay.action = static_cast<std::uint16_t>(*parse_uint32(value));
          given_action = true;
        } else {
          error("action=" + shown(value) + ": must be 451, 450 or 421");
        }
        break;
      case Handler::yes_no: {
        std::optional<bool> yn = has_value ? parse_yes_no(value) : std::optional<bool>(true);
        if (!yn) {
          error(std::string(k) + "=" + shown(value) + ": must be yes or no");
          continue;
        }
        set_flag(tg, info->bit, *yn);
        has_tg = true;
        break;
      }
      case Handler::text:
        if (value.empty() || value.size() > tgtext_max || !valid_text(value)) {
          error("tgtext: must be 1 to " + std::to_string(tgtext_max) + " printable ASCII characters");
          continue;
        }
        def.tgtext = std::string(value);
        tg.set |= field::tgtext;
        has_tg = true;
        break;
      case Handler::group:
        if (!valid_group(value)) {
          error("group=" + shown(value) + ": must be 1 to " + std::to_string(group_max) +
                " of A-Z a-z 0-9 . _ - / (not starting with /)");
          continue;
        }
        def.group = std::string(value);
        tg.set |= field::group;
        has_tg = true;
        break;
      case Handler::conn: {
        std::optional<std::uint32_t> n = parse_uint32(value);
        if (!n || *n > info->max) {
          error(std::string(k) + "=" + shown(value) + ": must be a number 0 to " + std::to_string(info->max) +
                " (0: no limit)");
          continue;
        }
        client.conn = *n;
        has_client = true;
        break;
      }
      case Handler::client_windows: {
        std::optional<Windows> ws = parse_windows(value, &verr);
        if (!ws) {
          error(std::string(k) + "=" + shown(value) + ": " + verr);
          continue;
        }
        client_rate(client, info->bit) = *ws;
        has_client = true;
        break;
      }
      case Handler::number: {
        std::optional<std::uint32_t> n = parse_uint32(value);
        if (!n || *n > info->max) {
          error(std::string(k) + "=" + shown(value) + ": must be a number 0 to " + std::to_string(info->max));
          continue;
        }
        set_number(tg, info->bit, *n);
        has_tg = true;
        break;
      }
    }
  }
  if (out.diagnostics.size() != errors_before) return;

  // settings that only make sense together
  if (relay.exempt && (given_rcpt || given_msg || given_action || has_client)) {
    return error("exempt cannot be combined with rcpt=, msg=, action= or client limits such as conn= "
                 "(an exempt client is not counted)");
  }
  if (given_action && !given_rcpt && !given_msg) return error("action= needs rcpt= or msg=");
  if (relay.each && !given_rcpt && !given_msg && !has_client) {
    return error("each needs rcpt=, msg= or a client limit (conn=, connrate=, inmsg=, ...)");
  }
  if (relay.unauthenticated && !has_relay) return error("unauthenticated needs rcpt=, msg= or exempt");
  // exempt and each say how the client kind counts too (doc/spamt.5)
  if (relay.exempt && kind != Kind::user && kind != Kind::domain) client.exempt = has_client = true;
  if (relay.each && has_client) client.each = true;
  if (relay.each && !given_rcpt && !given_msg) relay.each = false;

  if (has_client) def.client = client;
  if (has_relay) def.relay = relay;
  if (has_tg) def.teergrube = tg;
  if (has_authfail) def.authfail = authfail;
  out.definitions.push_back(std::move(def));
}

// ---- spamthrottle lines -----------------------------------------------------

// ipblock:dir:st:stmax:flush:rcpt:tg:tg_resp:
void LineParser::spamthrottle(std::string_view line) {
  std::string_view fields[8];
  std::string_view rest = line;
  for (int i = 0; i < 8; ++i) {
    std::size_t colon = rest.find(':');
    if (colon == std::string_view::npos) {
      return error("spamthrottle line needs 8 fields, each ending in ':' (ipblock:dir:st:stmax:flush:rcpt:tg:tg_resp:); found " +
                   std::to_string(i));
    }
    fields[i] = rest.substr(0, colon);
    rest.remove_prefix(colon + 1);
  }
  if (!trim(rest).empty()) warning("text after the 8th ':' is ignored, as spamthrottle did: " + quoted(rest));

  Definition def;
  def.source = Source::spamthrottle;
  def.origin = location(filename, number);
  std::size_t errors_before = out.diagnostics.size();

  std::string_view block = fields[0];
  if (block.empty()) {
    def.identity.kind = Kind::fallback;
  } else {
    std::optional<ip::Network> n = ip::parse_network(block);
    if (!n || n->address.family != ip::Family::v4) {
      error("ipblock " + quoted(block) + " is not an IPv4 address or a.b.c.d/n block");
    } else if (n->prefix == 0) {
      error("ipblock " + quoted(block) + ": prefix length 0 is not allowed (the default is the empty ipblock)");
    } else {
      // spamthrottle used the first n bits of whatever was written
      n->address = ip::masked(n->address, n->prefix);
      def.identity.kind = n->prefix == 32 ? Kind::address : Kind::network;
      def.identity.network = *n;
    }
  }

  Teergrube tg;
  tg.spamthrottle = true;
  std::string_view dir = fields[1];
  if (!dir.empty()) {
    if (dir.front() == '/') {
      std::optional<std::uint32_t> bits = parse_uint32(dir.substr(1));
      if (!bits || *bits == 0 || *bits > 32) {
        error("dir " + quoted(dir) + ": /n must give 1 to 32 bits");
      } else {
        set_number(tg, field::prefix4, *bits);
      }
    } else if (!valid_group(dir)) {
      error("dir " + quoted(dir) + ": must be /n or a name of A-Z a-z 0-9 . _ - /");
    } else {
      def.group = std::string(dir);
      tg.set |= field::group;
    }
  }
  // spamthrottle's field positions of the numeric settings
  struct Position {
    std::string_view name;
    int index;
    std::uint16_t bit;
  };
  static constexpr Position numbers[] = {
      {"st", 2, field::st}, {"stmax", 3, field::stmax}, {"rcpt", 5, field::strcpt}, {"tg", 6, field::tg}};
  for (const Position& f : numbers) {
    std::string_view v = fields[f.index];
    if (v.empty()) continue;
    std::optional<std::uint32_t> n = parse_uint32(v);
    if (!n) {
      error(std::string(f.name) + " field " + quoted(v) + ": must be a number");
      continue;
    }
    set_number(tg, f.bit, *n);
  }
  if (!fields[4].empty()) {
    std::optional<std::uint32_t> n = parse_uint32(fields[4]);
    if (!n) {
      error("flush field " + quoted(fields[4]) + ": must be a number (0 = no)");
    } else {
      set_flag(tg, field::flush, *n != 0);
    }
  }
  if (!fields[7].empty()) {
    if (fields[7].size() > tgtext_max || !valid_text(fields[7])) {
      error("tg_resp field: must be at most " + std::to_string(tgtext_max) + " printable ASCII characters");
    } else {
      def.tgtext = std::string(fields[7]);
      tg.set |= field::tgtext;
    }
  }
  for (std::size_t i = errors_before; i < out.diagnostics.size(); ++i)
    if (!out.diagnostics[i].warning) return;  // an error on this line: no definition
  def.teergrube = tg;
  out.definitions.push_back(std::move(def));
}

// ---- relaylimits lines ------------------------------------------------------

// key:N -- the limit follows the last ':' (an IPv6 key has colons of its own)
void LineParser::relaylimits(std::string_view line) {
  std::size_t colon = line.rfind(':');
  if (colon == std::string_view::npos) return error("expected key:N (\":N\" for the default), got " + quoted(line));
  std::string_view key = trim(line.substr(0, colon));
  std::string_view limit_text = trim(line.substr(colon + 1));
  std::optional<std::uint32_t> limit = parse_uint32(limit_text);
  if (!limit) return error("limit " + quoted(limit_text) + ": must be a number 0 to 4294967295 (0 = unlimited)");

  std::string err;
  std::optional<Identity> id;
  if (key.empty()) {
    id = Identity{};
  } else if (key.find('@') == std::string_view::npos && key.find(':') == std::string_view::npos &&
             !(is_digit(key.front()) && key.find_first_not_of("0123456789./") == std::string_view::npos)) {
    // a bare login; "default" here is a user named default, as it was
    id = parse_identity("user:" + std::string(key), &err);
  } else {
    id = parse_identity(key, &err);
  }
  if (!id) return error(err);

  Definition def;
  def.identity = *id;
  def.source = Source::relaylimits;
  def.origin = location(filename, number);
  Relay relay;
  if (*limit != 0) {
    relay.rcpt.count = 1;
    relay.rcpt.at[0] = Window{*limit, 86400};
  }
  relay.action = 421;
  // rcptcheck-overlimit keyed on the user when there was one, else the IP
  relay.unauthenticated = is_ip_kind(id->kind);
  def.relay = relay;
  out.definitions.push_back(std::move(def));
}

// A spamthrottle line starts with its ipblock: nothing, or digits, dots and
// a slash, directly followed by ':'.
bool looks_like_spamthrottle(std::string_view line) noexcept {
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  for (char c : line.substr(0, colon))
    if (!is_digit(c) && c != '.' && c != '/') return false;
  return true;
}

std::string_view first_word(std::string_view line) noexcept {
  std::size_t i = 0;
  while (i < line.size() && !is_space(line[i])) ++i;
  return line.substr(0, i);
}

}  // namespace

std::string Diagnostic::text() const {
  return where + ": " + (warning ? "warning: " : "") + message;
}

bool ParsedFile::ok() const noexcept {
  for (const Diagnostic& d : diagnostics)
    if (!d.warning) return false;
  return true;
}

std::string Identity::text() const {
  char buf[ip::text_max];
  switch (kind) {
    case Kind::user: return name;
    case Kind::domain: return "@" + name;
    case Kind::address: return std::string(buf, ip::format(network.address, buf));
    case Kind::network: return std::string(buf, ip::format(network, buf));
    case Kind::fallback: return "default";
  }
  return "";
}

std::string Identity::budget_key() const {
  switch (kind) {
    case Kind::user: return "u:" + name;
    case Kind::domain: return "d:" + name;
    case Kind::address: return "a:" + text();
    case Kind::network: return "n:" + text();
    case Kind::fallback: return "";
  }
  return "";
}

std::optional<Identity> parse_identity(std::string_view word, std::string* error) {
  std::string w = lowered(word);
  Identity id;
  if (w == "default") {
    id.kind = Kind::fallback;
    return id;
  }
  if (w.rfind("user:", 0) == 0) {
    std::string name = w.substr(5);
    std::size_t at = name.find('@');
    if (!valid_login(name) || (at != std::string::npos && (at == 0 || name.find('@', at + 1) != std::string::npos ||
                                                           !valid_domain(name.substr(at + 1))))) {
      *error = "user " + quoted(word.substr(5)) + ": a login of at most " + std::to_string(name_max) +
               " printable characters, or login@domain";
      return std::nullopt;
    }
    id.kind = Kind::user;
    id.name = name;
    return id;
  }
  std::size_t at = w.find('@');
  if (at != std::string::npos) {
    std::string_view domain = std::string_view(w).substr(at + 1);
    if (w.find('@', at + 1) != std::string::npos) {
      *error = "identity " + quoted(word) + " has more than one '@'";
      return std::nullopt;
    }
    if (!valid_domain(domain)) {
      *error = "domain " + quoted(domain) + " is not a domain name (letters, digits, '-', '_' in dot-separated labels)";
      return std::nullopt;
    }
    if (at == 0) {
      id.kind = Kind::domain;
      id.name = std::string(domain);
      return id;
    }
    if (!valid_login(w)) {
      *error = "user " + quoted(word) + ": at most " + std::to_string(name_max) +
               " printable characters, no '\"' or '\\'";
      return std::nullopt;
    }
    id.kind = Kind::user;
    id.name = w;
    return id;
  }
  bool ipish = w.find(':') != std::string::npos || (!w.empty() && is_digit(w[0]));
  if (ipish) {
    std::optional<ip::Network> n = ip::parse_network(w);
    if (!n) {
      *error = quoted(word) + " is not an IP address or CIDR block (192.0.2.7, 192.0.2.0/24, 2001:db8::/32)";
      return std::nullopt;
    }
    if (!ip::host_bits_clear(*n)) {
      ip::Network fixed{ip::masked(n->address, n->prefix), n->prefix};
      char buf[ip::text_max];
      *error = quoted(word) + " has host bits set; the block is " + std::string(buf, ip::format(fixed, buf));
      return std::nullopt;
    }
    id.kind = n->prefix == n->address.bits() ? Kind::address : Kind::network;
    id.network = *n;
    return id;
  }
  *error = "unknown identity " + quoted(word) +
           " (expected user@domain, user:login, @domain, an IP address, a CIDR block or default)";
  return std::nullopt;
}

std::optional<std::uint32_t> parse_period(std::string_view v, std::string* error) {
  if (v.empty()) {
    *error = "missing period (30s, 10m, 1h, 1d, 1w)";
    return std::nullopt;
  }
  std::uint32_t unit = 0;
  switch (v.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 604800; break;
    default:
      *error = "period " + quoted(v) + " needs a unit: s, m, h, d or w";
      return std::nullopt;
  }
  std::string_view digits = v.substr(0, v.size() - 1);
  std::uint64_t count = 1;
  if (!digits.empty()) {
    std::optional<std::uint32_t> n = parse_uint32(digits);
    if (!n) {
      *error = "period " + quoted(v) + " is not a number and a unit";
      return std::nullopt;
    }
    count = *n;
  }
  std::uint64_t seconds = count * unit;
  if (seconds == 0 || seconds > max_period_seconds) {
    *error = "period " + quoted(v) + " must be 1s to 366d";
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(seconds);
}

std::optional<Windows> parse_windows(std::string_view value, std::string* error) {
  Windows ws;
  bool zero = false;
  std::size_t items = 0;
  std::string_view rest = value;
  if (value.empty()) {
    *error = "expected N/PERIOD[,N/PERIOD...] or 0";
    return std::nullopt;
  }
  while (true) {
    std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    ++items;
    std::size_t slash = item.find('/');
    std::optional<std::uint32_t> limit = parse_uint32(item.substr(0, slash));
    if (!limit) {
      *error = "limit " + quoted(item.substr(0, slash)) + " must be a number 0 to 4294967295";
      return std::nullopt;
    }
    std::uint32_t seconds = 0;
    if (slash != std::string_view::npos) {
      std::optional<std::uint32_t> p = parse_period(item.substr(slash + 1), error);
      if (!p) return std::nullopt;
      seconds = *p;
    } else if (*limit != 0) {
      *error = "limit " + quoted(item) + " needs a period: N/PERIOD, e.g. " + quoted(std::string(item) + "/1h");
      return std::nullopt;
    }
    if (*limit == 0) {
      zero = true;
    } else {
      if (ws.count == max_windows) {
        *error = "at most " + std::to_string(max_windows) + " windows";
        return std::nullopt;
      }
      for (const Window& w : ws) {
        if (w.seconds == seconds) {
          *error = "two limits for the same period";
          return std::nullopt;
        }
      }
      ws.at[ws.count++] = Window{*limit, seconds};
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (zero && items > 1) {
    *error = "0 means no limit and cannot be combined with other windows";
    return std::nullopt;
  }
  // shortest window first (at most four: insertion sort)
  for (std::size_t i = 1; i < ws.count; ++i)
    for (std::size_t j = i; j > 0 && ws.at[j].seconds < ws.at[j - 1].seconds; --j) std::swap(ws.at[j], ws.at[j - 1]);
  return ws;
}

ParsedFile parse_spamt(std::string_view text, std::string_view filename) {
  ParsedFile out;
  bool ended = false;
  bool warned_after_end = false;
  for_each_line(text, [&](std::size_t number, std::string_view raw) {
    LineParser p{filename, number, out};
    std::string_view line = trim(raw);
    if (ended) {
      if (!warned_after_end && !line.empty() && line.front() != '#') {
        p.warning("everything after the final '.' line is ignored");
        warned_after_end = true;
      }
      return true;
    }
    if (raw.find('\0') != std::string_view::npos) {
      p.error("the line contains a NUL byte");
      return true;
    }
    if (line.empty() || line.front() == '#') return true;
    if (line == ".") {
      ended = true;
      return true;
    }
    if (line.front() == '.') {
      p.error("a line starting with '.' (only a lone '.' ends the file; a domain is written @domain)");
      return true;
    }
    std::string ignored;
    if (!parse_identity(first_word(line), &ignored) && looks_like_spamthrottle(line)) {
      p.spamthrottle(line);
    } else {
      p.native(line);
    }
    return true;
  });
  return out;
}

ParsedFile parse_relaylimits(std::string_view text, std::string_view filename) {
  ParsedFile out;
  for_each_line(text, [&](std::size_t number, std::string_view raw) {
    LineParser p{filename, number, out};
    std::string_view line = trim(raw);
    if (raw.find('\0') != std::string_view::npos) {
      p.error("the line contains a NUL byte");
      return true;
    }
    if (line.empty() || line.front() == '#') return true;
    p.relaylimits(line);
    return true;
  });
  return out;
}

}  // namespace spamt
