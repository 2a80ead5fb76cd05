// store_redis.h: the shared store - counters and records in Redis, one
// budget per identity across every host that uses the same Redis.
//
//   store::RedisStore s({.spec = *store_url::parse("redis://10.0.0.5:6379/0", nullptr)});
//   s.charge(...);   // connects on first use
//
// Same answers as the LMDB store for the same events (store.h): the window
// arithmetic runs on the server, in the function library of
// redis_functions.h, with the server's clock (TIME) unless a time is passed.
// Layout: one hash per identity, "qt1:{IDENTITY}", a field per counter
// ("rcpt/86400"); records (teergrube state) as strings "qt1:r:{KEY}" holding
// "EXPIRY VALUE". Every key has an expiry: a counter's hash lives until its
// last counted event leaves its window plus a minute, a record until its
// expiry.
//
// A charge is one function call (FCALL qt1_charge), atomic across all the
// identities it names - on one Redis, and in a cluster when they share a
// slot. In a cluster, identities live in different slots (each its own hash
// tag); a charge on several then reserves on each slot at once (one round
// trip: every reservation is already counted, so no budget can go over), and
// commits every reservation when all were granted, or gives back those that
// were granted when one was refused (a second round trip). A reservation
// that is neither committed nor given back within hold_ms (the qmail-smtpd
// holding it was killed) is given back by the next call that touches its
// key. Such a charge can be refused although it would have fitted: while a
// concurrent charge of the same identity holds a reservation that it will
// give back, and until a killed process's reservation is given back.
//
// update_record is optimistic (WATCH, GET and TIME; then MULTI, SET, EXEC),
// retried when another process changed the record meanwhile.
//
// Faults: a transport fault (no connection, timeout, a node gone) is
// `unavailable` and remembered until close(), so a session pays a timeout
// once, not at every recipient; Redis refusing to store (OOM under
// maxmemory) is `full`; a value not of this format is `corrupt`.

#ifndef QT_STORE_REDIS_H
#define QT_STORE_REDIS_H

#include <cstdint>
#include <memory>
#include <string>

#include "redis_credentials.h"
#include "redis_router.h"
#include "store.h"
#include "store_url.h"

namespace store {

struct RedisOptions {
  store_url::Spec spec;                                          // redis://, redis-sentinel://, redis-cluster://
  std::string password_file = redis_credentials::default_path;  // read at the first connection; "": no AUTH
  std::uint32_t hold_ms = 0;  // cluster reservations; 0: max(5 s, 4 x (connect_timeout + timeout))
  void (*before_settle)() = nullptr;  // tests: runs between reserving and settling
};

class RedisStore final : public Store {
 public:
  explicit RedisStore(RedisOptions options);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  ChargeResult charge(std::span<const Limit> counters, std::uint32_t amount, std::uint64_t now_ms,
                      Receipt* receipt) override;
  Result refund(Receipt& receipt, std::uint64_t now_ms) override;
  Result usage(std::string_view identity, std::uint64_t now_ms, std::vector<CounterUsage>& out) override;
  Result top(std::size_t n, std::string_view metric, std::uint64_t now_ms, std::vector<CounterUsage>& out) override;
  Result reset(std::string_view identity, std::uint64_t now_ms, std::size_t* removed) override;
  Result expire(std::uint64_t now_ms, std::size_t max, std::size_t* removed) override;
  Result update_record(std::string_view key, std::uint64_t now_ms, RecordEditor edit) override;
  Result read_record(std::string_view key, std::uint64_t now_ms, std::optional<std::string>& out) override;
  Result stats(Stats& out) override;
  std::string describe() const override;
  Result clock(std::uint64_t& now_ms) override;  // TIME

  // Drops the connections and a remembered fault; the next call connects again.
  void close() noexcept;

  std::uint32_t hold_ms() const noexcept;
  // For tests and the bench: the router (discoveries, connections).
  redis::Router* router() noexcept { return router_.get(); }

  // The key of an identity's counters, of a record.
  static std::string identity_key(std::string_view identity);
  static std::string record_key(std::string_view key);

 private:
  struct Group;
  void group(std::vector<Group>& groups, std::string_view identity, std::size_t index) const;
  Result ready();
  Result run(std::span<redis::Call* const> calls);
  Result run(redis::Call& c) {
    redis::Call* one[] = {&c};
    return run(one);
  }
  Result guard() const;
  ChargeResult charge_groups(std::span<const Limit> counters, std::uint32_t amount, std::uint64_t now_ms,
                             std::span<Group> groups, Receipt* receipt);
  Result settle(std::span<Group> groups, bool commit, std::string_view token);
  Result scan(std::string_view match, FunctionRef<Result(const std::vector<std::string>& keys)> batch);

  RedisOptions options_;
  std::unique_ptr<redis::Router> router_;
  Result failure_;       // a transport fault, remembered until close()
  bool busy_ = false;    // inside update_record's editor
  bool cluster_ = false;
};

}  // namespace store

#endif
