// store_lmdb_generation.h: the LMDB store's generation directories (internal
// to store_lmdb*.cpp; what they are: store_lmdb.h).
//
// DIRECTORY/boot-<kernel boot id> holds data.mdb and
// writer.lock. Starting a boot's generation removes those of earlier boots;
// repair renames the current one aside.

#ifndef QT_STORE_LMDB_GENERATION_H
#define QT_STORE_LMDB_GENERATION_H

#include <cstdint>
#include <string>

#include "store.h"
#include "store_lmdb.h"

namespace store::lmdb {

// "boot-<id>" (the kernel's, or options.boot_id).
std::string generation_name(const LmdbOptions& options);

// Opens (making it when missing) the generation directory `gen` of
// options.directory into gfd. Root (the admin tool) hands whatever it
// creates, and any store file owned by someone else, to the state
// directory's owner.
Result open_generation(const LmdbOptions& options, const std::string& gen, int& gfd);

// LmdbStore::set_aside().
Result set_aside(const LmdbOptions& options, std::uint64_t now_ms, std::string* moved_to);

}  // namespace store::lmdb

#endif
