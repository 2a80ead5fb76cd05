// destination_state.h: the state file qmail-send writes for qmail-destinations.
//
// On SIGUSR1 qmail-send writes what its scheduler holds (budgets, held
// recipients, learned routes) to queue/destinations/state; the tool asks for
// it and prints it. One record per line, space-separated "key value" pairs
// after the record's kind; names never contain blanks:
//
//   qmail-destinations-state 1
//   time 1764633600 pid 4242 held 1534 domains 17 lines 3
//   budget mx:.google.com kind line line 4 limit 20 inflight 20 held 1534 state normal until - why concurrency rate 100/1h failures 0
//   domain gmail.com budget mx:.google.com inflight 12 held 900 mx gmail-smtp-in.l.google.com ip 192.0.2.27 learned 35
//   end
//
// "until" is seconds until a pause ends, "learned" seconds since the route
// was last confirmed; "-" where there is none.

#ifndef QT_DESTINATION_STATE_H
#define QT_DESTINATION_STATE_H

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "destination_scheduler.h"

namespace destinations {

inline constexpr std::string_view state_magic = "qmail-destinations-state 1";

// The state of a running scheduler.
std::string state_text(const Scheduler& s, Ms now);
// The state of a qmail-send without control/concurrencydomains.
std::string state_text_off();

// A state file read back: each record as its kind, its name and its fields.
struct StateRecord {
  std::string kind;  // "budget", "domain"
  std::string name;
  std::map<std::string, std::string, std::less<>> fields;
  std::string_view get(std::string_view key) const;
};
struct State {
  std::map<std::string, std::string, std::less<>> header;  // time, pid, held, ...
  std::vector<StateRecord> budgets;
  std::vector<StateRecord> domains;
};
// Nothing if `text` is not a whole state file (magic first, "end" last).
std::optional<State> parse_state(std::string_view text);

}  // namespace destinations

#endif
