// store_factory.h: the store control/throttlestore chooses.
//
//   std::unique_ptr<store::Store> s =
//       store::make_store(control_file::first_line("control/throttlestore"), lmdb_options);
//
// "lmdb" or nothing: the embedded LMDB store (store_lmdb.h); a redis://,
// redis-sentinel:// or redis-cluster:// URL: the Redis store (store_redis.h),
// which connects at its first operation, not here. A line that does not
// parse gives a store that answers every operation `unavailable` with the
// reason, so the session's fail-open/fail-closed policy and its log line
// apply as for any other store fault.

#ifndef QT_STORE_FACTORY_H
#define QT_STORE_FACTORY_H

#include <memory>
#include <string>
#include <string_view>

#include "redis_credentials.h"
#include "store.h"
#include "store_lmdb.h"

namespace store {

std::unique_ptr<Store> make_store(std::string_view throttlestore_line, const LmdbOptions& lmdb,
                                  const std::string& password_file = redis_credentials::default_path);

}  // namespace store

#endif
