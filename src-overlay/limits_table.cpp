// limits_table.cpp: see limits_table.h.

#include "limits_table.h"

#include <cerrno>

#include <fcntl.h>
#include <unistd.h>

namespace spamt {

namespace {

constexpr Windows no_windows{};

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::size_t put(char* out, std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i) out[i] = s[i];
  return s.size();
}

// "a:ADDRESS" when `prefix` covers the whole address, else "n:BLOCK/prefix".
std::size_t block_key(const ip::Address& a, unsigned prefix, char* out) noexcept {
  if (prefix >= a.bits()) {
    std::size_t n = put(out, "a:");
    return n + ip::format(a, out + n);
  }
  std::size_t n = put(out, "n:");
  return n + ip::format(ip::Network{ip::masked(a, prefix), prefix}, out + n);
}

}  // namespace

std::string_view status_name(TableStatus s) noexcept {
  switch (s) {
    case TableStatus::closed: return "not open";
    case TableStatus::ok: return "ok";
    case TableStatus::missing: return "missing";
    case TableStatus::unreadable: return "unreadable";
    case TableStatus::corrupt: return "corrupt";
    case TableStatus::wrong_version: return "wrong format version";
  }
  return "unknown";
}

std::string_view status_name(LookupStatus s) noexcept {
  switch (s) {
    case LookupStatus::ok: return "ok";
    case LookupStatus::not_open: return "table not open";
    case LookupStatus::bad_address: return "bad client address";
    case LookupStatus::bad_user: return "user name too long";
    case LookupStatus::corrupt: return "corrupt record";
  }
  return "unknown";
}

void Lookup::reset() noexcept {
  has_user_ = has_domain_ = false;
  relay_ip_ = nullptr;
  ip_count_ = 0;
  relay_default_ = nullptr;
  exempt_by_ = nullptr;
  budget_count_ = 0;
  teergrube_ = TeergrubeSettings{};
  authfail_ = AuthFailLimit{&no_windows, {}, nullptr};
  client_key_len_ = 0;
}

TableStatus LimitsTable::open(const char* path) noexcept {
  close();
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    errno_ = errno;
    status_ = errno_ == ENOENT ? TableStatus::missing : TableStatus::unreadable;
    return status_;
  }
  return open_fd(fd);
}

TableStatus LimitsTable::open_fd(int fd) noexcept {
  close();
  fd_ = fd;
  errno = 0;
  if (cdb_init(&cdb_, fd) != 0) {
    errno_ = errno;
    // tinycdb says EPROTO for a file too short to be a cdb
    status_ = errno_ == EPROTO ? TableStatus::corrupt : TableStatus::unreadable;
    ::close(fd_);
    fd_ = -1;
    return status_;
  }
  mapped_ = true;
  status_ = TableStatus::ok;

  auto fail = [this](TableStatus s) {
    close();
    status_ = s;
    return s;
  };
  // "!format", "!index" and "!default" are the first records, in the
  // file's first page: read in order, no hash probes (each probe may cost a
  // page fault in a freshly started qmail-smtpd)
  unsigned pos;
  cdb_seqinit(&pos, &cdb_);
  auto next = [&](std::string_view key, std::string_view& value) -> int {
    int r = cdb_seqnext(&pos, &cdb_);
    if (r <= 0) return r < 0 ? -1 : 0;
    const void* k = cdb_get(&cdb_, cdb_keylen(&cdb_), cdb_keypos(&cdb_));
    const void* v = cdb_get(&cdb_, cdb_datalen(&cdb_), cdb_datapos(&cdb_));
    if (k == nullptr || v == nullptr) return -1;
    if (std::string_view(static_cast<const char*>(k), cdb_keylen(&cdb_)) != key) return 0;
    value = {static_cast<const char*>(v), cdb_datalen(&cdb_)};
    return 1;
  };
  std::string_view value;
  int r = next(format::version_key, value);
  if (r < 0) return fail(TableStatus::corrupt);
  if (r == 0 || value != format::version) return fail(TableStatus::wrong_version);
  if (next(format::index_key, value) != 1 || !format::decode_index(value, index_)) return fail(TableStatus::corrupt);
  if (index_.has_default) {
    if (next(format::default_key, value) != 1 || !format::decode_entry(value, default_) ||
        default_.kind != Kind::fallback)
      return fail(TableStatus::corrupt);
  }
  return status_;
}

void LimitsTable::close() noexcept {
  if (mapped_) cdb_free(&cdb_);
  mapped_ = false;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  cdb_ = {};
  index_ = format::Index{};
  default_ = Entry{};
  errno_ = 0;
  status_ = TableStatus::closed;
}

int LimitsTable::find(std::string_view key, Entry& out) noexcept {
  int r = cdb_find(&cdb_, key.data(), static_cast<unsigned>(key.size()));
  if (r <= 0) return r < 0 ? -1 : 0;
  const void* v = cdb_get(&cdb_, cdb_datalen(&cdb_), cdb_datapos(&cdb_));
  if (v == nullptr) return -1;
  if (!format::decode_entry({static_cast<const char*>(v), cdb_datalen(&cdb_)}, out)) return -1;
  return 1;
}

int LimitsTable::find_user(std::string_view name, Entry& out) noexcept {
  if (status_ != TableStatus::ok || name.size() > name_max) return 0;
  char key[format::key_max];
  int r = find({key, format::user_key(name, key)}, out);
  return r == 1 && out.kind != Kind::user ? -1 : r;
}

int LimitsTable::find_domain(std::string_view domain, Entry& out) noexcept {
  if (status_ != TableStatus::ok || domain.size() > name_max) return 0;
  char key[format::key_max];
  int r = find({key, format::domain_key(domain, key)}, out);
  return r == 1 && out.kind != Kind::domain ? -1 : r;
}

int LimitsTable::find_network(const ip::Address& a, unsigned prefix, Entry& out) noexcept {
  if (status_ != TableStatus::ok || prefix > a.bits()) return 0;
  char key[2 + 16];
  int r = find({key, format::network_key(a, prefix, key)}, out);
  if (r != 1) return r;
  // the record must be the block the key names
  if (out.network.prefix != prefix || !(out.network.address == ip::masked(a, prefix))) return -1;
  return 1;
}

LookupStatus LimitsTable::lookup(std::string_view ip_text, std::string_view user, Lookup& out) noexcept {
  out.reset();
  if (status_ != TableStatus::ok) return LookupStatus::not_open;
  std::optional<ip::Address> a = ip::parse(ip_text);
  if (!a) return LookupStatus::bad_address;
  return lookup(*a, user, out);
}

LookupStatus LimitsTable::lookup(const ip::Address& addr, std::string_view user, Lookup& out) noexcept {
  out.reset();
  if (status_ != TableStatus::ok) return LookupStatus::not_open;
  if (user.size() > name_max) return LookupStatus::bad_user;

  const bool v4 = addr.family == ip::Family::v4;
  out.client_key_len_ = block_key(addr, v4 ? 32 : client_prefix6, out.client_key_);
  const std::string_view client_key = out.client_key();

  // the user and the user's domain, in lower case
  char name[name_max];
  for (std::size_t i = 0; i < user.size(); ++i) name[i] = lower(user[i]);
  const std::string_view lowered(name, user.size());
  if (!lowered.empty()) {
    if (index_.has_users) {
      int r = find_user(lowered, out.user_);
      if (r < 0) return LookupStatus::corrupt;
      out.has_user_ = r == 1 && out.user_.has_relay;
    }
    std::size_t at = lowered.rfind('@');
    if (index_.has_domains && at != std::string_view::npos && at + 1 < lowered.size()) {
      int r = find_domain(lowered.substr(at + 1), out.domain_);
      if (r < 0) return LookupStatus::corrupt;
      out.has_domain_ = r == 1 && out.domain_.has_relay;
    }
  }

  // The most specific IP entry (longest prefix first; the index says which
  // lengths exist). For each kind of setting it lacks, its record names the
  // most specific less specific block that has it: one more probe at most,
  // shared when two kinds come from the same block.
  const format::PrefixSet* sets = v4 ? index_.v4 : index_.v6;
  const format::PrefixSet present = sets[format::relay] | sets[format::teergrube] | sets[format::authfail];
  const Entry* tg_entry = nullptr;
  const Entry* af_entry = nullptr;
  int found = 0;
  for (int p = present.highest(static_cast<int>(addr.bits())); p >= 0; p = present.highest(p - 1)) {
    found = find_network(addr, static_cast<unsigned>(p), out.ip_[0]);
    if (found < 0) return LookupStatus::corrupt;
    if (found == 1) break;
  }
  if (found == 1) {
    const Entry& first = out.ip_[0];
    out.ip_count_ = 1;
    bool bad = false;
    // the block of prefix `which` names, decoded once into a free slot
    auto ancestor = [&](int which) -> const Entry* {
      std::uint8_t p = first.ancestors[which];
      if (p == format::no_ancestor) return nullptr;
      for (std::size_t i = 1; i < out.ip_count_; ++i)
        if (out.ip_[i].network.prefix == p) return &out.ip_[i];
      Entry& slot = out.ip_[out.ip_count_];
      if (find_network(addr, p, slot) != 1) {
        bad = true;
        return nullptr;
      }
      ++out.ip_count_;
      return &slot;
    };
    const bool authenticated = !lowered.empty();
    auto counts_for_relay = [authenticated](const Entry& e) {
      return e.has_relay && !(e.relay.unauthenticated && authenticated);
    };
    if (counts_for_relay(first)) {
      out.relay_ip_ = &first;
    } else if ((out.relay_ip_ = ancestor(authenticated ? format::up_relay_authenticated : format::up_relay))) {
      bad = bad || !counts_for_relay(*out.relay_ip_);
    }
    if (first.has_teergrube) {
      tg_entry = &first;
    } else if ((tg_entry = ancestor(format::up_teergrube))) {
      bad = bad || !tg_entry->has_teergrube;
    }
    if (first.has_authfail) {
      af_entry = &first;
    } else if ((af_entry = ancestor(format::up_authfail))) {
      bad = bad || !af_entry->has_authfail;
    }
    if (bad) return LookupStatus::corrupt;
  }

  // relay budgets
  auto add_budget = [&out](const Entry& e, std::string_view key) {
    Budget& b = out.budgets_[out.budget_count_++];
    b.entry = &e;
    b.kind = e.kind;
    b.key = key;
    b.rcpt = &e.relay.rcpt;
    b.msg = &e.relay.msg;
    b.action = e.relay.action;
    if (e.relay.exempt && out.exempt_by_ == nullptr) out.exempt_by_ = &e;
  };
  if (out.has_user_) add_budget(out.user_, out.user_.budget_key);
  if (out.has_domain_) add_budget(out.domain_, out.domain_.budget_key);
  if (out.relay_ip_ != nullptr)
    add_budget(*out.relay_ip_, out.relay_ip_->relay.each ? client_key : out.relay_ip_->budget_key);
  if (out.budget_count_ == 0 && index_.has_default && default_.has_relay) {
    out.relay_default_ = &default_;
    std::string_view key = client_key;
    if (!lowered.empty()) key = {out.user_key_, format::user_key(lowered, out.user_key_)};
    add_budget(default_, key);
  }
  if (out.exempt_by_ != nullptr) out.budget_count_ = 0;

  // teergrube: the IP entry's fields, then the default's, then built-ins
  const Entry* dflt = index_.has_default && default_.has_teergrube ? &default_ : nullptr;
  const std::uint16_t eset = tg_entry ? tg_entry->teergrube.set : 0;
  const std::uint16_t dset = dflt ? dflt->teergrube.set : 0;
  TeergrubeSettings& t = out.teergrube_;
  t.entry = tg_entry;
  t.fallback = dflt;
  // settings from a spamthrottle line keep its /16 when nothing says otherwise
  const Entry* decides = tg_entry ? tg_entry : dflt;
  if (decides != nullptr && decides->teergrube.spamthrottle) t.prefix4 = builtin::spamthrottle_prefix4;
  auto from = [&](std::uint16_t bit, bool default_allowed) -> const Teergrube* {
    if (eset & bit) {
      t.from_entry |= bit;
      return &tg_entry->teergrube;
    }
    if (default_allowed && (dset & bit)) {
      t.from_default |= bit;
      return &dflt->teergrube;
    }
    return nullptr;
  };
  if (const Teergrube* s = from(field::st, true)) t.st_ms = s->st_ms;
  if (const Teergrube* s = from(field::stmax, true)) t.stmax_ms = s->stmax_ms;
  if (const Teergrube* s = from(field::strcpt, true)) t.strcpt = s->strcpt;
  if (const Teergrube* s = from(field::tg, true)) t.tg_seconds = s->tg_seconds;
  if (const Teergrube* s = from(field::flush, true)) t.flush = s->flush;
  if (const Teergrube* s = from(field::tarpitrelay, true)) t.tarpitrelay = s->tarpitrelay;
  if (from(field::tgtext, true)) t.text = (t.from_entry & field::tgtext) ? tg_entry->tgtext : dflt->tgtext;
  // how state is shared: an entry that says anything about it overrides the
  // default's group
  const bool entry_says_state = (eset & field::state) != 0;
  if (from(field::group, !entry_says_state)) t.group = (t.from_entry & field::group) ? tg_entry->group : dflt->group;
  if (const Teergrube* s = from(field::prefix4, true)) t.prefix4 = s->prefix4;
  if (const Teergrube* s = from(field::prefix6, true)) t.prefix6 = s->prefix6;
  const unsigned state_prefix = v4 ? t.prefix4 : t.prefix6;
  if (!t.group.empty()) {
    std::size_t n = put(out.state_key_, "g:");
    n += put(out.state_key_ + n, t.group);
    t.state_key = {out.state_key_, n};
  } else if (state_prefix == (v4 ? 32u : client_prefix6)) {
    t.state_key = client_key;  // the usual case: per client
  } else {
    t.state_key = {out.state_key_, block_key(addr, state_prefix, out.state_key_)};
  }

  // AUTH failures: per client address
  if (af_entry != nullptr) {
    out.authfail_ = AuthFailLimit{&af_entry->authfail, client_key, af_entry};
  } else if (index_.has_default && default_.has_authfail) {
    out.authfail_ = AuthFailLimit{&default_.authfail, client_key, &default_};
  } else {
    out.authfail_ = AuthFailLimit{&no_windows, client_key, nullptr};
  }
  return LookupStatus::ok;
}

}  // namespace spamt
