// limits_table.h: which limits apply to a client - control/spamt.cdb read.
//
// qmail-smtpd opens the table once per connection and asks, for the client
// address and (after AUTH) the user, which relay budgets to charge, which
// teergrube settings to use and which AUTH failure limit applies:
//
//   spamt::LimitsTable table;
//   switch (table.open("control/spamt.cdb")) {
//     case spamt::TableStatus::ok: break;
//     case spamt::TableStatus::missing: ... no table: nothing is limited
//     default: ... log status_name(table.status()); fail-open/closed policy
//   }
//   static spamt::Lookup l;  // ~14 KB
//   if (table.lookup(remoteip, user, l) != spamt::LookupStatus::ok) ... policy
//   if (l.exempt()) ... not relay-limited at all
//   for (const spamt::Budget& b : l.relay()) ... charge b.key per b.rcpt/b.msg
//   l.teergrube() ... resolved settings; l.authfail() ... limit and key
//
// Semantics (doc/spamt.5 is the reference):
// - Relay: the user's entry (user@domain or login), the user's domain's
//   entry (@domain), and the most specific IP entry (longest prefix; entries
//   marked `unauthenticated` are skipped when a user is given) apply at
//   once, each with its own budget. Only entries that have relay settings
//   count. The default applies only when none of them matches, as a
//   template: one budget per user, or per client address when no user.
//   If any applicable entry is `exempt`, relay() is empty and exempt() true.
// - Teergrube: the most specific IP entry with teergrube settings; fields it
//   leaves unset come from the default entry, then from built-in values
//   (prefix4 16 instead of 32 when those settings come from a spamthrottle
//   line, as spamthrottle had it).
//   group=/prefix4=/prefix6= together say how clients share state: an
//   entry that sets any of them overrides the default's group.
// - authfail: the most specific IP entry with authfail=, else the default's;
//   always one budget per client address.
// - Client limits (conn=, connrate=, inmsg=, ...): the most specific IP
//   entry with client settings, else the default's; counted per client
//   address (the default, `each`) or per entry's block (an address or
//   network entry without `each`). `exempt` there: no client limits.
// - Budget keys name who is counted: "u:alice@example.com", "d:example.com",
//   "a:192.0.2.7", "n:192.0.2.0/24"; IPv6 clients are counted per /64
//   ("n:2001:db8:1:2::/64") where a budget is per client. The same party
//   gets the same key whichever entry counts it, so counts survive table
//   changes. Stores should key counters by (budget key, counter, window).
// - Names are compared in ASCII lower case (a limit cannot be dodged by
//   writing ALICE@Example.COM); a user longer than name_max is bad input.
//
// Cost. qmail-smtpd is a fresh process per connection that looks up one
// or two clients, so the table is read with pread(), never mapped: open()
// is open+fstat and one read (preadv); a lookup reads one hash slot group
// and one record per probe (one probe per prefix length present, stopping
// at the first hit, plus at most three for less specific entries). Every
// user of the table (qmail-smtpd, qmail-newspamt, qmail-throttlectl, the
// tests, the fuzzers and the bench) reads it this one way. lookup()
// allocates nothing: results point into the table or the Lookup object.
// Nothing here throws, uses iostreams or has a global constructor: it is
// linked into qmail-smtpd.

#ifndef QT_LIMITS_TABLE_H
#define QT_LIMITS_TABLE_H

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "ip_address.h"
#include "spamt_format.h"
#include "spamt_settings.h"

namespace spamt {

enum class TableStatus : std::uint8_t {
  closed,         // open() not called (or failed and closed)
  ok,
  missing,        // no such file: there is no table
  unreadable,     // open/fstat/read failed (errno in LimitsTable::error())
  corrupt,        // not a valid cdb, or its index record is damaged
  wrong_version,  // no "!format" key, or another format (e.g. qmail-newst's)
};

enum class LookupStatus : std::uint8_t {
  ok,
  not_open,     // the table is not open (status() != ok)
  bad_address,  // the client address is not an IP address
  bad_user,     // the user name is longer than name_max
  corrupt,      // a record could not be read or decoded
};

std::string_view status_name(TableStatus s) noexcept;
std::string_view status_name(LookupStatus s) noexcept;

// A decoded entry, and the bytes its views point into.
struct Record {
  Entry entry;
  char bytes[format::record_max];
};

// One relay budget to charge: who is counted and how much is allowed.
struct Budget {
  const Entry* entry = nullptr;  // the entry that set these limits
  Kind kind = Kind::fallback;    // entry->kind
  std::string_view key;          // the budget key
  const Windows* rcpt = nullptr; // recipients: never null; empty = no limit
  const Windows* msg = nullptr;  // messages: never null; empty = no limit
  unsigned action = 451;         // reply when over: 451, 450 or 421
};

// Resolved teergrube settings for this client.
struct TeergrubeSettings {
  std::uint32_t st_ms = 0;  // 0: no teergrube
  std::uint32_t stmax_ms = 0;
  std::uint32_t strcpt = 0;
  std::uint32_t tg_seconds = 0;
  bool flush = false;
  bool tarpitrelay = false;
  std::uint8_t prefix4 = builtin::prefix4;
  std::uint8_t prefix6 = builtin::prefix6;
  std::string_view text = builtin::tgtext;  // continuation text
  std::string_view group;                   // shared state group, or empty
  // Where the client's teergrube state lives: "g:NAME" for a group, else the
  // client's block under prefix4/prefix6 ("a:192.0.2.7", "n:192.0.2.0/24",
  // "n:2001:db8::/64").
  std::string_view state_key;

  const Entry* entry = nullptr;     // the IP entry used, or null
  const Entry* fallback = nullptr;  // the default entry fields came from, or null
  std::uint16_t from_entry = 0;     // field:: bits taken from `entry`
  std::uint16_t from_default = 0;   // ... from the default entry
  // the rest are built-in values

  bool active() const noexcept { return st_ms != 0; }
};

// The AUTH failure limit for this client.
struct AuthFailLimit {
  const Windows* windows = nullptr;  // never null; empty = no limit
  std::string_view key;              // the client's budget key
  const Entry* entry = nullptr;      // the entry that set it, or null (none)
};

// The client limits for this client (Postfix anvil's).
struct ClientLimits {
  const Client* limits = nullptr;  // never null; limits->unlimited() when none apply
  std::string_view key;            // who is counted: the client's key, or the entry's block
  const Entry* entry = nullptr;    // the entry that set them, or null (none)
};

// The result of one lookup. It holds the decoded entries and key buffers its
// views point to, so it is neither copied nor moved; it stays valid until
// the next lookup into it or until the table is closed. It is about 14 KB
// (six records): keep one per session (static or with the session state)
// rather than on a small stack.
class Lookup {
 public:
  Lookup() = default;
  Lookup(const Lookup&) = delete;
  Lookup& operator=(const Lookup&) = delete;

  // Relay budgets to charge, user first, then domain, IP, or the default.
  // Empty when exempt() or when nothing limits this client.
  std::span<const Budget> relay() const noexcept { return {budgets_, budget_count_}; }
  bool exempt() const noexcept { return exempt_by_ != nullptr; }
  const Entry* exempt_by() const noexcept { return exempt_by_; }

  const TeergrubeSettings& teergrube() const noexcept { return teergrube_; }
  const AuthFailLimit& authfail() const noexcept { return authfail_; }
  const ClientLimits& client() const noexcept { return client_; }

  // The client's own budget key: "a:192.0.2.7", or the /64 for IPv6.
  std::string_view client_key() const noexcept { return {client_key_, client_key_len_}; }

  // The entries found, for explaining (null when none).
  const Entry* user_entry() const noexcept { return has_user_ ? &user_ : nullptr; }
  const Entry* domain_entry() const noexcept { return has_domain_ ? &domain_ : nullptr; }
  const Entry* relay_ip_entry() const noexcept { return relay_ip_; }
  // The default entry when it applied to relay limits.
  const Entry* relay_default() const noexcept { return relay_default_; }

 private:
  friend class LimitsTable;
  void reset() noexcept;

  // The decoded entries, together at the start; the bytes their views point
  // into come last, one record_max buffer each, so a
  // lookup that reads no record touches only the first page of a fresh
  // Lookup.
  Entry user_, domain_;
  Entry ip_[format::ancestor_count];  // the most specific IP entry, then ancestors it names
  std::size_t ip_count_ = 0;
  bool has_user_ = false, has_domain_ = false;
  const Entry* relay_ip_ = nullptr;
  const Entry* relay_default_ = nullptr;
  const Entry* exempt_by_ = nullptr;
  Budget budgets_[3];
  std::size_t budget_count_ = 0;
  TeergrubeSettings teergrube_;
  AuthFailLimit authfail_;
  ClientLimits client_;
  char client_key_[2 + ip::text_max] = {};
  std::size_t client_key_len_ = 0;
  char user_key_[2 + name_max] = {};  // the default's per-user key
  char state_key_[2 + ip::text_max + 64] = {};
  char client_limits_key_[2 + ip::text_max] = {};  // an IPv6 client under a prefix6 other than /64
  enum : std::size_t { user_bytes, domain_bytes, ip_bytes };  // ip_[i]: ip_bytes + i
  char bytes_[ip_bytes + format::ancestor_count][format::record_max];
};

class LimitsTable {
 public:
  LimitsTable() = default;
  ~LimitsTable() { close(); }
  LimitsTable(const LimitsTable&) = delete;
  LimitsTable& operator=(const LimitsTable&) = delete;

  // Opens and checks the table (format version, index, default entry).
  TableStatus open(const char* path) noexcept;
  // Takes over an open descriptor (closed by close()).
  TableStatus open_fd(int fd) noexcept;
  void close() noexcept;

  TableStatus status() const noexcept { return status_; }
  int error() const noexcept { return errno_; }  // errno when unreadable

  // Looks up a client: `ip` as TCPREMOTEIP gives it, `user` as AUTH gave it
  // (empty: not authenticated). Overwrites `out`.
  LookupStatus lookup(std::string_view ip, std::string_view user, Lookup& out) noexcept;
  LookupStatus lookup(const ip::Address& ip, std::string_view user, Lookup& out) noexcept;

  // --- lower level, for explaining and tests --------------------------------
  const format::Index& index() const noexcept { return index_; }
  const Entry* default_entry() const noexcept { return index_.has_default ? &default_.entry : nullptr; }
  // Whether any entry that can apply to a client of `family` carries client
  // limits (the index and the default say; no probe).
  bool may_limit_clients(ip::Family family) const noexcept;
  // One probe each: 1 found (out set), 0 not found, -1 unreadable record.
  int find_user(std::string_view lowered_name, Record& out) noexcept;
  int find_domain(std::string_view lowered_domain, Record& out) noexcept;
  int find_network(const ip::Address& a, unsigned prefix, Record& out) noexcept;

 private:
  // The steps of lookup(), in order (limits_table.cpp).
  struct IpEntries {
    const Entry* teergrube = nullptr;  // the IP entry with teergrube settings, or null
    const Entry* authfail = nullptr;   // ... with authfail=, or null
    const Entry* client = nullptr;     // ... with client limits, or null
  };
  bool find_identities(std::string_view lowered_user, Lookup& out) noexcept;
  bool walk_prefixes(const ip::Address& a, bool authenticated, Lookup& out, IpEntries& ip) noexcept;
  void add_budgets(std::string_view lowered_user, Lookup& out) noexcept;
  void resolve_teergrube(const ip::Address& a, const Entry* tg_entry, Lookup& out) noexcept;
  void resolve_authfail(const Entry* af_entry, Lookup& out) noexcept;
  void resolve_client(const ip::Address& addr, const Entry* client_entry, Lookup& out) noexcept;

  int find(std::string_view key, Entry& entry, char* bytes) noexcept;
  int find_user(std::string_view lowered_name, Entry& entry, char* bytes) noexcept;
  int find_domain(std::string_view lowered_domain, Entry& entry, char* bytes) noexcept;
  int find_network(const ip::Address& a, unsigned prefix, Entry& entry, char* bytes) noexcept;
  // The value of `key`, copied into `buf` (format::record_max bytes): 1
  // found, 0 not, -1 error.
  int get(std::string_view key, char* buf, std::string_view& value) noexcept;
  // The record at file offset `pos`: its key and value, and where the next
  // one starts. 1, 0 (no record there), -1 error.
  int record_at(std::uint32_t pos, char* buf, std::string_view& key, std::string_view& value,
                std::uint32_t& next) noexcept;
  bool read_exact(void* buf, std::size_t n, std::uint32_t pos) noexcept;

  std::uint32_t size_ = 0;      // the file's size
  std::uint32_t tables_[512];  // the cdb header, 256 (position, length) pairs
  int fd_ = -1;
  TableStatus status_ = TableStatus::closed;
  int errno_ = 0;
  format::Index index_;
  Record default_;
};

}  // namespace spamt

#endif
