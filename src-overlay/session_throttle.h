// session_throttle.h: one qmail-smtpd connection's view of the throttle.
//
// It holds what a connection needs - the client, the limits table opened
// once, the store opened at the first decision, the transaction's receipt -
// and makes the decisions throttle.h hands to qmail-smtpd.c:
//
//   relay limits  rcpt() for a relayed recipient that passed every stock
//                 check; end_transaction() when the transaction is queued
//                 (the charges stay) or abandoned (they are given back);
//   inbound rates inbound_rcpt() for a recipient of a client that is not a
//                 relay client (inmsg=, inrcpt=; inbound_policy.h), charged
//                 into the same receipt as relay charges;
//   AUTH          auth_attempt() before credentials are read (the client
//                 limit authrate=, connection_policy.h, then authfail=),
//                 auth_failure() after they were refused (the table's
//                 authfail= limit, per client address; the verdicts are
//                 relay_policy.h's);
//   teergrube     teergrube_at_data() at DATA: the delay due
//                 (teergrube_policy.h); smtpd_teergrube.cpp waits it out.
//
// Nothing is read before it is needed: a connection that never relays and
// never tries AUTH opens no file. Faults of the table or the store follow
// the configured policy - fail-open (the default, as the rcptcheck script
// did) or fail-closed (temporary refusal) - with one log line each.
//
// Log and clock are injected, so unit tests read the lines and drive time;
// without a clock, every decision uses the store's (store::store_clock: this
// host's for LMDB, the server's for Redis).

#ifndef QT_SESSION_THROTTLE_H
#define QT_SESSION_THROTTLE_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "client_slots.h"
#include "connection_policy.h"
#include "function_ref.h"
#include "limits_table.h"
#include "mapped_box.h"
#include "relay_policy.h"
#include "store.h"
#include "teergrube_policy.h"
#include "store_lmdb.h"
#include "store_url.h"

namespace throttle {

enum class Decision : std::uint8_t { ok, defer, drop };

struct Config {
  const char* table_path = "control/spamt.cdb";  // not owned: a literal (no heap in a session that only looks up)
  store::LmdbOptions store;  // directory: "throttle" (qmail-smtpd runs in QMAIL_HOME); also the tarpit budget's
  std::string store_line;    // control/throttlestore: "" (LMDB) or a Redis URL (store_url.h)
  std::string password_file = "control/throttlestorepassword";
  bool fail_closed = false;  // control/throttlefail: "closed"
  bool disabled = false;     // NOTHROTTLE in the environment (tcprules)
};

// qmail-smtpd's configuration, read in QMAIL_HOME: NOTHROTTLE from the
// environment, control/throttlefail, control/throttlestoresize (MiB),
// control/throttlestore. A control file whose value is not valid gets one
// line through `problem` ("throttle: control/NAME: ..."); its default
// applies.
Config config_from_qmail(FunctionRef<void(const std::string&)> problem);
Config config_from_qmail();

class SessionThrottle {
 public:
  using Clock = std::uint64_t (*)() noexcept;
  using Log = void (*)(std::string_view) noexcept;

  // `config` may be given later (configure()): qmail-smtpd reads it only
  // when a decision needs it.
  explicit SessionThrottle(Clock clock = nullptr, Log log = nullptr) noexcept;
  ~SessionThrottle();
  SessionThrottle(const SessionThrottle&) = delete;
  SessionThrottle& operator=(const SessionThrottle&) = delete;

  void configure(Config config);
  bool configured() const noexcept { return config_.has_value(); }

  // The client (TCPREMOTEIP) and whether it is a relay client (RELAYCLIENT).
  void start(std::string_view ip, bool relay_client);
  // Before the greeting: client limits conn= (a slot held for the
  // session's life, client_slots.h) and connrate= (connection_policy.h).
  // drop: reply() is the 421.
  Decision greeting();
  // Before a TLS handshake (STARTTLS, or SMTPS before the greeting): the
  // client limit tlsrate= (connection_policy.h). defer: too many TLS
  // sessions; reply() is the 454 for STARTTLS, an SMTPS connection closes.
  Decision tls(bool smtps);
  // The session ends (throttle_exit()): lets go of the conn= slot now, so
  // the last session of a client removes its file (client_slots.h); the
  // kernel would free the place anyway, but leave the file.
  void end_session() noexcept { conn_slot_.release(); }

  // AUTH succeeded: limits now key on `user` (user@domain), and the session
  // relays.
  void set_user(std::string_view user);

  // Do relay limits apply to this session? When true, qmail-smtpd tells
  // relayed recipients (domain not in rcpthosts) apart and calls rcpt().
  bool relay_limited();
  // One relayed recipient that passed every other check.
  Decision rcpt();
  // One recipient of a client that is not a relay client, past every stock
  // check: charges inrcpt= (and inmsg= for the transaction's first) on the
  // client's key. defer: reply() is the 450 (or, failing closed on a store
  // fault, a 451). Nothing happens without such limits.
  Decision inbound_rcpt();
  // The transaction ends: queued keeps its charges, anything else gives
  // them back. Cheap when nothing was charged.
  void end_transaction(bool queued);

  Decision auth_attempt();
  Decision auth_failure();

  // The reply to a defer or drop decision, CRLF-terminated.
  const std::string& reply() const noexcept { return reply_; }

  // op(store) - the store opened on demand - with store_busy() true
  // meanwhile. Every store operation of a session goes through here.
  template <class Op>
  auto with_store(Op op) {
    const Busy busy(store_calls_);
    return op(*store());
  }
  // Whether a store operation is under way: a fatal error inside one ends
  // the process without a refund (throttle_exit()), since the store cannot
  // be entered again half-way through an operation.
  bool store_busy() const noexcept { return store_calls_ != 0; }

  // The teergrube (teergrube_policy.h). Whether EHLO may offer PIPELINING.
  bool teergrube_offers_pipelining();
  // One DATA of `rcpts` recipients: the client's state updated in the
  // store, and the delay due (none when NOTHROTTLE, no table entry or a
  // store fault, logged once).
  teergrube_policy::Delay teergrube_at_data(std::uint32_t rcpts);
  // The one log line of a delay teergrube_at_data() decided.
  void teergrube_log(const teergrube_policy::Delay& delay, std::uint64_t waited_ms, std::string_view how) const noexcept;
  // control/tarpitbudget (throttle_controls.h): held sessions allowed on
  // this host; a value that is not valid is logged and the default applies.
  std::uint32_t tarpit_budget() const noexcept;
  // Before a long wait: close the store and the table and drop the lookup
  // (their maps and buffers); the next decision opens them again. The
  // transaction's receipt is kept.
  void release_for_wait() noexcept;

  // For tests: the store (opened on demand).
  store::Store* store();

 private:
  enum class TableState : std::uint8_t { unknown, none, ok, fault };

  const Config& config();  // without the control files read (cheap)
  const Config& policy();  // with them: faults and the store need them
  TableState table_state();  // opens and looks up on first use
  const spamt::Lookup* lookup();  // nullptr when there is no usable table
  // The injected clock's time, else store::store_clock (the store's own).
  std::uint64_t now() const noexcept { return clock_ != nullptr ? clock_() : store::store_clock; }
  // The client limits that apply to this session; nullptr when throttling
  // is disabled or no usable table (then client limits do not apply).
  const spamt::ClientLimits* client_limits();
  // A client-limit decision: its log lines, and on a refusal the reply and
  // `refused` (drop at the greeting, defer for a command).
  Decision apply(connection_policy::Decision& d, Decision refused);
  // tlsrate= or authrate= of `c`: one event charged (connection_policy::Event);
  // `receipt` (may be null) records the charge.
  Decision client_event(const spamt::ClientLimits& c, connection_policy::Event e, store::Receipt* receipt);
  Decision authfail_attempt();  // authfail='s check at an AUTH command
  // Refunds `receipt`; a store fault is logged and the charges stay.
  void give_back(store::Receipt& receipt);
  Decision store_fault(const std::string& what, const store::Status status, const std::string& reason,
                       bool auth);
  Decision store_fault(const std::string& what, const store::Status status, const std::string& reason,
                       std::string_view closed_reply);
  void log(const std::string& line) const noexcept;

  Clock clock_;
  Log log_;
  std::optional<Config> config_;
  bool policy_pending_ = false;  // config_ lacks the control files yet
  std::string ip_;
  std::string user_;
  bool relay_client_ = false;

  // Built on first use, each in its own mapping: a held session gives
  // them back whole (release_for_wait()).
  MappedBox<spamt::LimitsTable> table_;
  MappedBox<spamt::Lookup> lookup_;
  TableState table_state_ = TableState::unknown;

  struct Busy {
    unsigned& calls;
    explicit Busy(unsigned& c) noexcept : calls(c) { ++calls; }
    ~Busy() { --calls; }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;
  };

  std::unique_ptr<store::Store> store_;  // store_factory.h
  unsigned store_calls_ = 0;             // with_store() under way
  bool store_fault_logged_ = false;
  bool teergrube_fault_logged_ = false;
  store::Receipt receipt_;  // this transaction's charges
  bool charged_in_transaction_ = false;          // relay: the message is charged
  bool inbound_charged_in_transaction_ = false;  // inbound: inmsg is charged
  std::string reply_;
  client_slots::Slot conn_slot_;  // conn=: held until the process ends
};

// The session of this qmail-smtpd process (throttle.cpp).
SessionThrottle& current_session() noexcept;

}  // namespace throttle

#endif
