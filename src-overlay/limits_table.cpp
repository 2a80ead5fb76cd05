// limits_table.cpp: see limits_table.h.

#include "limits_table.h"

#include <cerrno>

#include <cdb.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "helpers.h"

namespace spamt {

namespace {

constexpr Windows no_windows{};
constexpr Client no_client{};

// The cdb record at `p` (avail >= 8 bytes there, at file offset pos): its
// key and value, and where the next record starts. -1 when it does not fit.
int parse_record(const unsigned char* p, std::size_t avail, std::uint32_t pos, std::string_view& key,
                 std::string_view& value, std::uint32_t& next) noexcept {
  std::uint32_t klen = cdb_unpack(p), vlen = cdb_unpack(p + 4);
  if (klen > avail - 8 || vlen > avail - 8 - klen) return -1;
  key = {reinterpret_cast<const char*>(p + 8), klen};
  value = {reinterpret_cast<const char*>(p + 8 + klen), vlen};
  next = pos + 8 + klen + vlen;
  return 1;
}

using helpers::lower;

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
  client_ = ClientLimits{&no_client, {}, nullptr};
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
  auto fail = [this](TableStatus s, int err = 0) {
    close();
    status_ = s;
    errno_ = err;
    return s;
  };
  struct stat st;
  if (::fstat(fd, &st) != 0) return fail(TableStatus::unreadable, errno);
  // a cdb has a 2048-byte header, and 32-bit positions
  if (st.st_size < 2048 || st.st_size > 0xffffffffLL) return fail(TableStatus::corrupt);
  size_ = static_cast<std::uint32_t>(st.st_size);
  // One read: the header into tables_, and what follows it (the first
  // records, below) into default_.bytes.
  struct iovec iov[2] = {{tables_, sizeof tables_}, {default_.bytes, sizeof default_.bytes}};
  ssize_t got;
  do got = ::preadv(fd, iov, 2, 0);
  while (got < 0 && errno == EINTR);
  if (got < static_cast<ssize_t>(sizeof tables_)) return fail(TableStatus::unreadable, got < 0 ? errno : EIO);
  // bytes from offset 2048 on already in default_.bytes
  std::size_t prefetched = static_cast<std::size_t>(got) - sizeof tables_;
  for (std::uint32_t& t : tables_) t = cdb_unpack(reinterpret_cast<const unsigned char*>(&t));
  status_ = TableStatus::ok;

  // "!format", "!index" and "!default" are the first records, in the
  // file's first page: read in order, no hash probes
  std::uint32_t pos = 2048;
  auto next_record = [&](std::string_view& key, std::string_view& value) -> int {
    const std::size_t at = pos - 2048;
    if (at + 8 <= prefetched &&
        parse_record(reinterpret_cast<const unsigned char*>(default_.bytes) + at, prefetched - at, pos, key, value,
                     pos) == 1)
      return 1;
    prefetched = 0;  // not all there: record_at() reads it, overwriting the buffer
    return record_at(pos, default_.bytes, key, value, pos);
  };
  std::string_view key, value;
  int r = next_record(key, value);
  if (r < 0) return fail(TableStatus::corrupt);
  if (r == 0 || key != format::version_key || value != format::version) return fail(TableStatus::wrong_version);
  if (next_record(key, value) != 1 || key != format::index_key || !format::decode_index(value, index_))
    return fail(TableStatus::corrupt);
  if (index_.has_default) {
    if (next_record(key, value) != 1 || key != format::default_key ||
        !format::decode_entry(value, default_.entry) || default_.entry.kind != Kind::fallback)
      return fail(TableStatus::corrupt);
  }
  return status_;
}

void LimitsTable::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  size_ = 0;
  index_ = format::Index{};
  default_.entry = Entry{};
  errno_ = 0;
  status_ = TableStatus::closed;
}

bool LimitsTable::read_exact(void* buf, std::size_t n, std::uint32_t pos) noexcept {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(pos));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
    pos += static_cast<std::uint32_t>(r);
  }
  return true;
}

int LimitsTable::record_at(std::uint32_t pos, char* buf, std::string_view& key, std::string_view& value,
                           std::uint32_t& next) noexcept {
  // most records are a few hundred bytes: read 512, then the rest if needed
  if (pos > size_) return -1;
  const std::size_t most = size_ - pos < format::record_max ? size_ - pos : format::record_max;
  std::size_t avail = most < 512 ? most : 512;
  if (!read_exact(buf, avail, pos)) return -1;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(buf);
  if (avail < 8) return 0;
  std::size_t need = std::size_t{8} + cdb_unpack(p) + cdb_unpack(p + 4);
  if (need > avail && need <= most) {
    if (!read_exact(buf + avail, need - avail, pos + static_cast<std::uint32_t>(avail))) return -1;
    avail = need;
  }
  return parse_record(p, avail, pos, key, value, next);
}

// cdb(5) lookup with pread(): the key's hash picks one of 256 tables and a
// slot in it; slots (hash, record position) are probed in order, eight per
// read, until an empty one.
int LimitsTable::get(std::string_view key, char* buf, std::string_view& value) noexcept {
  const std::uint32_t h = cdb_hash(key.data(), static_cast<unsigned>(key.size()));
  const std::uint32_t tpos = tables_[2 * (h & 255)], tlen = tables_[2 * (h & 255) + 1];
  if (tlen == 0) return 0;
  if (tpos < 2048 || tlen > (size_ - tpos) / 8 || tpos > size_) return -1;
  std::uint32_t slot = (h >> 8) % tlen;
  for (std::uint32_t checked = 0; checked < tlen;) {
    std::uint32_t n = tlen - slot < 8 ? tlen - slot : 8;
    if (n > tlen - checked) n = tlen - checked;
    unsigned char slots[64];
    if (!read_exact(slots, n * 8, tpos + slot * 8)) return -1;
    for (std::uint32_t i = 0; i < n; ++i) {
      std::uint32_t sh = cdb_unpack(slots + 8 * i), rpos = cdb_unpack(slots + 8 * i + 4);
      if (rpos == 0) return 0;
      if (sh != h) continue;
      std::string_view k;
      std::uint32_t next;
      if (record_at(rpos, buf, k, value, next) != 1) return -1;
      if (k == key) return 1;
    }
    checked += n;
    slot = (slot + n) % tlen;
  }
  return 0;
}

int LimitsTable::find(std::string_view key, Entry& entry, char* bytes) noexcept {
  std::string_view value;
  int r = get(key, bytes, value);
  if (r != 1) return r;
  return format::decode_entry(value, entry) ? 1 : -1;
}

int LimitsTable::find_user(std::string_view name, Entry& entry, char* bytes) noexcept {
  if (status_ != TableStatus::ok || name.size() > name_max) return 0;
  char key[format::key_max];
  int r = find({key, format::user_key(name, key)}, entry, bytes);
  return r == 1 && entry.kind != Kind::user ? -1 : r;
}

int LimitsTable::find_domain(std::string_view domain, Entry& entry, char* bytes) noexcept {
  if (status_ != TableStatus::ok || domain.size() > name_max) return 0;
  char key[format::key_max];
  int r = find({key, format::domain_key(domain, key)}, entry, bytes);
  return r == 1 && entry.kind != Kind::domain ? -1 : r;
}

int LimitsTable::find_network(const ip::Address& a, unsigned prefix, Entry& entry, char* bytes) noexcept {
  if (status_ != TableStatus::ok || prefix > a.bits()) return 0;
  char key[2 + 16];
  int r = find({key, format::network_key(a, prefix, key)}, entry, bytes);
  if (r != 1) return r;
  // the record must be the block the key names
  if (entry.network.prefix != prefix || !(entry.network.address == ip::masked(a, prefix))) return -1;
  return 1;
}

int LimitsTable::find_user(std::string_view name, Record& out) noexcept { return find_user(name, out.entry, out.bytes); }

int LimitsTable::find_domain(std::string_view domain, Record& out) noexcept {
  return find_domain(domain, out.entry, out.bytes);
}

int LimitsTable::find_network(const ip::Address& a, unsigned prefix, Record& out) noexcept {
  return find_network(a, prefix, out.entry, out.bytes);
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

  out.client_key_len_ = block_key(addr, addr.family == ip::Family::v4 ? 32 : client_prefix6, out.client_key_);
  // the user in lower case
  char name[name_max];
  for (std::size_t i = 0; i < user.size(); ++i) name[i] = lower(user[i]);
  const std::string_view lowered(name, user.size());

  if (!find_identities(lowered, out)) return LookupStatus::corrupt;
  IpEntries ip;
  if (!walk_prefixes(addr, !lowered.empty(), out, ip)) return LookupStatus::corrupt;
  add_budgets(lowered, out);
  resolve_teergrube(addr, ip.teergrube, out);
  resolve_authfail(ip.authfail, out);
  resolve_client(addr, ip.client, out);
  return LookupStatus::ok;
}

// Identities: the user's entry and the user's domain's entry, when they
// have relay settings. False when a record is unreadable.
bool LimitsTable::find_identities(std::string_view lowered, Lookup& out) noexcept {
  if (lowered.empty()) return true;
  if (index_.has_users) {
    int r = find_user(lowered, out.user_, out.bytes_[Lookup::user_bytes]);
    if (r < 0) return false;
    out.has_user_ = r == 1 && out.user_.has_relay;
  }
  std::size_t at = lowered.rfind('@');
  if (index_.has_domains && at != std::string_view::npos && at + 1 < lowered.size()) {
    int r = find_domain(lowered.substr(at + 1), out.domain_, out.bytes_[Lookup::domain_bytes]);
    if (r < 0) return false;
    out.has_domain_ = r == 1 && out.domain_.has_relay;
  }
  return true;
}

// Prefix walk: the most specific IP entry (longest prefix first; the index
// says which lengths exist). For each kind of setting it lacks, its record
// names the most specific less specific block that has it: one more probe
// at most, shared when two kinds come from the same block. Sets
// out.relay_ip_ and `ip`; false when a record is unreadable or wrong.
bool LimitsTable::walk_prefixes(const ip::Address& addr, bool authenticated, Lookup& out, IpEntries& ip) noexcept {
  const format::PrefixSet* sets = addr.family == ip::Family::v4 ? index_.v4 : index_.v6;
  const format::PrefixSet present = format::Index::any(sets);
  int found = 0;
  for (int p = present.highest(static_cast<int>(addr.bits())); p >= 0; p = present.highest(p - 1)) {
    found = find_network(addr, static_cast<unsigned>(p), out.ip_[0], out.bytes_[Lookup::ip_bytes]);
    if (found < 0) return false;
    if (found == 1) break;
  }
  if (found != 1) return true;
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
    if (find_network(addr, p, slot, out.bytes_[Lookup::ip_bytes + out.ip_count_]) != 1) {
      bad = true;
      return nullptr;
    }
    ++out.ip_count_;
    return &slot;
  };
  auto counts_for_relay = [authenticated](const Entry& e) {
    return e.has_relay && !(e.relay.unauthenticated && authenticated);
  };
  if (counts_for_relay(first)) {
    out.relay_ip_ = &first;
  } else if ((out.relay_ip_ = ancestor(authenticated ? format::up_relay_authenticated : format::up_relay))) {
    bad = bad || !counts_for_relay(*out.relay_ip_);
  }
  if (first.has_teergrube) {
    ip.teergrube = &first;
  } else if ((ip.teergrube = ancestor(format::up_teergrube))) {
    bad = bad || !ip.teergrube->has_teergrube;
  }
  if (first.has_authfail) {
    ip.authfail = &first;
  } else if ((ip.authfail = ancestor(format::up_authfail))) {
    bad = bad || !ip.authfail->has_authfail;
  }
  if (first.has_client) {
    ip.client = &first;
  } else if ((ip.client = ancestor(format::up_client))) {
    bad = bad || !ip.client->has_client;
  }
  return !bad;
}

// Budgets: user, domain and IP entry at once, else the default as a
// template (per user, or per client); none when any of them is exempt.
void LimitsTable::add_budgets(std::string_view lowered, Lookup& out) noexcept {
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
  const std::string_view client_key = out.client_key();
  if (out.has_user_) add_budget(out.user_, out.user_.budget_key);
  if (out.has_domain_) add_budget(out.domain_, out.domain_.budget_key);
  if (out.relay_ip_ != nullptr)
    add_budget(*out.relay_ip_, out.relay_ip_->relay.each ? client_key : out.relay_ip_->budget_key);
  const Entry& fallback = default_.entry;
  if (out.budget_count_ == 0 && index_.has_default && fallback.has_relay) {
    out.relay_default_ = &fallback;
    std::string_view key = client_key;
    if (!lowered.empty()) key = {out.user_key_, format::user_key(lowered, out.user_key_)};
    add_budget(fallback, key);
  }
  if (out.exempt_by_ != nullptr) out.budget_count_ = 0;
}

// Teergrube: the IP entry's fields, then the default's, then built-ins; and
// the key of the state the client shares.
void LimitsTable::resolve_teergrube(const ip::Address& addr, const Entry* tg_entry, Lookup& out) noexcept {
  const bool v4 = addr.family == ip::Family::v4;
  const Entry& fallback = default_.entry;
  const Entry* dflt = index_.has_default && fallback.has_teergrube ? &fallback : nullptr;
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
    t.state_key = out.client_key();  // the usual case: per client
  } else {
    t.state_key = {out.state_key_, block_key(addr, state_prefix, out.state_key_)};
  }
}

// AUTH failures: the IP entry's limit, else the default's; per client address.
void LimitsTable::resolve_authfail(const Entry* af_entry, Lookup& out) noexcept {
  const Entry& fallback = default_.entry;
  const std::string_view client_key = out.client_key();
  if (af_entry != nullptr) {
    out.authfail_ = AuthFailLimit{&af_entry->authfail, client_key, af_entry};
  } else if (index_.has_default && fallback.has_authfail) {
    out.authfail_ = AuthFailLimit{&fallback.authfail, client_key, &fallback};
  } else {
    out.authfail_ = AuthFailLimit{&no_windows, client_key, nullptr};
  }
}

// Client limits: the IP entry's, else the default's; per client unless an
// address or network entry (without each) counts its block as one. An IPv6
// client counted on its own is counted per the prefix6 that applies to it
// (resolve_teergrube: its entry's, the default's, else /64), as Postfix's
// smtpd_client_ipv6_prefix_length groups anvil's counts.
void LimitsTable::resolve_client(const ip::Address& addr, const Entry* client_entry, Lookup& out) noexcept {
  const Entry& fallback = default_.entry;
  std::string_view client_key = out.client_key();
  if (addr.family == ip::Family::v6 && out.teergrube_.prefix6 != client_prefix6)
    client_key = {out.client_limits_key_, block_key(addr, out.teergrube_.prefix6, out.client_limits_key_)};
  if (client_entry != nullptr) {
    out.client_ = ClientLimits{&client_entry->client,
                               client_entry->client.each ? client_key : client_entry->budget_key, client_entry};
  } else if (index_.has_default && fallback.has_client) {
    out.client_ = ClientLimits{&fallback.client, client_key, &fallback};
  } else {
    out.client_ = ClientLimits{&no_client, client_key, nullptr};
  }
}

bool LimitsTable::may_limit_clients(ip::Family family) const noexcept {
  if (status_ != TableStatus::ok) return false;
  if (index_.has_default && default_.entry.has_client && !default_.entry.client.unlimited()) return true;
  return (family == ip::Family::v4 ? index_.v4 : index_.v6)[format::client].any();
}

}  // namespace spamt
