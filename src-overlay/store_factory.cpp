// store_factory.cpp: see store_factory.h.

#include "store_factory.h"

#include "store_redis.h"
#include "store_url.h"

namespace store {

namespace {

// control/throttlestore names no store this program knows.
class MisconfiguredStore final : public Store {
 public:
  explicit MisconfiguredStore(std::string why)
      : failure_(Result::failure(Status::unavailable, "control/throttlestore: " + std::move(why))) {}

  ChargeResult charge(std::span<const Limit>, std::uint32_t, std::uint64_t, Receipt*) override {
    return ChargeResult::failure(failure_.status, failure_.reason);
  }
  Result refund(Receipt&, std::uint64_t) override { return failure_; }
  Result usage(std::string_view, std::uint64_t, std::vector<CounterUsage>& out) override {
    out.clear();
    return failure_;
  }
  Result top(std::size_t, std::string_view, std::uint64_t, std::vector<CounterUsage>& out) override {
    out.clear();
    return failure_;
  }
  Result reset(std::string_view, std::uint64_t, std::size_t*) override { return failure_; }
  Result expire(std::uint64_t, std::size_t, std::size_t*) override { return failure_; }
  Result update_record(std::string_view, std::uint64_t, RecordEditor) override { return failure_; }
  Result read_record(std::string_view, std::uint64_t, std::optional<std::string>& out) override {
    out.reset();
    return failure_;
  }
  Result stats(Stats&) override { return failure_; }
  Result clock(std::uint64_t&) override { return failure_; }
  std::string describe() const override { return "no store (" + failure_.reason + ")"; }

 private:
  Result failure_;
};

}  // namespace

std::unique_ptr<Store> make_store(std::string_view line, const LmdbOptions& lmdb, const std::string& password_file) {
  std::string error;
  std::optional<store_url::Spec> spec = store_url::parse(line, &error);
  if (!spec) return std::make_unique<MisconfiguredStore>(std::move(error));
  if (spec->kind == store_url::Kind::lmdb) return std::make_unique<LmdbStore>(lmdb);
  RedisOptions o;
  o.spec = std::move(*spec);
  o.password_file = password_file;
  return std::make_unique<RedisStore>(std::move(o));
}

}  // namespace store
