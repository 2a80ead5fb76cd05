// held_queue.cpp: see held_queue.h.

#include "held_queue.h"

#include <algorithm>
#include <cstring>

namespace destinations {

bool HeldQueue::push(const Held& h) {
  if (h.recip.size() > max_recip) return false;
  const std::uint16_t len = static_cast<std::uint16_t>(h.recip.size());
  const std::int32_t job = h.job;
  const std::size_t at = buf_.size();
  const std::size_t need = at + header + len + 1;
  // Grow by a quarter, not double: a big queue is mostly data, not slack.
  if (need > buf_.capacity()) buf_.reserve(std::max(need, at + at / 4 + 256));
  buf_.resize(need);
  char* p = buf_.data() + at;
  std::memcpy(p, &h.domain, sizeof h.domain);
  p += sizeof h.domain;
  std::memcpy(p, &job, sizeof job);
  p += sizeof job;
  std::memcpy(p, &h.mpos, sizeof h.mpos);
  p += sizeof h.mpos;
  std::memcpy(p, &len, sizeof len);
  p += sizeof len;
  std::memcpy(p, h.recip.data(), len);
  p[len] = '\0';
  ++count_;
  last_ = at;
  std::size_t next = 0;
  last_held_ = this->at(at, &next);
  return true;
}

const Held* HeldQueue::back() const noexcept { return last_ == none ? nullptr : &last_held_; }

void HeldQueue::pop_back() noexcept {
  if (last_ == none) return;
  buf_.resize(last_);
  --count_;
  last_ = none;
  if (count_ == 0) {
    buf_.clear();
    head_ = 0;
  }
}

Held HeldQueue::at(std::size_t offset, std::size_t* next) const noexcept {
  Held h;
  const char* p = buf_.data() + offset;
  std::int32_t job = 0;
  std::uint16_t len = 0;
  std::memcpy(&h.domain, p, sizeof h.domain);
  p += sizeof h.domain;
  std::memcpy(&job, p, sizeof job);
  p += sizeof job;
  std::memcpy(&h.mpos, p, sizeof h.mpos);
  p += sizeof h.mpos;
  std::memcpy(&len, p, sizeof len);
  p += sizeof len;
  h.job = job;
  h.recip = std::string_view(p, len);
  *next = offset + header + len + 1;
  return h;
}

Held HeldQueue::front() const noexcept {
  std::size_t next = 0;
  return at(head_, &next);
}

void HeldQueue::pop() noexcept {
  std::size_t next = 0;
  at(head_, &next);
  head_ = next;
  --count_;
  if (count_ == 0) {
    buf_.clear();
    head_ = 0;
    last_ = none;
    if (buf_.capacity() > 65536) buf_.shrink_to_fit();
  } else if (head_ >= 4096 && head_ * 8 >= buf_.size()) {
    // The consumed front is an eighth of the buffer: move the rest down.
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(head_));
    if (last_ != none) {
      last_ -= head_;
      std::size_t next_offset = 0;
      last_held_ = at(last_, &next_offset);
    }
    head_ = 0;
  }
}

void HeldQueue::remove_if(FunctionRef<bool(const Held&)> take, FunctionRef<void(const Held&)> taken) {
  std::vector<char> kept;
  std::size_t kept_count = 0;
  std::size_t offset = head_;
  for (std::size_t i = 0; i < count_; ++i) {
    std::size_t next = 0;
    Held h = at(offset, &next);
    if (take(h)) {
      taken(h);
    } else {
      kept.insert(kept.end(), buf_.begin() + static_cast<std::ptrdiff_t>(offset),
                  buf_.begin() + static_cast<std::ptrdiff_t>(next));
      ++kept_count;
    }
    offset = next;
  }
  buf_.swap(kept);
  head_ = 0;
  count_ = kept_count;
  last_ = none;
}

void HeldQueue::for_each(FunctionRef<void(const Held&)> f) const {
  std::size_t offset = head_;
  for (std::size_t i = 0; i < count_; ++i) {
    std::size_t next = 0;
    f(at(offset, &next));
    offset = next;
  }
}

}  // namespace destinations
