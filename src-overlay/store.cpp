// store.cpp: the backend-neutral parts of the store interface (store.h).

#include "store.h"

#include <algorithm>

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
  for (char c : key.metric)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return "counter name not of a-z, 0-9, '_', '-'";
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

namespace {

bool busier(const CounterUsage& a, const CounterUsage& b) {
  if (a.used != b.used) return a.used > b.used;
  if (a.identity != b.identity) return a.identity < b.identity;
  if (a.metric != b.metric) return a.metric < b.metric;
  return a.window_seconds < b.window_seconds;
}

}  // namespace

void trim_top(std::vector<CounterUsage>& out, std::size_t n, bool final) {
  if (final) {
    std::sort(out.begin(), out.end(), busier);
    if (out.size() > n) out.resize(n);
  } else if (out.size() >= 2 * n + 64) {
    std::nth_element(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), busier);
    out.resize(n);
  }
}

std::uint64_t resolve_clock(std::uint64_t now_ms) noexcept {
  return now_ms == store_clock ? window::clock_ms() : now_ms;
}

}  // namespace store
