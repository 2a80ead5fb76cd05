// store_backends.h: one test suite, every store backend.
//
// TEST_P(StoreContract, ...) runs against
//   lmdb           the embedded store in a temporary directory;
//   redis          a redis-server the tests start on loopback;
//   redis-cluster  three redis-server primaries made into a cluster, so that
//                  charges across identities take the reserve/commit path.
// Each test starts with an empty store. open() makes another handle on the
// same store, as another process would.
#ifndef QT_TEST_STORE_BACKENDS_H
#define QT_TEST_STORE_BACKENDS_H

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "redis_test_server.h"
#include "store.h"
#include "store_lmdb.h"
#include "store_redis.h"
#include "store_test_util.h"

namespace store_test {

class StoreBackend : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "redis") {
      ASSERT_TRUE(redis_test::standalone().running());
      redis_test::standalone().command({"FLUSHALL"});
    } else if (GetParam() == "redis-cluster") {
      ASSERT_TRUE(redis_test::cluster().ok());
      redis_test::cluster().flushall();
    }
    store_ = open();
  }

  std::string url() const {
    if (GetParam() == "redis") return redis_test::standalone().url();
    if (GetParam() == "redis-cluster") return redis_test::cluster().url();
    return "lmdb";
  }

  // lmdb_lock_timeout_ms: many processes at once on a loaded machine may
  // wait long for LMDB's writer lock (opening takes it too).
  std::unique_ptr<store::Store> open(std::uint32_t lmdb_lock_timeout_ms = 0) const {
    if (GetParam() == "lmdb") {
      store::LmdbOptions o = options_for(dir_);
      if (lmdb_lock_timeout_ms != 0) o.lock_timeout_ms = lmdb_lock_timeout_ms;
      return std::make_unique<store::LmdbStore>(o);
    }
    return std::make_unique<store::RedisStore>(redis_test::options(url()));
  }

  store::Store& s() { return *store_; }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
};

inline std::string backend_name(const ::testing::TestParamInfo<std::string>& p) {
  std::string n = p.param;
  for (char& c : n)
    if (c == '-') c = '_';
  return n;
}

}  // namespace store_test

#define QT_ALL_BACKENDS(suite)                                                                            \
  INSTANTIATE_TEST_SUITE_P(Backends, suite, ::testing::Values("lmdb", "redis", "redis-cluster"), \
                           store_test::backend_name)

#endif
