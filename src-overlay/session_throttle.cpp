// session_throttle.cpp: see session_throttle.h.

#include "session_throttle.h"

#include <cstdlib>

#include "connection_policy.h"
#include "control_file.h"
#include "helpers.h"
#include "inbound_policy.h"
#include "logline.h"
#include "store_factory.h"
#include "throttle_controls.h"

namespace throttle {

namespace {

constexpr const char fail_closed_rcpt[] = "451 4.3.0 relay limits are temporarily unavailable, try again later\r\n";
constexpr const char fail_closed_auth[] = "454 4.3.0 authentication is temporarily unavailable, try again later\r\n";

std::string_view policy_name(bool fail_closed) { return fail_closed ? "fail-closed" : "fail-open"; }

}  // namespace

namespace {

// What every session may need: no file is read.
Config base_config() {
  Config c;
  c.store.directory = "throttle";
  c.disabled = std::getenv("NOTHROTTLE") != nullptr;
  return c;
}

// What only faults and the store need: control/throttlefail,
// control/throttlestoresize, control/throttlestore. A size that is not
// valid is reported through `problem` and the default applies
// (throttle_controls.h).
void apply_control_files(Config& c, FunctionRef<void(const std::string&)> problem) {
  c.fail_closed = control_file::first_line("control/throttlefail") == "closed";
  c.store_line = control_file::first_line("control/throttlestore");
  const throttle_controls::Number& size = throttle_controls::store_size;
  const throttle_controls::Reading mib = throttle_controls::read(size, "control/throttlestoresize");
  using Status = throttle_controls::Reading::Status;
  if (mib.status == Status::invalid || mib.status == Status::unreadable) problem(throttle_controls::log_line(size, mib));
  c.store.map_size = static_cast<std::size_t>(mib.value) << 20;
}

}  // namespace

Config config_from_qmail(FunctionRef<void(const std::string&)> problem) {
  Config c = base_config();
  apply_control_files(c, problem);
  return c;
}

Config config_from_qmail() {
  return config_from_qmail([](const std::string&) {});
}

SessionThrottle::SessionThrottle(Clock clock, Log log) noexcept : clock_(clock), log_(log) {}

SessionThrottle::~SessionThrottle() = default;

void SessionThrottle::configure(Config config) { config_.emplace(std::move(config)); }

const Config& SessionThrottle::config() {
  if (!config_) {
    config_.emplace(base_config());
    policy_pending_ = true;
  }
  return *config_;
}

const Config& SessionThrottle::policy() {
  config();
  if (policy_pending_) {
    apply_control_files(*config_, [this](const std::string& line) { log(line); });
    policy_pending_ = false;
  }
  return *config_;
}

void SessionThrottle::log(const std::string& line) const noexcept {
  if (log_ != nullptr)
    log_(line);
  else
    logline::emit(line);
}

void SessionThrottle::start(std::string_view ip, bool relay_client) {
  ip_.assign(ip);
  relay_client_ = relay_client;
}

void SessionThrottle::set_user(std::string_view user) {
  user_.assign(user);
  relay_client_ = true;
  if (table_state_ == TableState::ok) table_state_ = TableState::unknown;  // look up again, with the user
}

SessionThrottle::TableState SessionThrottle::table_state() {
  if (table_state_ != TableState::unknown) return table_state_;
  if (!table_) {
    if (!table_.emplace()) return table_state_ = TableState::fault;
    spamt::TableStatus s = table_->open(config().table_path);
    if (s == spamt::TableStatus::missing) return table_state_ = TableState::none;
    if (s != spamt::TableStatus::ok) {
      log("throttle: table fault ip " + logline::field(ip_) + " " + std::string(config().table_path) + ": " +
          std::string(spamt::status_name(s)) + ": " + std::string(policy_name(policy().fail_closed)));
      return table_state_ = TableState::fault;
    }
  } else if (table_->status() != spamt::TableStatus::ok) {
    return table_state_ = TableState::fault;
  }
  if (!lookup_ && !lookup_.emplace()) return table_state_ = TableState::fault;
  spamt::LookupStatus ls = table_->lookup(ip_, user_, *lookup_);
  if (ls != spamt::LookupStatus::ok) {
    log("throttle: table fault ip " + logline::field(ip_) + " lookup: " + std::string(spamt::status_name(ls)) +
        ": " + std::string(policy_name(policy().fail_closed)));
    return table_state_ = TableState::fault;
  }
  return table_state_ = TableState::ok;
}

const spamt::Lookup* SessionThrottle::lookup() {
  return table_state() == TableState::ok ? &*lookup_ : nullptr;
}

store::Store* SessionThrottle::store() {
  if (!store_) {
    const Config& c = policy();
    store_ = store::make_store(c.store_line, c.store, c.password_file);
  }
  return store_.get();
}

bool SessionThrottle::relay_limited() {
  if (!relay_client_ || config().disabled) return false;
  switch (table_state()) {
    case TableState::ok: return !lookup_->exempt() && !lookup_->relay().empty();
    case TableState::fault: return policy().fail_closed;
    default: return false;
  }
}

bool SessionThrottle::teergrube_offers_pipelining() {
  if (config().disabled) return true;
  return teergrube_policy::offers_pipelining(teergrube_policy::applies(lookup(), relay_client_));
}

teergrube_policy::Delay SessionThrottle::teergrube_at_data(std::uint32_t rcpts) {
  if (config().disabled) return {};
  const spamt::TeergrubeSettings* t = teergrube_policy::applies(lookup(), relay_client_);
  if (t == nullptr) return {};
  store::Result r;
  teergrube_policy::Delay d =
      with_store([&](store::Store& st) { return teergrube_policy::decide(st, *t, rcpts, now(), r); });
  if (!r.ok() && !teergrube_fault_logged_) {
    log(teergrube_policy::fault_log(ip_, r));
    teergrube_fault_logged_ = true;
  }
  d.directory = config().store.directory;
  return d;
}

std::uint32_t SessionThrottle::tarpit_budget() const noexcept {
  const throttle_controls::Number& n = throttle_controls::tarpit_budget;
  const throttle_controls::Reading r = throttle_controls::read(n, "control/tarpitbudget");
  using Status = throttle_controls::Reading::Status;
  if (r.status == Status::invalid || r.status == Status::unreadable) log(throttle_controls::log_line(n, r));
  return r.value;
}

void SessionThrottle::teergrube_log(const teergrube_policy::Delay& delay, std::uint64_t waited_ms,
                                    std::string_view how) const noexcept {
  log(teergrube_policy::delay_log(ip_, delay, waited_ms, how));
}

void SessionThrottle::release_for_wait() noexcept {
  store_.reset();
  lookup_.reset();
  table_.reset();
  if (table_state_ == TableState::ok) table_state_ = TableState::unknown;
}

Decision SessionThrottle::store_fault(const std::string& what, store::Status status, const std::string& reason,
                                      bool auth) {
  return store_fault(what, status, reason, std::string_view(auth ? fail_closed_auth : fail_closed_rcpt));
}

Decision SessionThrottle::store_fault(const std::string& what, store::Status status, const std::string& reason,
                                      std::string_view closed_reply) {
  bool closed = policy().fail_closed;
  if (!store_fault_logged_ || closed) {
    log("throttle: store fault ip " + logline::field(ip_) + " " + what + ": " +
        std::string(store::status_name(status)) + " (" + logline::text(reason) + "): " +
        std::string(policy_name(closed)));
    store_fault_logged_ = true;
  }
  if (!closed) return Decision::ok;
  reply_ = closed_reply;
  return Decision::defer;
}

const spamt::ClientLimits* SessionThrottle::client_limits() {
  if (config().disabled) return nullptr;
  // no table, or a table fault (logged): client limits do not apply; the
  // fail-open/closed policy is the relay decisions' to apply
  if (table_state() != TableState::ok) return nullptr;
  return &lookup_->client();
}

Decision SessionThrottle::apply(connection_policy::Decision& d, Decision refused) {
  if (!d.log.empty()) log(d.log);
  if (d.outcome == connection_policy::Outcome::accept) return Decision::ok;
  log(d.verdict.log);
  reply_ = std::move(d.verdict.reply);
  return refused;
}

Decision SessionThrottle::greeting() {
  const spamt::ClientLimits* limits = client_limits();
  if (limits == nullptr) return Decision::ok;
  const spamt::ClientLimits& c = *limits;
  const connection_policy::Needs needs = connection_policy::needs(c);
  if (needs.slot) {
    const client_slots::Slot::Outcome slot =
        conn_slot_.acquire(config().store.directory + "/conn", c.key, c.limits->conn);
    connection_policy::Decision d = connection_policy::after_slot(c, slot, conn_slot_.error(), ip_);
    if (apply(d, Decision::drop) != Decision::ok) return Decision::drop;
  }
  if (needs.rate) {
    store::Limit counters[spamt::max_windows];
    const std::size_t n = connection_policy::counters_for_connection(c, counters);
    store::ChargeResult r =
        with_store([&](store::Store& st) { return st.charge({counters, n}, 1, now(), nullptr); });
    connection_policy::Decision d = connection_policy::after_rate(c, r, counters, n, policy().fail_closed, ip_);
    return apply(d, Decision::drop);
  }
  return Decision::ok;
}

Decision SessionThrottle::client_event(const spamt::ClientLimits& c, connection_policy::Event e,
                                       store::Receipt* receipt) {
  store::Limit counters[spamt::max_windows];
  const std::size_t n = connection_policy::counters_for_event(c, e, counters);
  if (n == 0) return Decision::ok;
  store::ChargeResult r = with_store([&](store::Store& st) { return st.charge({counters, n}, 1, now(), receipt); });
  connection_policy::Decision d = connection_policy::after_event(c, e, r, counters, n, policy().fail_closed, ip_);
  return apply(d, Decision::defer);
}

Decision SessionThrottle::tls(bool smtps) {
  const spamt::ClientLimits* limits = client_limits();
  if (limits == nullptr) return Decision::ok;
  return client_event(*limits, smtps ? connection_policy::Event::smtps : connection_policy::Event::starttls, nullptr);
}

Decision SessionThrottle::rcpt() {
  if (!relay_limited()) return Decision::ok;
  if (table_state_ == TableState::fault) {  // relay_limited(): fail-closed
    reply_ = fail_closed_rcpt;
    return Decision::defer;
  }
  store::Limit counters[relay_policy::max_counters];
  relay_policy::CounterOrigin origins[relay_policy::max_counters];
  std::size_t n = relay_policy::counters_for_rcpt(lookup_->relay(), !charged_in_transaction_, counters, origins);
  if (n == 0) return Decision::ok;
  store::ChargeResult r =
      with_store([&](store::Store& st) { return st.charge({counters, n}, 1, now(), &receipt_); });
  if (!r.ok()) return store_fault("charge", r.status, r.reason, false);
  if (!r.accepted) {
    const store::Refusal& f = r.refusal;
    relay_policy::Verdict v = relay_policy::refusal(origins[f.index], f.used, f.limit, f.retry_after_ms, ip_);
    log(v.log);
    reply_ = std::move(v.reply);
    return v.code == 421 ? Decision::drop : Decision::defer;
  }
  charged_in_transaction_ = true;
  return Decision::ok;
}

Decision SessionThrottle::inbound_rcpt() {
  if (relay_client_) return Decision::ok;
  const spamt::ClientLimits* limits = client_limits();
  if (limits == nullptr) return Decision::ok;
  const spamt::ClientLimits& c = *limits;
  store::Limit counters[inbound_policy::max_counters];
  const std::size_t n = inbound_policy::counters_for_rcpt(c, !inbound_charged_in_transaction_, counters);
  if (n == 0) return Decision::ok;
  store::ChargeResult r =
      with_store([&](store::Store& st) { return st.charge({counters, n}, 1, now(), &receipt_); });
  if (!r.ok()) return store_fault("charge", r.status, r.reason, inbound_policy::fail_closed_reply);
  if (!r.accepted) {
    const store::Limit& refused = counters[r.refusal.index < n ? r.refusal.index : 0];
    relay_policy::Verdict v = inbound_policy::refusal(c, refused, r.refusal, ip_);
    log(v.log);
    reply_ = std::move(v.reply);
    return Decision::defer;
  }
  inbound_charged_in_transaction_ = true;
  return Decision::ok;
}

void SessionThrottle::end_transaction(bool queued) {
  charged_in_transaction_ = false;
  inbound_charged_in_transaction_ = false;
  if (receipt_.empty()) return;
  if (queued) {
    receipt_.clear();
    return;
  }
  give_back(receipt_);
}

void SessionThrottle::give_back(store::Receipt& receipt) {
  store::Result r = with_store([&](store::Store& st) { return st.refund(receipt, now()); });
  if (!r.ok()) {
    log("throttle: store fault ip " + logline::field(ip_) + " refund: " + std::string(store::status_name(r.status)) +
        " (" + logline::text(r.reason) + "): charges kept");
    receipt.clear();
  }
}

Decision SessionThrottle::auth_attempt() {
  if (config().disabled) return Decision::ok;
  TableState t = table_state();
  if (t == TableState::fault) {
    if (!policy().fail_closed) return Decision::ok;
    reply_ = fail_closed_auth;
    return Decision::defer;
  }
  if (t != TableState::ok) return Decision::ok;
  // authrate= counts every AUTH command, before authfail= looks: a command
  // authfail= refuses is given back, so only answered commands count
  store::Receipt counted;
  if (client_event(lookup_->client(), connection_policy::Event::auth, &counted) != Decision::ok)
    return Decision::defer;
  Decision d = authfail_attempt();
  if (d != Decision::ok && !counted.empty()) give_back(counted);
  return d;
}

Decision SessionThrottle::authfail_attempt() {
  const spamt::AuthFailLimit& a = lookup_->authfail();
  if (a.windows->empty()) return Decision::ok;
  std::vector<store::CounterUsage> usage;
  store::Result r = with_store([&](store::Store& st) { return st.usage(a.key, now(), usage); });
  if (!r.ok()) return store_fault("usage", r.status, r.reason, true);
  std::optional<relay_policy::Verdict> v = relay_policy::auth_attempt_refusal(a, usage, ip_);
  if (!v) return Decision::ok;
  log(v->log);
  reply_ = std::move(v->reply);
  return Decision::defer;
}

Decision SessionThrottle::auth_failure() {
  if (config().disabled || table_state() != TableState::ok) return Decision::ok;
  const spamt::AuthFailLimit& a = lookup_->authfail();
  store::Limit counters[spamt::max_windows];
  std::size_t n = relay_policy::counters_for_authfail(a, counters);
  if (n == 0) return Decision::ok;
  store::ChargeResult r =
      with_store([&](store::Store& st) { return st.charge({counters, n}, 1, now(), nullptr); });
  if (!r.ok()) {
    // The failure is answered 535 either way; fail-closed cannot make it worse.
    store_fault("charge", r.status, r.reason, true);
    return Decision::ok;
  }
  if (r.accepted) return Decision::ok;
  relay_policy::Verdict v = relay_policy::auth_failure_refusal(a, counters[r.refusal.index], r.refusal, ip_);
  log(v.log);
  reply_ = std::move(v.reply);
  return Decision::drop;
}

}  // namespace throttle
