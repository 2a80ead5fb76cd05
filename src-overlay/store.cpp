// store.cpp: the backend-neutral parts of the store interface (store.h).

#include "store.h"

namespace store {

std::string_view status_name(Status s) noexcept {
  switch (s) {
    case Status::ok: return "ok";
    case Status::unavailable: return "unavailable";
    case Status::full: return "full";
    case Status::corrupt: return "corrupt";
    case Status::error: return "error";
  }
  return "error";
}

void Receipt::add(const CounterKey& key, std::uint64_t bucket, std::uint64_t amount) {
  for (Entry& e : entries_) {
    if (e.bucket == bucket && e.window_seconds == key.window_seconds && e.identity == key.identity &&
        e.metric == key.metric) {
      e.amount += amount;
      return;
    }
  }
  entries_.push_back(Entry{std::string(key.identity), std::string(key.metric), key.window_seconds, bucket, amount});
}

void Receipt::append(const Receipt& other) {
  for (const Entry& e : other.entries_) add(CounterKey{e.identity, e.metric, e.window_seconds}, e.bucket, e.amount);
}

std::string check_key(const CounterKey& key) {
  if (key.identity.empty()) return "empty budget key";
  if (key.identity.size() > max_identity) return "budget key too long";
  if (key.identity.find('\0') != std::string_view::npos) return "NUL in budget key";
  if (key.metric.empty()) return "empty counter name";
  if (key.metric.size() > max_metric) return "counter name too long";
  if (key.metric.find('\0') != std::string_view::npos) return "NUL in counter name";
  if (key.window_seconds == 0) return "window of 0 seconds";
  return {};
}

std::string check_request(std::span<const Limit> counters, std::uint32_t amount) {
  if (amount == 0) return "charge of 0";
  if (counters.empty()) return "no counters";
  if (counters.size() > max_counters) return "too many counters";
  for (std::size_t i = 0; i < counters.size(); ++i) {
    std::string bad = check_key(counters[i].key);
    if (!bad.empty()) return bad;
    for (std::size_t j = 0; j < i; ++j) {
      const CounterKey& a = counters[i].key;
      const CounterKey& b = counters[j].key;
      if (a.identity == b.identity && a.metric == b.metric && a.window_seconds == b.window_seconds)
        return "counter listed twice";
    }
  }
  return {};
}

}  // namespace store
