// store_lmdb_txn.h: the LMDB store's environment, writer lock and
// transactions (internal to store_lmdb*.cpp).
//
// store_lmdb_txn.cpp defines the LmdbStore members that open the
// environment and run transactions (open(), close(), lock(), write(),
// read(), scan()) and what every write checks (the format record, room,
// expiry); store_lmdb.cpp builds the Store operations on them.

#ifndef QT_STORE_LMDB_TXN_H
#define QT_STORE_LMDB_TXN_H

#include <cstdint>
#include <string>

#include <lmdb.h>

#include "store.h"

namespace store::lmdb {

// What an LMDB code, an errno or an rc_ code (store_lmdb_format.h) means.
Status classify(int rc) noexcept;
std::string errno_text(int e);

// Bytes in pages that hold the store's data now (within `txn`): O(1).
int data_bytes(MDB_txn* txn, unsigned dbi, std::uint64_t& out);

}  // namespace store::lmdb

#endif
