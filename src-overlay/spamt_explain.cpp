// spamt_explain.cpp: see spamt_explain.h.

#include "spamt_explain.h"

#include <optional>
#include <utility>

#include "helpers.h"

namespace spamt {

namespace {

std::string windows_text(const Windows& w) {
  char buf[windows_text_max];
  return std::string(buf, format_windows(w, buf));
}

std::string number(std::uint32_t v) { return std::to_string(v); }

std::string who(const Entry& e) {
  if (e.kind == Kind::fallback) return "default";
  return std::string(kind_name(e.kind)) + " " + std::string(e.identity);
}

std::string relay_text(const Relay& r) {
  if (r.exempt) return "exempt";
  std::string s = "rcpt=" + windows_text(r.rcpt) + " msg=" + windows_text(r.msg) + " action=" + number(r.action);
  if (r.each) s += " each";
  if (r.unauthenticated) s += " unauthenticated";
  return s;
}

std::string client_text(const Client& c) {
  if (c.exempt) return "exempt";
  std::string s = "conn=" + number(c.conn);
  const std::pair<std::string_view, const Windows*> rates[] = {{"connrate", &c.connrate}, {"inmsg", &c.inmsg},
                                                               {"inrcpt", &c.inrcpt},     {"tlsrate", &c.tlsrate},
                                                               {"authrate", &c.authrate}};
  for (const auto& [name, w] : rates) {
    if (w->empty()) continue;
    s += " ";
    s += name;
    s += "=" + windows_text(*w);
  }
  if (c.each) s += " each";
  return s;
}

std::string aspects(const Entry& e) {
  std::string s;
  auto add = [&s](std::string_view what, std::string_view origin) {
    if (!s.empty()) s += ", ";
    s += what;
    s += " (";
    s += origin;
    s += ")";
  };
  if (e.has_relay) add("relay", e.relay_origin);
  if (e.has_teergrube) add("teergrube", e.teergrube_origin);
  if (e.has_authfail) add("authfail", e.authfail_origin);
  if (e.has_client) add("client limits", e.client_origin);
  return s;
}

// One teergrube field's value as text.
std::string field_value(const TeergrubeSettings& t, std::uint16_t bit) {
  switch (bit) {
    case field::st: return number(t.st_ms) + "ms";
    case field::stmax: return number(t.stmax_ms) + "ms";
    case field::flush: return t.flush ? "yes" : "no";
    case field::strcpt: return number(t.strcpt);
    case field::tg: return number(t.tg_seconds) + "s";
    case field::tgtext: return "\"" + std::string(t.text) + "\"";
    case field::prefix4: return number(t.prefix4);
    case field::prefix6: return number(t.prefix6);
    case field::group: return t.group.empty() ? "(none)" : std::string(t.group);
    case field::tarpitrelay: return t.tarpitrelay ? "yes" : "no";
  }
  return "";
}

}  // namespace

bool explain(LimitsTable& table, std::string_view ip_text, std::string_view user, std::string& out) {
  out.clear();
  std::optional<ip::Address> addr = ip::parse(ip_text);
  if (!addr) {
    out = "not an IP address: " + std::string(ip_text) + "\n";
    return false;
  }
  Lookup l;
  LookupStatus st = table.lookup(*addr, user, l);
  if (st != LookupStatus::ok) {
    out = "lookup failed: " + std::string(status_name(st)) + "\n";
    return false;
  }
  char buf[ip::text_max];
  std::string client(buf, ip::format(*addr, buf));
  out += "client " + client;
  if (!user.empty()) out += " user " + std::string(user);
  out += " (relay budget key when counted per client: " + std::string(l.client_key()) + ")\n";

  // every entry that matches
  out += "matching entries:\n";
  std::size_t matches = 0;
  Record found;  // big: one at a time
  const Entry& e = found.entry;
  const std::string lowered = helpers::lowered(user);
  if (!lowered.empty() && table.find_user(lowered, found) == 1) {
    out += "  " + who(e) + ": " + aspects(e) + "\n";
    ++matches;
  }
  std::size_t at = lowered.rfind('@');
  if (at != std::string::npos && at + 1 < lowered.size() && table.find_domain(lowered.substr(at + 1), found) == 1) {
    out += "  " + who(e) + ": " + aspects(e) + "\n";
    ++matches;
  }
  const format::PrefixSet* sets = addr->family == ip::Family::v4 ? table.index().v4 : table.index().v6;
  const format::PrefixSet all = format::Index::any(sets);
  for (int p = static_cast<int>(addr->bits()); p >= 0; --p) {
    if (!all.has(static_cast<unsigned>(p)) || table.find_network(*addr, static_cast<unsigned>(p), found) != 1) continue;
    out += "  " + who(e) + ": " + aspects(e) + "\n";
    ++matches;
    auto note = [&out, &e](bool has, const Entry* used, std::string_view what) {
      if (!has || used == nullptr || used->identity == e.identity) return;
      out += "    not used for " + std::string(what) + ": " + who(*used) + " is more specific\n";
    };
    if (e.has_relay && e.relay.unauthenticated && !user.empty()) {
      out += "    not used for relay limits: only for clients that did not authenticate\n";
    } else {
      note(e.has_relay, l.relay_ip_entry(), "relay limits");
    }
    note(e.has_teergrube, l.teergrube().entry, "teergrube");
    note(e.has_authfail, l.authfail().entry, "authfail");
    note(e.has_client, l.client().entry, "client limits");
  }
  const Entry* d = table.default_entry();
  if (d != nullptr) {
    out += "  default: " + aspects(*d) + "\n";
    ++matches;
  }
  if (matches == 0) out += "  (none)\n";

  // relay limits
  out += "relay limits (for relay clients: RELAYCLIENT or AUTH):\n";
  if (l.exempt()) {
    const Entry* x = l.exempt_by();
    out += "  exempt by " + who(*x) + " (" + std::string(x->relay_origin) + "): no relay limit applies\n";
  } else if (l.relay().empty()) {
    out += "  no entry with relay limits applies: not limited\n";
  } else {
    for (const Budget& b : l.relay()) {
      out += "  " + who(*b.entry) + ": " + relay_text(b.entry->relay) + ", budget " + std::string(b.key) + " (" +
             std::string(b.entry->relay_origin) + ")\n";
    }
    if (l.relay_default() != nullptr) {
      out += "  (the default applies because no user, domain or IP entry with relay limits matches; its budget "
             "is per " +
             std::string(user.empty() ? "client address" : "user") + ")\n";
    } else if (d != nullptr && d->has_relay) {
      out += "  (the default does not apply: another entry matches)\n";
    }
    if (l.relay().size() > 1) out += "  a recipient is refused when any of these budgets is used up\n";
  }

  // teergrube
  const TeergrubeSettings& t = l.teergrube();
  out += "teergrube (for clients that are not relay clients, unless tarpitrelay):\n";
  static constexpr std::uint16_t order[] = {field::st,      field::stmax,   field::flush,   field::strcpt,
                                            field::tg,      field::tgtext,  field::prefix4, field::prefix6,
                                            field::group,   field::tarpitrelay};
  auto list = [&](std::uint16_t mask) {
    std::string s;
    for (std::uint16_t bit : order) {
      if (!(mask & bit)) continue;
      s += " ";
      s += field_name(bit);
      s += "=";
      s += field_value(t, bit);
    }
    return s;
  };
  if (t.entry != nullptr)
    out += "  from " + who(*t.entry) + " (" + std::string(t.entry->teergrube_origin) + "):" + list(t.from_entry) + "\n";
  if (t.fallback != nullptr && t.from_default != 0)
    out += "  from default (" + std::string(t.fallback->teergrube_origin) + "):" + list(t.from_default) + "\n";
  std::uint16_t builtin = static_cast<std::uint16_t>(field::all & ~(t.from_entry | t.from_default));
  if (builtin != 0) {
    out += "  built in:" + list(builtin);
    if ((builtin & field::prefix4) && t.prefix4 == builtin::spamthrottle_prefix4)
      out += " (prefix4 16: spamthrottle's, for settings from its lines)";
    out += "\n";
  }
  out += "  => " + std::string(t.active() ? "teergrube on" : "teergrube off (st=0)") + ", state key " +
         std::string(t.state_key) + "\n";

  // AUTH failures
  const AuthFailLimit& a = l.authfail();
  out += "authfail (failed AUTH per client address):\n";
  if (a.windows->empty()) {
    out += "  no limit";
    if (a.entry != nullptr) out += " (" + who(*a.entry) + ", " + std::string(a.entry->authfail_origin) + ")";
    out += "\n";
  } else {
    out += "  " + windows_text(*a.windows) + " from " + who(*a.entry) + " (" + std::string(a.entry->authfail_origin) +
           "), budget " + std::string(a.key) + "\n";
  }

  // client limits
  const ClientLimits& c = l.client();
  out += "client limits (every client: connections at once and rates; not per user):\n";
  if (c.entry == nullptr) {
    out += "  no entry with client limits applies: not limited\n";
  } else {
    out += "  " + client_text(*c.limits) + " from " + who(*c.entry) + " (" + std::string(c.entry->client_origin) + ")";
    if (!c.limits->unlimited()) out += ", counted as " + std::string(c.key);
    out += "\n";
    if (c.limits->conn != 0) out += "  connections at once are counted on this host only\n";
  }
  return true;
}

}  // namespace spamt
