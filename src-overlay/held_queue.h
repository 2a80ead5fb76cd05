// held_queue.h: recipients waiting for their destination, first in, first out.
//
// qmail-send holds a recipient in memory when its destination is at its
// limit (destination_scheduler.h). A held recipient is what qmail-send needs
// to start the delivery later: its job (the message being passed), the
// position of its line in the message's remote/ file (to mark it done) and
// the recipient address. They are packed one after another in one buffer,
// 19 bytes plus the address each; the buffer grows by a quarter and is
// compacted when an eighth of it has been consumed, so it stays within
// about 1.5 times its data: 100,000 held recipients cost a few megabytes,
// not a hundred thousand allocations.
//
// Records are taken from the front; remove_if() takes out records anywhere
// (a domain that moves to another destination takes its records along);
// pop_back() takes back the record pushed last.
//
// A record may also stand for a whole message that waits without a job
// (job == Held::parked, see destination_scheduler.h): then `recip` holds
// "MESSAGEID BIRTH" in decimal.

#ifndef QT_HELD_QUEUE_H
#define QT_HELD_QUEUE_H

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "function_ref.h"

namespace destinations {

struct Domain;

struct Held {
  static constexpr int parked = -1;

  Domain* domain = nullptr;
  int job = 0;
  std::uint32_t mpos = 0;
  std::string_view recip;  // followed by a NUL in the queue's buffer

  bool is_parked() const noexcept { return job == parked; }
};

class HeldQueue {
 public:
  // The longest address a record takes.
  static constexpr std::size_t max_recip = 0xffff;

  // false when the address is longer than max_recip.
  bool push(const Held& h);
  bool empty() const noexcept { return count_ == 0; }
  std::size_t size() const noexcept { return count_; }
  // The oldest record; the queue must not be empty. Its recip stays valid
  // until the queue changes.
  Held front() const noexcept;
  void pop() noexcept;
  // The record pushed last while it is still there (none after remove_if or
  // pop_back); its recip stays valid until the queue changes.
  const Held* back() const noexcept;
  void pop_back() noexcept;
  // Takes out every record for which `take` is true, in order, handing each
  // to `taken` first; the others keep their order.
  void remove_if(FunctionRef<bool(const Held&)> take, FunctionRef<void(const Held&)> taken);
  // Calls `f` for every record, oldest first.
  void for_each(FunctionRef<void(const Held&)> f) const;
  // Bytes the queue holds from the heap.
  std::size_t capacity_bytes() const noexcept { return buf_.capacity(); }

 private:
  static constexpr std::size_t header = sizeof(Domain*) + sizeof(std::int32_t) + sizeof(std::uint32_t) +
                                        sizeof(std::uint16_t);
  Held at(std::size_t offset, std::size_t* next) const noexcept;

  std::vector<char> buf_;
  std::size_t head_ = 0;   // offset of the oldest record
  std::size_t count_ = 0;
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  std::size_t last_ = none;  // offset of the record pushed last, while back() may see it
  Held last_held_;
};

}  // namespace destinations

#endif
