// spamt_compile.cpp: see spamt_compile.h.

#include "spamt_compile.h"

#include <cerrno>
#include <map>
#include <unordered_map>

#include <cdb.h>

namespace spamt {

namespace {

std::string_view source_name(Source s) noexcept {
  switch (s) {
    case Source::native: return "control/spamt";
    case Source::spamthrottle: return "spamthrottle";
    case Source::relaylimits: return "relaylimits";
  }
  return "";
}

struct Merger {
  Table& table;
  std::map<std::string, CompiledEntry> by_key;
  std::map<std::string, std::string> native_origin;  // key -> the native line that defined it

  void error(const Definition& d, std::string message) {
    table.diagnostics.push_back(Diagnostic{d.origin, std::move(message), false});
  }
  void warning(const Definition& d, std::string message) {
    table.diagnostics.push_back(Diagnostic{d.origin, std::move(message), true});
  }

  void add(const Definition& d) {
    CompiledEntry fresh;
    fresh.identity = d.identity;
    std::string key = fresh.key();
    std::string who = d.identity.text();
    if (d.source == Source::native) {
      auto it = native_origin.find(key);
      if (it != native_origin.end()) {
        return error(d, who + " is already defined at " + it->second + " (give all its settings on one line)");
      }
      native_origin.emplace(key, d.origin);
    }
    auto [it, inserted] = by_key.try_emplace(key, std::move(fresh));
    CompiledEntry& e = it->second;
    if (inserted) {
      e.identity_text = who;
      e.budget_key = d.identity.budget_key();
    }
    if (d.relay) {
      if (!e.relay) {
        set_relay(e, d);
      } else if (e.relay_source == Source::relaylimits && d.source == Source::relaylimits) {
        warning(d, who + " replaces the line at " + e.relay_origin + " (the last line for a key wins)");
        set_relay(e, d);
      } else {
        error(d, who + " already has relay limits from " + e.relay_origin + " (" +
                     std::string(source_name(e.relay_source)) + ")");
      }
    }
    if (d.teergrube) {
      if (!e.teergrube) {
        set_teergrube(e, d);
      } else if (e.teergrube_source == Source::spamthrottle && d.source == Source::spamthrottle) {
        if (d.identity.kind == Kind::fallback) {
          warning(d, "this default line replaces the one at " + e.teergrube_origin +
                         " (spamthrottle used the last default line)");
          set_teergrube(e, d);
        } else {
          warning(d, "ignored: spamthrottle used the first line for " + who + ", at " + e.teergrube_origin);
        }
      } else {
        error(d, who + " already has teergrube settings from " + e.teergrube_origin + " (" +
                     std::string(source_name(e.teergrube_source)) + ")");
      }
    }
    if (d.authfail) {
      if (!e.authfail) {
        e.authfail = d.authfail;
        e.authfail_origin = d.origin;
      } else {
        error(d, who + " already has an authfail limit from " + e.authfail_origin);
      }
    }
    if (d.client) {
      if (!e.client) {
        e.client = d.client;
        e.client_origin = d.origin;
      } else {
        error(d, who + " already has client limits from " + e.client_origin);
      }
    }
  }

  void set_relay(CompiledEntry& e, const Definition& d) {
    e.relay = d.relay;
    e.relay_origin = d.origin;
    e.relay_source = d.source;
  }

  void set_teergrube(CompiledEntry& e, const Definition& d) {
    e.teergrube = d.teergrube;
    e.tgtext = d.tgtext;
    e.group = d.group;
    e.teergrube_origin = d.origin;
    e.teergrube_source = d.source;
  }
};

// For every IP entry, the most specific less specific block that carries
// each kind of setting (Entry::ancestors), so that a lookup stops at the
// first entry it finds.
void link_ancestors(Table& table) {
  std::unordered_map<std::string, const CompiledEntry*> by_key;
  for (const CompiledEntry& e : table.entries) by_key.emplace(e.key(), &e);
  const format::Index ix = table.index();
  for (CompiledEntry& e : table.entries) {
    if (e.identity.kind != Kind::address && e.identity.kind != Kind::network) continue;
    const ip::Address& a = e.identity.network.address;
    const format::PrefixSet* sets = a.family == ip::Family::v4 ? ix.v4 : ix.v6;
    const format::PrefixSet present = format::Index::any(sets);
    std::uint8_t* up = e.ancestors;
    for (int p = static_cast<int>(e.identity.network.prefix) - 1; p >= 0; --p) {
      if (!present.has(static_cast<unsigned>(p))) continue;
      char key[2 + 16];
      auto it = by_key.find(std::string(key, format::network_key(a, static_cast<unsigned>(p), key)));
      if (it == by_key.end()) continue;
      const CompiledEntry& anc = *it->second;
      auto mark = [&up, p](int which, bool has) {
        if (has && up[which] == format::no_ancestor) up[which] = static_cast<std::uint8_t>(p);
      };
      mark(format::up_relay, anc.relay.has_value());
      mark(format::up_relay_authenticated, anc.relay && !anc.relay->unauthenticated);
      mark(format::up_teergrube, anc.teergrube.has_value());
      mark(format::up_authfail, anc.authfail.has_value());
      mark(format::up_client, anc.client.has_value());
    }
  }
}

}  // namespace

std::string CompiledEntry::key() const {
  char buf[format::key_max];
  switch (identity.kind) {
    case Kind::user: return std::string(buf, format::user_key(identity.name, buf));
    case Kind::domain: return std::string(buf, format::domain_key(identity.name, buf));
    case Kind::address:
    case Kind::network:
      return std::string(buf, format::network_key(identity.network.address, identity.network.prefix, buf));
    case Kind::fallback: return std::string(format::default_key);
  }
  return "";
}

Entry CompiledEntry::view() const {
  Entry v;
  v.kind = identity.kind;
  v.identity = identity_text;
  v.budget_key = budget_key;
  if (identity.kind == Kind::address || identity.kind == Kind::network) {
    v.network = identity.network;
    for (int i = 0; i < format::ancestor_count; ++i) v.ancestors[i] = ancestors[i];
  }
  if (relay) {
    v.has_relay = true;
    v.relay = *relay;
    v.relay_origin = relay_origin;
  }
  if (teergrube) {
    v.has_teergrube = true;
    v.teergrube = *teergrube;
    v.tgtext = tgtext;
    v.group = group;
    v.teergrube_origin = teergrube_origin;
  }
  if (authfail) {
    v.has_authfail = true;
    v.authfail = *authfail;
    v.authfail_origin = authfail_origin;
  }
  if (client) {
    v.has_client = true;
    v.client = *client;
    v.client_origin = client_origin;
  }
  return v;
}

bool Table::ok() const noexcept {
  for (const Diagnostic& d : diagnostics)
    if (!d.warning) return false;
  return true;
}

format::Index Table::index() const {
  format::Index ix;
  ix.entries = static_cast<std::uint32_t>(entries.size());
  for (const CompiledEntry& e : entries) {
    switch (e.identity.kind) {
      case Kind::user: ix.has_users = true; break;
      case Kind::domain: ix.has_domains = true; break;
      case Kind::fallback: ix.has_default = true; break;
      case Kind::address:
      case Kind::network: {
        format::PrefixSet* sets = e.identity.network.address.family == ip::Family::v4 ? ix.v4 : ix.v6;
        unsigned p = e.identity.network.prefix;
        if (e.relay) sets[format::relay].add(p);
        if (e.teergrube) sets[format::teergrube].add(p);
        if (e.authfail) sets[format::authfail].add(p);
        if (e.client) sets[format::client].add(p);
        break;
      }
    }
  }
  return ix;
}

Table compile(const ParsedFile* spamt, const ParsedFile* relaylimits) {
  Table table;
  for (const ParsedFile* f : {spamt, relaylimits})
    if (f != nullptr) table.diagnostics.insert(table.diagnostics.end(), f->diagnostics.begin(), f->diagnostics.end());
  Merger m{table, {}, {}};
  for (const ParsedFile* f : {spamt, relaylimits}) {
    if (f == nullptr) continue;
    for (const Definition& d : f->definitions) {
      m.add(d);
    }
  }
  table.entries.reserve(m.by_key.size());
  for (auto& [key, entry] : m.by_key) table.entries.push_back(std::move(entry));
  link_ancestors(table);
  for (const CompiledEntry& e : table.entries) {
    // cannot happen with the syntax's own limits; readers would refuse it
    if (format::encode_entry(e.view()).size() > format::record_max) {
      std::string where = !e.relay_origin.empty()       ? e.relay_origin
                          : !e.teergrube_origin.empty() ? e.teergrube_origin
                          : !e.authfail_origin.empty()  ? e.authfail_origin
                                                        : e.client_origin;
      table.diagnostics.push_back(Diagnostic{where, e.identity_text + ": the entry is too large for the table", false});
    }
  }
  return table;
}

int write_cdb(const Table& table, int fd) {
  struct cdb_make cm;
  if (cdb_make_start(&cm, fd) != 0) return errno ? errno : EIO;
  auto add = [&](std::string_view k, std::string_view v) {
    return cdb_make_add(&cm, k.data(), static_cast<unsigned>(k.size()), v.data(), static_cast<unsigned>(v.size()));
  };
  bool ok = add(format::version_key, format::version) == 0;
  std::string index = format::encode_index(table.index());
  ok = ok && add(format::index_key, index) == 0;
  for (const CompiledEntry& e : table.entries) {
    if (!ok) break;
    std::string key = e.key();
    std::string value = format::encode_entry(e.view());
    ok = add(key, value) == 0;
  }
  int saved = errno;
  if (cdb_make_finish(&cm) != 0 || !ok) return errno ? errno : (saved ? saved : EIO);
  return 0;
}

}  // namespace spamt
