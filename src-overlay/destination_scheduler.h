// destination_scheduler.h: which remote deliveries qmail-send may start now.
//
// control/concurrencydomains (destination_table.h) gives destinations their
// budgets: at most LIMIT deliveries in flight, at most rate= starts per
// window, and a pause after failures= consecutive failed connections or
// greetings, ended by one probing delivery. The scheduler keeps those
// budgets for qmail-send, which asks it about every recipient of the remote
// channel:
//
//   admit(recip)    start now, hold (the recipient waits here, in memory,
//                   and its job stays open), or later (too much is held
//                   already: the recipient stays in the queue file, as if it
//                   had not been read, and comes again at the message's
//                   next retry)
//   park(job)       at the end of a message whose only recipient was held:
//                   the message waits here as a number, its job is closed
//                   (not requeued); when its turn comes, next() hands it
//                   back to be read again, with a slot reserved for it
//   started(slot)   a delivery began in that slot: charge its budget
//   finished(slot)  its report came back, with the route qmail-remote took
//   next()/taken()  the oldest held recipient that may start now, then
//                   "it was started"
//
// A held recipient is not a deferral: it was never tried, is not logged,
// and its message's retry schedule is not charged. Budgets with held
// recipients take turns, so a destination at its limit never delays any
// other (no head-of-line blocking), and within a budget recipients start
// in the order they came.
//
// Routes: a domain's mail goes where qmail-remote says it went (MX host and
// address, or the smtproutes relay). When mx: or ip: lines exist the
// scheduler learns each domain's route from its completed deliveries and
// groups the domain under the matching line. Until then the domain uses a
// budget of its own: the "*" line's, or, without "*", one delivery at a
// time. A route is forgotten after route_ttl without deliveries, and at most
// max_domains domains are remembered (least recently used go first).
//
// Everything is pure: time comes in as monotonic milliseconds, log lines go
// to a LogSink, and qmail-send's jobs are plain numbers.

#ifndef QT_DESTINATION_SCHEDULER_H
#define QT_DESTINATION_SCHEDULER_H

#include <cstddef>
#include <cstdint>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "delivery_route.h"
#include "destination_table.h"
#include "function_ref.h"
#include "held_queue.h"
#include "window.h"

namespace destinations {

using Ms = std::int64_t;  // monotonic milliseconds
inline constexpr Ms forever = std::numeric_limits<Ms>::max();

// Where the scheduler's log lines go (one line each, without "\n").
class LogSink {
 public:
  virtual void line(std::string_view text) = 0;

 protected:
  ~LogSink() = default;
};

// Why a budget cannot start a delivery now.
enum class Block : std::uint8_t {
  none,
  concurrency,  // LIMIT deliveries in flight (1 while probing)
  rate,         // rate= reached in some window
  paused,       // after failures; a probe follows
  zero,         // LIMIT 0: everything is held
};

struct Budget {
  enum class State : std::uint8_t { normal, paused, probing };

  std::string name;       // the line's destination, or the domain of an own budget
  int line = Table::none; // its line; none for "learning" and "unlimited"
  bool own = false;       // a domain's own budget ("*", or while learning)
  bool unlimited = false;
  std::uint32_t limit = 0;
  spamt::Windows rate;
  Backoff backoff;

  std::uint32_t inflight = 0;
  std::uint32_t reserved = 0;  // slots kept for parked messages being read again
  HeldQueue queue;
  std::unique_ptr<window::Counter[]> starts;  // one per rate window

  State state = State::normal;
  std::uint32_t failures = 0;      // consecutive, in the current epoch
  Ms paused_until = 0;
  std::uint64_t epoch = 0;         // deliveries of an older epoch do not count for the backoff
  std::string last_failure;        // the report of the last failure
  bool sweep = false;              // paused with recipients held: see Scheduler::sweep

  bool holding = false;            // has held recipients since it was last empty
  Ms hold_logged_at = std::numeric_limits<Ms>::min();
  Ms blocked_since = 0;

  // the scheduler's lists
  bool ready = false;
  std::list<Budget*>::iterator ready_at;
  bool timed = false;
  std::multimap<Ms, Budget*>::iterator timer_at;
};

struct Domain {
  std::string name;
  Budget* budget = nullptr;     // never null once bound
  std::unique_ptr<Budget> own;  // budget == own.get() when it has one
  std::uint32_t inflight = 0;
  std::uint32_t held = 0;
  // the route learned from its deliveries
  bool learned = false;
  std::string mx;
  std::optional<ip::Address> address;
  Ms learned_at = 0;
  std::list<Domain*>::iterator lru_at;
};

class Scheduler {
 public:
  struct Settings {
    std::size_t max_held = 500000;    // recipients held in memory at most
    std::size_t max_domains = 20000;  // domains remembered at most
    Ms route_ttl = 86400000;          // a learned route without deliveries is forgotten after this
    Ms hold_log_interval = 60000;     // at most one "holding" line per destination per interval
  };

  enum class Admit : std::uint8_t { start, hold, later };

  explicit Scheduler(LogSink& log) : Scheduler(log, Settings{}) {}
  Scheduler(LogSink& log, Settings settings);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // New settings (at start and on HUP). Deliveries in flight and held
  // recipients move to the budgets the new table gives their domains;
  // budgets whose line is unchanged keep their state (rate, pause).
  void configure(Table table, Ms now);
  const Table& table() const noexcept { return table_; }
  // Whether the table has lines: qmail-send asks admit() only then.
  bool active() const noexcept { return !table_.empty(); }

  Admit admit(std::string_view recip, int job, std::uint64_t mpos, std::uint64_t message, Ms now);
  // The pass reached the end of `message` (its job holds `refs` refs, one
  // of them the pass's): if its one recipient read was held, turn the hold
  // into a parked message and say true; the caller then drops the hold's
  // ref and closes the job without requeueing it. birth: the message's.
  bool park(int job, std::uint64_t message, std::int64_t birth, int refs);
  // A parked record's message and birth ("MESSAGEID BIRTH").
  static bool parked_message(std::string_view text, std::uint64_t* message, std::int64_t* birth);
  // How long a slot stays reserved for a parked message handed back.
  static constexpr Ms reservation_ttl = 60000;
  void started(unsigned slot, std::string_view recip, Ms now);
  // `report`: what qmail-remote said (kept for a pause's log line and bounces).
  void finished(unsigned slot, const std::optional<Route>& route, std::string_view report, Ms now);

  // The oldest held recipient that may start now, from the budgets in turn.
  std::optional<Held> next(Ms now);
  // The recipient next() returned was started (or bounced), or the parked
  // message it returned was handed back for reading: forget it (for a
  // parked one, a slot is reserved until the message's recipient comes).
  void taken(Ms now);
  // When a held recipient may start without a delivery finishing first
  // (a pause or a rate window ending); nothing if no such time.
  std::optional<Ms> wakeup() const noexcept;
  bool ready() const noexcept { return !ready_.empty(); }

  // A budget paused while recipients were held for it: `expire` sees each
  // of them with the last failure's report; a true answer takes the
  // recipient out (qmail-send bounces those whose message is past its
  // queue lifetime). Call when needs_sweep().
  bool needs_sweep() const noexcept { return sweep_pending_; }
  void sweep(Ms now, FunctionRef<bool(const Held&, std::string_view report)> expire);

  // Introspection (qmail-destinations, tests).
  std::size_t held() const noexcept { return held_; }
  std::size_t domain_count() const noexcept { return domains_.size(); }
  const Domain* domain(std::string_view canonical) const noexcept;
  Block block_of(const Budget& b, Ms now) const noexcept;
  void for_each_budget(FunctionRef<void(const Budget&)> f) const;
  void for_each_domain(FunctionRef<void(const Domain&)> f) const;

  // The canonical domain of a recipient: what follows its last '@'.
  static std::string domain_of(std::string_view recip);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Slot {
    Domain* domain = nullptr;
    std::uint64_t epoch = 0;
  };

  Domain& domain_for(std::string_view canonical, Ms now);
  Budget* target(Domain& d);
  void bind(Domain& d, Ms now);
  void set_settings(Budget& b, const Line* line);
  Block check(Budget& b, Ms now, Ms* until);
  void consider(Budget& b, Ms now);
  void make_ready(Budget& b);
  void unready(Budget& b);
  void set_timer(Budget& b, Ms at);
  void untime(Budget& b);
  void forget_budget(Budget& b);
  void drop_own(Domain& d);
  void backoff(Budget& b, bool failed, std::string_view report, Ms now);
  void pause(Budget& b, Ms now, std::string_view why);
  void note_holding(Budget& b, Block why, Ms now);
  void touch(Domain& d);
  void evict_if_idle(Domain& d, Ms now);
  bool idle(const Domain& d, Ms now) const noexcept;
  void trim_domains(Ms now);
  void log(std::string text);
  struct Reservation {
    std::uint64_t message = 0;
    Budget* budget = nullptr;
    Ms at = 0;
  };
  void release(std::list<Reservation>::iterator r, Ms now);
  void expire_reservations(Ms now);
  void drop_reservations(const Budget* b);

  LogSink& log_;
  Settings settings_;
  Table table_;
  std::vector<std::unique_ptr<Budget>> shared_;  // by line
  Budget unlimited_;
  std::unordered_map<std::string, std::unique_ptr<Domain>, Hash, std::equal_to<>> domains_;
  std::list<Domain*> lru_;  // most recently used first
  std::vector<Slot> slots_;
  std::list<Budget*> ready_;
  std::multimap<Ms, Budget*> timers_;
  Budget* current_ = nullptr;  // whose front next() returned
  std::size_t held_ = 0;
  std::list<Reservation> reservations_;  // oldest first
  std::unordered_map<std::uint64_t, std::list<Reservation>::iterator> reserved_for_;
  struct LastHold {  // the holds of the message being read now
    int job = Held::parked;
    Budget* budget = nullptr;  // null if they went to several budgets
    unsigned count = 0;
  } last_hold_;
  std::uint64_t next_epoch_ = 1;
  bool sweep_pending_ = false;
};

// "at its limit of 20 deliveries at once", "paused", ...: why, for people.
std::string describe(const Budget& b, Block why);

}  // namespace destinations

#endif
