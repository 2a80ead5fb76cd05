// spamt-lookup: time LimitsTable::open() and full identity lookups.
//
// usage: spamt-lookup TABLE.cdb QUERIES ROUNDS
//   QUERIES: one client per line, "IP" or "IP USER".
// Every query is looked up ROUNDS times in a shuffled order, each lookup
// timed on its own (CLOCK_MONOTONIC, the timer's own median cost
// subtracted). Prints key=value lines: lookups, hits (queries with at least
// one relay budget or exemption), median_ns, p99_ns, mean_ns, open_median_ns.
// Built by bench/cases/spamt_lookup.py with conf-cxx's flags.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "limits_table.h"

namespace {

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Query {
  std::string ip, user;
};

std::int64_t percentile(std::vector<std::int64_t>& v, double p) {
  std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: spamt-lookup TABLE.cdb QUERIES ROUNDS\n");
    return 100;
  }
  std::vector<Query> queries;
  if (FILE* f = std::fopen(argv[2], "r")) {
    char line[1024];
    while (std::fgets(line, sizeof line, f)) {
      std::string s(line);
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
      std::size_t sp = s.find(' ');
      queries.push_back(sp == std::string::npos ? Query{s, ""} : Query{s.substr(0, sp), s.substr(sp + 1)});
    }
    std::fclose(f);
  }
  int rounds = std::atoi(argv[3]);
  if (queries.empty() || rounds < 1) return 100;

  // the cost qmail-smtpd pays once per connection
  std::vector<std::int64_t> opens;
  for (int i = 0; i < 2000; ++i) {
    std::int64_t t0 = now_ns();
    spamt::LimitsTable t;
    spamt::TableStatus st = t.open(argv[1]);
    t.close();
    opens.push_back(now_ns() - t0);
    if (st != spamt::TableStatus::ok) {
      std::fprintf(stderr, "spamt-lookup: %s: %s\n", argv[1], std::string(spamt::status_name(st)).c_str());
      return 111;
    }
  }

  // what a new qmail-smtpd pays: open, the first lookup in a fresh mapping
  // (page faults included), close
  std::vector<std::int64_t> cold, connection;
  std::mt19937 pick(7);
  for (int i = 0; i < 2000; ++i) {
    const Query& q = queries[pick() % queries.size()];
    std::int64_t t0 = now_ns();
    spamt::LimitsTable t;
    t.open(argv[1]);
    spamt::Lookup first;
    std::int64_t t1 = now_ns();
    t.lookup(q.ip, q.user, first);
    std::int64_t t2 = now_ns();
    t.close();
    cold.push_back(t2 - t1);
    connection.push_back(now_ns() - t0);
  }

  spamt::LimitsTable table;
  table.open(argv[1]);
  spamt::Lookup l;
  std::vector<std::size_t> order;
  for (int r = 0; r < rounds; ++r)
    for (std::size_t i = 0; i < queries.size(); ++i) order.push_back(i);
  std::mt19937 rng(4);
  std::shuffle(order.begin(), order.end(), rng);

  // the timer's own cost
  std::vector<std::int64_t> empty;
  for (int i = 0; i < 100000; ++i) {
    std::int64_t t0 = now_ns();
    empty.push_back(now_ns() - t0);
  }
  std::int64_t overhead = percentile(empty, 0.5);

  std::size_t hits = 0, failures = 0;
  for (std::size_t i = 0; i < queries.size() && i < 1000; ++i) table.lookup(queries[i].ip, queries[i].user, l);  // warm up
  std::vector<std::int64_t> times;
  times.reserve(order.size());
  for (std::size_t i : order) {
    const Query& q = queries[i];
    std::int64_t t0 = now_ns();
    spamt::LookupStatus st = table.lookup(q.ip, q.user, l);
    std::int64_t dt = now_ns() - t0 - overhead;
    times.push_back(dt < 0 ? 0 : dt);
    if (st != spamt::LookupStatus::ok) ++failures;
    if (!l.relay().empty() || l.exempt()) ++hits;
  }
  double mean = 0;
  for (std::int64_t t : times) mean += static_cast<double>(t);
  mean /= static_cast<double>(times.size());
  std::printf("lookups=%zu\nhits=%zu\nfailures=%zu\ntimer_overhead_ns=%lld\n", times.size(), hits, failures,
              static_cast<long long>(overhead));
  std::printf("median_ns=%lld\n", static_cast<long long>(percentile(times, 0.5)));
  std::printf("p99_ns=%lld\n", static_cast<long long>(percentile(times, 0.99)));
  std::printf("mean_ns=%.0f\n", mean);
  std::printf("open_median_ns=%lld\n", static_cast<long long>(percentile(opens, 0.5)));
  std::printf("cold_lookup_median_ns=%lld\n", static_cast<long long>(percentile(cold, 0.5)));
  std::printf("connection_median_ns=%lld\n", static_cast<long long>(percentile(connection, 0.5)));
  return failures == 0 ? 0 : 111;
}
