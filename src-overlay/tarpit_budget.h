// tarpit_budget.h: how many sessions are being delayed right now, across
// every qmail-smtpd process, and a slot for this one.
//
// The budget is a file of one byte per slot (throttle/tarpit.slots). A
// session that is about to be delayed takes the first slot it can lock
// with a non-blocking fcntl() byte-range write lock and holds it while it
// waits. The kernel drops the lock when the process exits in any way, also
// by SIGKILL, so a slot can never leak. No slot free: the budget is spent,
// and the session is not delayed.

#ifndef QT_TARPIT_BUDGET_H
#define QT_TARPIT_BUDGET_H

#include <cstdint>
#include <string>

namespace tarpit {

// How many slots there are comes from control/tarpitbudget, read with its
// default by throttle_controls.h.

class Slot {
 public:
  enum class Outcome : std::uint8_t { held, spent, fault };

  Slot() = default;
  ~Slot() { release(); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

  // Takes one of `budget` slots in the file `path` (created mode 0600 when
  // missing). fault: the file cannot be opened or locked (errno in error()).
  Outcome acquire(const std::string& path, std::uint32_t budget) noexcept;
  void release() noexcept;
  bool held() const noexcept { return fd_ >= 0; }
  std::uint32_t index() const noexcept { return index_; }
  int error() const noexcept { return error_; }

 private:
  int fd_ = -1;
  std::uint32_t index_ = 0;
  int error_ = 0;
};

}  // namespace tarpit

#endif
