// destination_scheduler.cpp: see destination_scheduler.h and doc/concurrencydomains.5.

#include "destination_scheduler.h"

#include <algorithm>

#include "helpers.h"

namespace destinations {

namespace {

// A budget for domains no line covers: no limit, no rate, no backoff.
constexpr std::uint32_t no_limit = std::numeric_limits<std::uint32_t>::max();

// Report text made fit for one log line, as qmail-send's logsafe() does:
// newlines become '/', blanks, controls, '%' and non-ASCII become '_'.
std::string logsafe(std::string_view s, std::size_t max = 300) {
  std::string out;
  for (char c : s.substr(0, max)) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '\n') out += '/';
    else if (u < 33 || u > 126 || c == '%') out += '_';
    else out += c;
  }
  return out;
}

using helpers::period_text;

}  // namespace

std::string describe(const Budget& b, Block why) {
  switch (why) {
    case Block::none: return "may start";
    case Block::concurrency:
      if (b.state == Budget::State::probing) return "probing with one delivery";
      if (b.own && b.line == Table::none) return "learning its route, one delivery at a time";
      return "at its limit of " + std::to_string(b.limit) + (b.limit == 1 ? " delivery" : " deliveries") +
             " at once";
    case Block::rate: {
      char buf[spamt::windows_text_max];
      return "at its rate limit of " + std::string(buf, spamt::format_windows(b.rate, buf));
    }
    case Block::paused: return "paused";
    case Block::zero: return "limit 0 holds every delivery";
  }
  return "?";
}

Scheduler::Scheduler(LogSink& log, Settings settings) : log_(log), settings_(settings) {
  unlimited_.name = "unlimited";
  unlimited_.unlimited = true;
  unlimited_.limit = no_limit;
  unlimited_.backoff.failures = 0;
  unlimited_.epoch = next_epoch_++;
}

Scheduler::~Scheduler() = default;

void Scheduler::log(std::string text) { log_.line(text); }

std::string Scheduler::domain_of(std::string_view recip) {
  const std::size_t at = recip.rfind('@');
  if (at == std::string_view::npos) return {};
  return canonical_name(recip.substr(at + 1));
}

const Domain* Scheduler::domain(std::string_view canonical) const noexcept {
  auto it = domains_.find(canonical);
  return it == domains_.end() ? nullptr : it->second.get();
}

// ---- budgets ---------------------------------------------------------------

void Scheduler::set_settings(Budget& b, const Line* line) {
  if (line == nullptr) {  // learning: one delivery at a time until the route is known
    b.limit = 1;
    b.rate = spamt::Windows{};
    b.backoff.failures = 0;
    b.starts.reset();
    return;
  }
  if (!(b.rate == line->rate)) {
    b.starts.reset();
    if (!line->rate.empty()) b.starts = std::make_unique<window::Counter[]>(line->rate.count);
  }
  b.limit = line->limit;
  b.rate = line->rate;
  if (!(b.backoff == line->backoff)) {
    b.backoff = line->backoff;
    b.failures = 0;
    if (b.backoff.failures == 0 && b.state != Budget::State::normal) b.state = Budget::State::normal;
  }
}

Block Scheduler::block_of(const Budget& b, Ms now) const noexcept {
  if (b.state == Budget::State::paused && now < b.paused_until) return Block::paused;
  if (b.limit == 0) return Block::zero;
  const std::uint32_t limit = b.state == Budget::State::normal ? b.limit : 1;
  if (b.inflight + b.reserved >= limit) return Block::concurrency;
  for (std::size_t i = 0; i < b.rate.count && b.starts; ++i) {
    window::Counter c = b.starts[i];
    const std::uint64_t w = window::bucket_ms(b.rate.at[i].seconds);
    window::align(c, w, static_cast<std::uint64_t>(now));
    if (!window::room(c, w, static_cast<std::uint64_t>(now), b.rate.at[i].limit, 1).fits) return Block::rate;
  }
  return Block::none;
}

// Whether `b` may start a delivery now; if not, *until is when that may
// change without a delivery finishing (forever if only a delivery can).
Block Scheduler::check(Budget& b, Ms now, Ms* until) {
  *until = forever;
  if (b.state == Budget::State::paused) {
    if (now < b.paused_until) {
      *until = b.paused_until;
      return Block::paused;
    }
    b.state = Budget::State::probing;
    log("destination " + b.name + ": probing with one delivery");
  }
  const Block why = block_of(b, now);
  if (why == Block::rate) {
    std::uint64_t wait = 0;
    for (std::size_t i = 0; i < b.rate.count; ++i) {
      const std::uint64_t w = window::bucket_ms(b.rate.at[i].seconds);
      window::align(b.starts[i], w, static_cast<std::uint64_t>(now));
      window::Room r = window::room(b.starts[i], w, static_cast<std::uint64_t>(now), b.rate.at[i].limit, 1);
      if (!r.fits && r.retry_after_ms != window::never) wait = std::max(wait, r.retry_after_ms);
    }
    *until = now + static_cast<Ms>(std::max<std::uint64_t>(wait, 1));
  }
  return why;
}

// Puts `b` where it belongs: ready, waiting for a time, or waiting for a
// delivery to finish.
void Scheduler::consider(Budget& b, Ms now) {
  if (b.queue.empty()) {
    unready(b);
    untime(b);
    b.holding = false;
    return;
  }
  Ms until = forever;
  const Block why = check(b, now, &until);
  if (why == Block::none) {
    untime(b);
    make_ready(b);
    return;
  }
  unready(b);
  if (until != forever) set_timer(b, until);
  else untime(b);
}

void Scheduler::make_ready(Budget& b) {
  if (b.ready) return;
  b.ready = true;
  b.ready_at = ready_.insert(ready_.end(), &b);
}

void Scheduler::unready(Budget& b) {
  if (!b.ready) return;
  if (current_ == &b) current_ = nullptr;
  ready_.erase(b.ready_at);
  b.ready = false;
}

void Scheduler::set_timer(Budget& b, Ms at) {
  if (b.timed) {
    if (b.timer_at->first == at) return;
    timers_.erase(b.timer_at);
  }
  b.timer_at = timers_.emplace(at, &b);
  b.timed = true;
}

void Scheduler::untime(Budget& b) {
  if (!b.timed) return;
  timers_.erase(b.timer_at);
  b.timed = false;
}

// Before a budget goes away: out of every list.
void Scheduler::forget_budget(Budget& b) {
  unready(b);
  untime(b);
  if (current_ == &b) current_ = nullptr;
  drop_reservations(&b);
  if (last_hold_.budget == &b) last_hold_ = LastHold{};
}

void Scheduler::release(std::list<Reservation>::iterator r, Ms now) {
  if (r->budget != nullptr && r->budget->reserved != 0) --r->budget->reserved;
  Budget* b = r->budget;
  reserved_for_.erase(r->message);
  reservations_.erase(r);
  if (b != nullptr) consider(*b, now);  // a slot is free again
}

// A parked message handed back and not read within reservation_ttl (the
// queue file went away, say): its slot is given back.
void Scheduler::expire_reservations(Ms now) {
  while (!reservations_.empty() && now - reservations_.front().at >= reservation_ttl)
    release(reservations_.begin(), now);
}

void Scheduler::drop_reservations(const Budget* b) {
  for (auto it = reservations_.begin(); it != reservations_.end();) {
    auto here = it++;
    if (b == nullptr || here->budget == b) {
      reserved_for_.erase(here->message);
      reservations_.erase(here);
    }
  }
}

void Scheduler::drop_own(Domain& d) {
  if (!d.own) return;
  forget_budget(*d.own);
  d.own.reset();
}

// ---- domains and their budgets ---------------------------------------------

// The budget the table gives `d` now.
Budget* Scheduler::target(Domain& d) {
  int line = table_.by_domain(d.name);
  if (line == Table::none && d.learned && table_.has_route_lines())
    line = table_.by_route(d.mx, d.address ? &*d.address : nullptr);
  const Line* own_line = nullptr;
  bool learning = false;
  if (line == Table::none) {
    if (table_.fallback() != Table::none) {
      own_line = &table_.lines()[table_.fallback()];
    } else if (table_.has_route_lines() && !d.learned) {
      learning = true;
    } else {
      return &unlimited_;
    }
  }
  if (line != Table::none) {
    std::unique_ptr<Budget>& b = shared_[line];
    if (!b) {
      b = std::make_unique<Budget>();
      b->name = table_.lines()[line].destination;
      b->epoch = next_epoch_++;
      set_settings(*b, &table_.lines()[line]);
    }
    b->line = line;
    return b.get();
  }
  if (!d.own) {
    d.own = std::make_unique<Budget>();
    d.own->name = d.name;
    d.own->own = true;
    d.own->epoch = next_epoch_++;
  }
  d.own->line = learning ? Table::none : table_.fallback();
  set_settings(*d.own, own_line);
  return d.own.get();
}

// Moves `d` (its deliveries in flight and its held recipients) to the
// budget the table gives it now, if that changed.
void Scheduler::bind(Domain& d, Ms now) {
  Budget* old = d.budget;
  Budget* now_budget = target(d);
  if (old == now_budget) return;
  d.budget = now_budget;
  if (old != nullptr) {
    old->inflight -= std::min(old->inflight, d.inflight);
    if (d.held != 0)
      old->queue.remove_if([&d](const Held& h) { return h.domain == &d; },
                           [now_budget](const Held& h) { now_budget->queue.push(h); });
  }
  now_budget->inflight += d.inflight;
  if (old != nullptr && old == d.own.get()) {
    drop_own(d);
  } else if (old != nullptr) {
    consider(*old, now);
  }
  consider(*now_budget, now);
}

Domain& Scheduler::domain_for(std::string_view canonical, Ms now) {
  auto it = domains_.find(canonical);
  Domain* d;
  if (it == domains_.end()) {
    trim_domains(now);  // before the new one is in the list: it must not go
    auto fresh = std::make_unique<Domain>();
    fresh->name = std::string(canonical);
    d = fresh.get();
    d->lru_at = lru_.insert(lru_.begin(), d);
    domains_.emplace(d->name, std::move(fresh));
    bind(*d, now);
  } else {
    d = it->second.get();
    touch(*d);
  }
  if (d->learned && now - d->learned_at > settings_.route_ttl) {
    d->learned = false;
    d->mx.clear();
    d->address.reset();
    bind(*d, now);
  }
  return *d;
}

void Scheduler::touch(Domain& d) {
  if (d.lru_at != lru_.begin()) lru_.splice(lru_.begin(), lru_, d.lru_at);
}

// Nothing here that must be kept: no deliveries, nothing held, and its own
// budget (if any) has no rate window, failure count or pause running.
bool Scheduler::idle(const Domain& d, Ms now) const noexcept {
  if (d.inflight != 0 || d.held != 0) return false;
  if (!d.own) return true;
  const Budget& b = *d.own;
  // kept while its "holding" line is recent, so that it is not logged again
  if (b.hold_logged_at != std::numeric_limits<Ms>::min() && now - b.hold_logged_at < settings_.hold_log_interval)
    return false;
  if (b.state != Budget::State::normal || b.failures != 0 || b.reserved != 0) return false;
  for (std::size_t i = 0; i < b.rate.count && b.starts; ++i)
    if (window::idle_at_ms(b.starts[i], window::bucket_ms(b.rate.at[i].seconds)) >
        static_cast<std::uint64_t>(now))
      return false;
  return true;
}

// A domain that has become idle and taught nothing is dropped at once; one
// with a learned route stays until trim_domains() needs its room.
void Scheduler::evict_if_idle(Domain& d, Ms now) {
  if (d.learned || !idle(d, now)) return;
  drop_own(d);
  lru_.erase(d.lru_at);
  domains_.erase(d.name);
}

// At most max_domains domains: the least recently used idle ones go.
void Scheduler::trim_domains(Ms now) {
  std::size_t looked = 0;
  while (domains_.size() >= settings_.max_domains && looked++ < 64 && !lru_.empty()) {
    Domain& d = *lru_.back();
    if (!idle(d, now)) {  // busy: look at it again later
      touch(d);
      continue;
    }
    drop_own(d);
    lru_.pop_back();
    domains_.erase(d.name);
  }
}

// ---- configuration ---------------------------------------------------------

void Scheduler::configure(Table table, Ms now) {
  // Every held recipient leaves its queue, in order, to return below.
  HeldQueue pending;
  auto take_all = [&pending](Budget& b) {
    b.queue.remove_if([](const Held&) { return true; }, [&pending](const Held& h) { pending.push(h); });
  };
  for (auto& b : shared_)
    if (b) take_all(*b);
  for (auto& [name, d] : domains_)
    if (d->own) take_all(*d->own);
  take_all(unlimited_);

  // Reservations for parked messages end: when they are read again their
  // recipients queue like any other.
  drop_reservations(nullptr);
  for (auto& b : shared_)
    if (b) b->reserved = 0;
  for (auto& [name, d] : domains_)
    if (d->own) d->own->reserved = 0;
  last_hold_ = LastHold{};

  // Shared budgets keep their state where a line of the same destination
  // stays.
  std::unordered_map<std::string, std::unique_ptr<Budget>> old;
  for (auto& b : shared_)
    if (b) {
      forget_budget(*b);
      std::string key = b->name;
      old.emplace(std::move(key), std::move(b));
    }
  table_ = std::move(table);
  shared_.clear();
  shared_.resize(table_.lines().size());
  for (std::size_t i = 0; i < table_.lines().size(); ++i) {
    const Line& l = table_.lines()[i];
    auto it = old.find(l.destination);
    if (l.kind == Kind::fallback || it == old.end()) continue;
    shared_[i] = std::move(it->second);
    shared_[i]->line = static_cast<int>(i);
    set_settings(*shared_[i], &l);
  }
  forget_budget(unlimited_);

  // Every domain anew; deliveries in flight counted where they now belong.
  for (auto& b : shared_)
    if (b) b->inflight = 0;
  unlimited_.inflight = 0;
  for (auto& [name, d] : domains_) {
    d->budget = nullptr;
    Budget* b = target(*d);
    if (b != d->own.get()) drop_own(*d);
    d->budget = b;
    b->inflight = 0;
  }
  for (auto& [name, d] : domains_) d->budget->inflight += d->inflight;
  pending.for_each([](const Held& h) { h.domain->budget->queue.push(h); });
  for (auto& b : shared_)
    if (b) consider(*b, now);
  for (auto& [name, d] : domains_)
    if (d->own) consider(*d->own, now);
  consider(unlimited_, now);
}

// ---- the delivery cycle ----------------------------------------------------

Scheduler::Admit Scheduler::admit(std::string_view recip, int job, std::uint64_t mpos, std::uint64_t message,
                                  Ms now) {
  const std::string name = domain_of(recip);
  if (name.empty()) return Admit::start;
  Domain& d = domain_for(name, now);
  Budget& b = *d.budget;
  Ms until = forever;
  Block why = Block::none;
  auto reserved = reserved_for_.find(message);
  if (reserved != reserved_for_.end() && reserved->second->budget == &b) {
    // A parked message read again: its turn has come, ahead of the queue.
    if (b.reserved != 0) --b.reserved;
    reservations_.erase(reserved->second);
    reserved_for_.erase(reserved);
    if (check(b, now, &until) == Block::none) return Admit::start;
  } else if (b.queue.empty()) {
    why = check(b, now, &until);
    if (why == Block::none) return Admit::start;
  }
  if (held_ >= settings_.max_held || mpos > 0xffffffffu || recip.size() > HeldQueue::max_recip) {
    evict_if_idle(d, now);
    return Admit::later;
  }
  const bool first = b.queue.empty();
  b.queue.push(Held{&d, job, static_cast<std::uint32_t>(mpos), recip});
  ++d.held;
  ++held_;
  if (last_hold_.job == job) {
    ++last_hold_.count;
    if (last_hold_.budget != &b) last_hold_.budget = nullptr;
  } else {
    last_hold_ = LastHold{job, &b, 1};
  }
  if (first) {
    note_holding(b, why, now);
    consider(b, now);
  }
  return Admit::hold;
}

// One line when a destination starts holding recipients, at most one per
// hold_log_interval; a pause has logged its own line.
void Scheduler::note_holding(Budget& b, Block why, Ms now) {
  if (b.holding) return;
  b.holding = true;
  b.blocked_since = now;
  if (why == Block::paused) return;
  if (b.hold_logged_at != std::numeric_limits<Ms>::min() && now - b.hold_logged_at < settings_.hold_log_interval)
    return;
  b.hold_logged_at = now;
  log("destination " + b.name + ": holding recipients: " + describe(b, why));
}

bool Scheduler::park(int job, std::uint64_t message, std::int64_t birth, int refs) {
  const LastHold h = last_hold_;
  last_hold_ = LastHold{};
  // exactly one recipient read, held, nothing started: refs = the pass + the hold
  if (h.job != job || h.count != 1 || h.budget == nullptr || refs != 2) return false;
  Budget& b = *h.budget;
  const Held* last = b.queue.back();
  if (last == nullptr || last->job != job) return false;
  Domain* d = last->domain;
  b.queue.pop_back();
  b.queue.push(Held{d, Held::parked, 0, std::to_string(message) + " " + std::to_string(birth)});
  return true;
}

bool Scheduler::parked_message(std::string_view text, std::uint64_t* message, std::int64_t* birth) {
  const std::size_t sp = text.find(' ');
  if (sp == std::string_view::npos || sp == 0 || sp + 1 == text.size()) return false;
  std::uint64_t m = 0;
  std::int64_t t = 0;
  for (char c : text.substr(0, sp)) {
    if (c < '0' || c > '9') return false;
    m = m * 10 + static_cast<std::uint64_t>(c - '0');
  }
  for (char c : text.substr(sp + 1)) {
    if (c < '0' || c > '9') return false;
    t = t * 10 + (c - '0');
  }
  *message = m;
  *birth = t;
  return true;
}

void Scheduler::started(unsigned slot, std::string_view recip, Ms now) {
  const std::string name = domain_of(recip);
  if (name.empty()) return;
  Domain& d = domain_for(name, now);
  Budget& b = *d.budget;
  if (slots_.size() <= slot) slots_.resize(slot + 1);
  slots_[slot] = Slot{&d, b.epoch};
  ++d.inflight;
  ++b.inflight;
  for (std::size_t i = 0; i < b.rate.count && b.starts; ++i) {
    const std::uint64_t w = window::bucket_ms(b.rate.at[i].seconds);
    window::align(b.starts[i], w, static_cast<std::uint64_t>(now));
    window::charge(b.starts[i], 1);
  }
}

void Scheduler::finished(unsigned slot, const std::optional<Route>& route, std::string_view report, Ms now) {
  if (slot >= slots_.size() || slots_[slot].domain == nullptr) return;
  Domain& d = *slots_[slot].domain;
  const std::uint64_t epoch = slots_[slot].epoch;
  slots_[slot] = Slot{};
  if (d.inflight != 0) --d.inflight;
  Budget& b = *d.budget;
  if (b.inflight != 0) --b.inflight;
  if (route && epoch == b.epoch) backoff(b, route->failed(), report, now);
  if (route && table_.has_route_lines() && (route->host.size() || route->address)) {
    d.learned = true;
    d.mx = route->host;
    d.address = route->address;
    d.learned_at = now;
    bind(d, now);
  }
  consider(*d.budget, now);
  evict_if_idle(d, now);
}

void Scheduler::backoff(Budget& b, bool failed, std::string_view report, Ms now) {
  if (b.backoff.failures == 0) return;
  if (!failed) {
    b.failures = 0;
    if (b.state == Budget::State::probing) {
      b.state = Budget::State::normal;
      log("destination " + b.name + ": resumed");
    }
    return;
  }
  b.last_failure = std::string(report.substr(0, 1000));
  if (b.state == Budget::State::probing) {
    pause(b, now, "the probe failed");
    return;
  }
  if (b.state == Budget::State::paused) return;
  if (++b.failures >= b.backoff.failures)
    pause(b, now, "after " + std::to_string(b.failures) + " consecutive failures");
}

void Scheduler::pause(Budget& b, Ms now, std::string_view why) {
  b.state = Budget::State::paused;
  b.paused_until = now + static_cast<Ms>(b.backoff.pause_seconds) * 1000;
  b.failures = 0;
  b.epoch = next_epoch_++;
  log("destination " + b.name + ": paused for " + period_text(b.backoff.pause_seconds) + " " +
      std::string(why) + "; last: " + logsafe(b.last_failure));
  if (!b.queue.empty()) {
    b.sweep = true;
    sweep_pending_ = true;
  }
  consider(b, now);
}

std::optional<Held> Scheduler::next(Ms now) {
  expire_reservations(now);
  while (!timers_.empty() && timers_.begin()->first <= now) {
    Budget& b = *timers_.begin()->second;
    untime(b);
    consider(b, now);
  }
  while (!ready_.empty()) {
    Budget& b = *ready_.front();
    Ms until = forever;
    if (b.queue.empty()) {
      consider(b, now);
      continue;
    }
    if (check(b, now, &until) != Block::none) {
      consider(b, now);
      continue;
    }
    current_ = &b;
    return b.queue.front();
  }
  return std::nullopt;
}

void Scheduler::taken(Ms now) {
  Budget* b = current_;
  if (b == nullptr || b->queue.empty()) return;
  current_ = nullptr;
  const Held front = b->queue.front();
  Domain& d = *front.domain;
  std::uint64_t message = 0;
  std::int64_t birth = 0;
  if (front.is_parked() && parked_message(front.recip, &message, &birth) && !reserved_for_.count(message)) {
    ++b->reserved;
    reserved_for_[message] = reservations_.insert(reservations_.end(), Reservation{message, b, now});
  }
  b->queue.pop();
  --held_;
  if (d.held != 0) --d.held;
  // Take turns: this budget goes behind the others that are ready.
  if (b->ready) {
    ready_.erase(b->ready_at);
    b->ready = false;
  }
  consider(*b, now);
}

std::optional<Ms> Scheduler::wakeup() const noexcept {
  std::optional<Ms> at;
  if (!timers_.empty()) at = timers_.begin()->first;
  if (!reservations_.empty()) {
    const Ms r = reservations_.front().at + reservation_ttl;
    if (!at || r < *at) at = r;
  }
  return at;
}

void Scheduler::sweep(Ms now, FunctionRef<bool(const Held&, std::string_view report)> expire) {
  sweep_pending_ = false;
  auto visit = [&](Budget& b) {
    if (!b.sweep) return;
    b.sweep = false;
    const std::string report = b.last_failure;
    b.queue.remove_if([&](const Held& h) { return expire(h, report); },
                      [this](const Held& h) {
                        --held_;
                        if (h.domain->held != 0) --h.domain->held;
                      });
    consider(b, now);
  };
  for (auto& b : shared_)
    if (b) visit(*b);
  for (auto& [name, d] : domains_)
    if (d->own) visit(*d->own);
}

void Scheduler::for_each_budget(FunctionRef<void(const Budget&)> f) const {
  for (const auto& b : shared_)
    if (b) f(*b);
  for (const auto& [name, d] : domains_)
    if (d->own) f(*d->own);
  if (unlimited_.inflight != 0 || !unlimited_.queue.empty()) f(unlimited_);
}

void Scheduler::for_each_domain(FunctionRef<void(const Domain&)> f) const {
  for (const Domain* d : lru_) f(*d);
}

}  // namespace destinations
