// The LMDB store (store_lmdb.h) in one process: what only it does - files,
// generations, the size cap, formats, faults. What every store does (atomic
// charges, receipts, reading back, records) is test_store_contract.cpp, run
// against LMDB and Redis; multi-process behaviour is in
// test_store_lmdb_processes.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_lmdb.h"
#include "store_test_util.h"
#include "window.h"

using store::ChargeResult;
using store::CounterKey;
using store::Limit;
using store::LmdbStore;
using store::Receipt;
using store::Status;
using store_test::DAY;
using store_test::Sender;
using store_test::T0;
using store_test::TempDir;
using store_test::used;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST(StoreLmdb, OpensLazily) {
  TempDir d;
  {
    LmdbStore s(store_test::options_for(d));
    Sender who(100, 100, 100);
    ASSERT_TRUE(s.charge(who.limits, 7, T0, nullptr).accepted);
  }
  LmdbStore s(store_test::options_for(d));
  EXPECT_FALSE(s.is_open());
  EXPECT_EQ(used(s, "u:alice@example.com", "rcpt", DAY, T0 + 1), 7u);
  EXPECT_TRUE(s.is_open());
}

TEST(StoreLmdb, IdleCountersExpireDuringWritesSoTheStoreStaysBounded) {
  TempDir d;
  LmdbStore s(store_test::options_for(d));
  // Every second 20 new senders, each seen once, 60 s windows, for 15 minutes:
  // 18,000 counters made, about 61 s' worth (1,220) live at any time.
  std::uint64_t bytes_at_5min = 0;
  store::Stats st;
  for (int sec = 0; sec < 900; ++sec) {
    for (int k = 0; k < 20; ++k) {
      const std::string id = "a:10." + std::to_string(sec) + "." + std::to_string(k);
      Limit l[] = {{{id, "rcpt", 60}, 100}};
      ASSERT_TRUE(s.charge(l, 1, T0 + sec * 1000ull + k, nullptr).ok());
    }
    if (sec == 300) {
      ASSERT_TRUE(s.stats(st).ok());
      bytes_at_5min = st.bytes_used;
    }
  }
  ASSERT_TRUE(s.stats(st).ok());
  EXPECT_LE(st.counters, 62u * 20u + 20u);
  EXPECT_GE(st.counters, 60u * 20u);
  EXPECT_LE(st.bytes_used, bytes_at_5min + bytes_at_5min / 10) << "the file keeps growing";
  // Once everything is idle, an explicit pass empties it.
  std::size_t removed = 0;
  ASSERT_TRUE(s.expire(T0 + 2'000'000, 1'000'000, &removed).ok());
  ASSERT_TRUE(s.stats(st).ok());
  EXPECT_EQ(st.counters, 0u);
}

TEST(StoreLmdb, FullIsReportedBeforeTheMapIsAndExpiryMakesRoomAgain) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  o.map_size = 1 << 20;
  LmdbStore s(o);
  EXPECT_EQ(s.capacity(), 512u << 10);
  int stored = 0;
  ChargeResult r;
  // Long keys: the cap is on bytes, not on entries.
  const std::string pad(300, 'p');
  for (int i = 0; i < 100000; ++i) {
    const std::string id = "a:" + pad + std::to_string(i);
    Limit l[] = {{{id, "rcpt", 60}, 100}};
    r = s.charge(l, 1, T0 + i, nullptr);
    if (!r.ok()) break;
    ASSERT_TRUE(r.accepted);
    ++stored;
  }
  ASSERT_EQ(r.status, Status::full) << r.reason;
  EXPECT_NE(r.reason.find("store full"), std::string::npos) << r.reason;
  EXPECT_GT(stored, 200);
  store::Stats st;
  ASSERT_TRUE(s.stats(st).ok());
  EXPECT_LE(st.bytes_used, st.bytes_max);
  EXPECT_LE(st.file_bytes, std::uint64_t{1} << 20);
  // What was stored is intact, and counters that exist can still be charged.
  EXPECT_EQ(used(s, "a:" + pad + "0", "rcpt", 60, T0 + stored), 1u);
  const std::string id5 = "a:" + pad + "5";
  Limit existing[] = {{{id5, "rcpt", 60}, 100}};
  EXPECT_TRUE(s.charge(existing, 1, T0 + stored, nullptr).accepted);
  // When those counters are idle, new ones push them out, a steady stream.
  for (int i = 0; i < 2000; ++i) {
    const std::string id = "a:" + pad + "new" + std::to_string(i);
    Limit l[] = {{{id, "rcpt", 60}, 100}};
    r = s.charge(l, 1, T0 + 10'000'000 + i * 1000ull, nullptr);
    ASSERT_TRUE(r.ok()) << i << ": " << r.reason;
    ASSERT_TRUE(r.accepted);
  }
  ASSERT_TRUE(s.stats(st).ok());
  EXPECT_LE(st.counters, 63u);
}

TEST(StoreLmdb, MissingOrUnwritableDirectoryIsUnavailable) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  o.directory = d.path() + "/missing";
  {
    LmdbStore s(o);
    Sender who(1, 1, 1);
    ChargeResult r = s.charge(who.limits, 1, T0, nullptr);
    EXPECT_EQ(r.status, Status::unavailable);
    EXPECT_NE(r.reason.find("missing"), std::string::npos) << r.reason;
    // The failure is remembered: no retry at every recipient...
    ASSERT_EQ(mkdir(o.directory.c_str(), 0700), 0);
    EXPECT_EQ(s.charge(who.limits, 1, T0, nullptr).status, Status::unavailable);
    // ... until closed.
    s.close();
    EXPECT_TRUE(s.charge(who.limits, 1, T0, nullptr).accepted);
  }
  // A directory this user may not write.
  TempDir locked;
  const int status = store_test::in_child([&] {
    if (geteuid() == 0) {
      if (chown(locked.path().c_str(), 0, 0) != 0 || setgid(store_test::nobody) != 0 ||
          setuid(store_test::nobody) != 0)
        return 10;
    } else if (chmod(locked.path().c_str(), 0500) != 0) {
      return 11;
    }
    store::LmdbOptions lo = store_test::options_for(locked);
    LmdbStore s(lo);
    Sender who(1, 1, 1);
    ChargeResult r = s.charge(who.limits, 1, T0, nullptr);
    if (r.status != Status::unavailable) return 1;
    if (r.reason.find("Permission denied") == std::string::npos) return 2;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

TEST(StoreLmdb, GarbageFileIsCorruptNotMisread) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  const std::string gen = LmdbStore::generation_path(o);
  ASSERT_EQ(mkdir(gen.c_str(), 0700), 0);
  {
    std::ofstream f(gen + "/data.mdb", std::ios::binary);
    for (int i = 0; i < 4096; ++i) f << "garbage!";
  }
  LmdbStore s(o);
  Sender who(1, 1, 1);
  ChargeResult r = s.charge(who.limits, 1, T0, nullptr);
  EXPECT_EQ(r.status, Status::corrupt);
  EXPECT_NE(r.reason.find("not an LMDB file"), std::string::npos) << r.reason;
  std::vector<store::CounterUsage> u;
  EXPECT_EQ(s.usage("u:alice@example.com", T0, u).status, Status::corrupt);
  // The repair path: set the generation aside, start empty.
  s.close();
  std::string moved;
  ASSERT_TRUE(LmdbStore::set_aside(o, T0, &moved).ok());
  EXPECT_NE(moved.find("/aside-boot-test-boot-"), std::string::npos) << moved;
  EXPECT_EQ(slurp(moved + "/data.mdb").substr(0, 8), "garbage!");
  r = s.charge(who.limits, 1, T0, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.accepted);
}

namespace {

// Rewrites one key of a closed store with raw LMDB.
void poke(const std::string& gen, std::string_view key, const void* value, std::size_t len) {
  MDB_env* env;
  ASSERT_EQ(mdb_env_create(&env), 0);
  ASSERT_EQ(mdb_env_open(env, gen.c_str(), MDB_NOLOCK, 0600), 0);
  MDB_txn* txn;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi;
  ASSERT_EQ(mdb_dbi_open(txn, nullptr, 0, &dbi), 0);
  MDB_val k{key.size(), const_cast<char*>(key.data())};
  if (value == nullptr) {
    ASSERT_EQ(mdb_del(txn, dbi, &k, nullptr), 0);
  } else {
    MDB_val v{len, const_cast<void*>(value)};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  }
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

std::string peek(const std::string& gen, std::string_view key) {
  MDB_env* env;
  std::string out;
  if (mdb_env_create(&env) != 0) return out;
  if (mdb_env_open(env, gen.c_str(), MDB_RDONLY | MDB_NOLOCK, 0600) == 0) {
    MDB_txn* txn;
    if (mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0) {
      MDB_dbi dbi;
      MDB_val k{key.size(), const_cast<char*>(key.data())}, v;
      if (mdb_dbi_open(txn, nullptr, 0, &dbi) == 0 && mdb_get(txn, dbi, &k, &v) == 0)
        out.assign(static_cast<const char*>(v.mv_data), v.mv_size);
      mdb_txn_abort(txn);
    }
  }
  mdb_env_close(env);
  return out;
}

// A closed store in which `who` was charged once; returns its generation.
std::string store_charged_once(const store::LmdbOptions& o, const Sender& who) {
  {
    LmdbStore s(o);
    EXPECT_TRUE(s.charge(who.limits, 1, T0, nullptr).accepted);
  }
  return LmdbStore::generation_path(o);
}

}  // namespace

TEST(StoreLmdb, OtherFormatVersionIsCorrupt) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  Sender who(10, 10, 10);
  const std::string gen = store_charged_once(o, who);
  std::string meta = peek(gen, "M");
  ASSERT_GE(meta.size(), 20u);
  EXPECT_EQ(meta.substr(0, 14), "qmail-throttle");
  std::uint32_t version;
  std::memcpy(&version, meta.data() + 16, 4);
  EXPECT_EQ(version, LmdbStore::format_version);
  version = 99;
  std::memcpy(meta.data() + 16, &version, 4);
  poke(gen, "M", meta.data(), meta.size());
  LmdbStore s(o);
  ChargeResult r = s.charge(who.limits, 1, T0, nullptr);
  EXPECT_EQ(r.status, Status::corrupt);
  EXPECT_NE(r.reason.find("store format 99"), std::string::npos) << r.reason;
  std::vector<store::CounterUsage> u;
  EXPECT_EQ(s.usage("u:alice@example.com", T0, u).status, Status::corrupt);
}

TEST(StoreLmdb, StoreWithoutFormatRecordOrWithBadRecordsIsCorrupt) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  Sender who(10, 10, 10);
  const std::string gen = store_charged_once(o, who);
  const std::string meta = peek(gen, "M");
  poke(gen, "M", nullptr, 0);
  {
    LmdbStore s(o);
    ChargeResult r = s.charge(who.limits, 1, T0, nullptr);
    EXPECT_EQ(r.status, Status::corrupt);
    EXPECT_NE(r.reason.find("without a format record"), std::string::npos) << r.reason;
  }
  poke(gen, "M", meta.data(), meta.size());
  // A counter record of the wrong size.
  std::string key("Cu:alice@example.com\0rcpt\0", 26);
  key += std::string("\x00\x01\x51\x80", 4);  // 86400
  ASSERT_EQ(peek(gen, key).size(), 264u);
  poke(gen, key, "short", 5);
  LmdbStore s(o);
  ChargeResult r = s.charge(who.limits, 1, T0, nullptr);
  EXPECT_EQ(r.status, Status::corrupt);
  EXPECT_NE(r.reason.find("counter record of 5 bytes"), std::string::npos) << r.reason;
  // Nothing else was charged by that attempt.
  EXPECT_EQ(used(s, "d:example.com", "rcpt", DAY, T0), 1u);
}

TEST(StoreLmdb, RootLeavesNothingTheOwnerCannotOpen) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (make test runs as root)";
  TempDir d;
  ASSERT_EQ(chown(d.path().c_str(), store_test::nobody, store_test::nobody), 0);
  store::LmdbOptions o = store_test::options_for(d);
  {
    LmdbStore s(o);
    Sender who(10, 10, 10);
    ASSERT_TRUE(s.charge(who.limits, 1, T0, nullptr).accepted);
  }
  const std::string gen = LmdbStore::generation_path(o);
  struct stat st;
  ASSERT_EQ(stat(gen.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, store_test::nobody);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  for (const char* f : {"data.mdb", "writer.lock"}) {
    ASSERT_EQ(stat((gen + "/" + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_uid, store_test::nobody) << f;
    EXPECT_EQ(st.st_gid, store_test::nobody) << f;
    EXPECT_EQ(st.st_mode & 077, 0u) << f;
  }
  // A file root created earlier by mistake is given back.
  ASSERT_EQ(chown((gen + "/writer.lock").c_str(), 0, 0), 0);
  {
    LmdbStore s(o);
    Sender who(10, 10, 10);
    ASSERT_TRUE(s.charge(who.limits, 1, T0, nullptr).accepted);
  }
  ASSERT_EQ(stat((gen + "/writer.lock").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, store_test::nobody);
  // The owner can use it.
  const int status = store_test::in_child([&] {
    if (setgid(store_test::nobody) != 0 || setuid(store_test::nobody) != 0) return 10;
    LmdbStore s(o);
    Sender who(10, 10, 10);
    ChargeResult r = s.charge(who.limits, 1, T0, nullptr);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.reason.c_str());
      return 1;
    }
    return used(s, "d:example.com", "rcpt", DAY, T0) == 3 ? 0 : 2;
  });
  EXPECT_EQ(status, 0);
}

TEST(StoreLmdb, ANewBootStartsAFreshStore) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  Sender who(10, 10, 10);
  {
    LmdbStore s(o);
    ASSERT_TRUE(s.charge(who.limits, 4, T0, nullptr).accepted);
  }
  o.boot_id = "next-boot";
  {
    LmdbStore s(o);
    EXPECT_EQ(used(s, "d:example.com", "rcpt", DAY, T0), 0u);
    ASSERT_TRUE(s.charge(who.limits, 1, T0, nullptr).accepted);
  }
  struct stat st;
  EXPECT_EQ(stat((d.path() + "/boot-test-boot").c_str(), &st), -1) << "the old boot's store is removed";
  EXPECT_EQ(stat((d.path() + "/boot-next-boot").c_str(), &st), 0);
}

TEST(StoreLmdb, StatsReportSizeAndBound) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  LmdbStore s(o);
  store::Stats st;
  ASSERT_TRUE(s.stats(st).ok());  // an empty store reads fine
  EXPECT_EQ(st.counters, 0u);
  Sender who(10, 10, 10);
  ASSERT_TRUE(s.charge(who.limits, 1, T0, nullptr).accepted);
  ASSERT_TRUE(s.stats(st).ok());
  EXPECT_EQ(st.counters, 3u);
  EXPECT_EQ(st.bytes_max, o.map_size / 4 * 3);
  EXPECT_GT(st.bytes_used, 0u);
  EXPECT_LT(st.bytes_used, 64u * 1024u);
}

TEST(StoreLmdb, StatusNames) {
  EXPECT_EQ(store::status_name(Status::ok), "ok");
  EXPECT_EQ(store::status_name(Status::unavailable), "unavailable");
  EXPECT_EQ(store::status_name(Status::full), "full");
  EXPECT_EQ(store::status_name(Status::corrupt), "corrupt");
  EXPECT_EQ(store::status_name(Status::error), "error");
}

TEST(StoreLmdb, AProcessWithASmallerMapFollowsOneThatGrewTheFile) {
  TempDir d;
  store::LmdbOptions small = store_test::options_for(d), big = small;
  small.map_size = 1 << 20;
  big.map_size = 16 << 20;
  LmdbStore s_small(small), s_big(big);
  const Limit mine[] = {{{"u:small@example.com", "rcpt", DAY}, 100}};
  ASSERT_TRUE(s_small.charge(mine, 1, T0, nullptr).accepted);
  // The bigger one grows the data far beyond the small map.
  const std::string pad(200, 'p');
  for (int i = 0; i < 8000; ++i) {
    const std::string id = "a:" + pad + std::to_string(i);
    const Limit l[] = {{{id, "rcpt", DAY}, 100}};
    ChargeResult r = s_big.charge(l, 1, T0, nullptr);
    ASSERT_TRUE(r.ok()) << i << ": " << r.reason;
  }
  store::Stats st;
  ASSERT_TRUE(s_big.stats(st).ok());
  ASSERT_GT(st.bytes_used, std::uint64_t{1} << 20);
  // The small one adopts the larger map instead of failing.
  ChargeResult r = s_small.charge(mine, 1, T0 + 1, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.accepted);
  EXPECT_EQ(used(s_small, "u:small@example.com", "rcpt", DAY, T0 + 1), 2u);
  EXPECT_EQ(used(s_small, "a:" + pad + "7999", "rcpt", DAY, T0 + 1), 1u);
  // ... and the room that comes with it: new counters are taken too.
  EXPECT_EQ(s_small.capacity(), s_big.capacity());
  const Limit fresh[] = {{{"u:fresh@example.com", "rcpt", DAY}, 100}};
  r = s_small.charge(fresh, 1, T0 + 2, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
}

namespace {

std::string renamed_generation;

// Between taking writer.lock and opening data.mdb: repair moves the
// generation aside and a new process starts a fresh one under the old name.
void move_generation_aside(const std::string& gen) {
  renamed_generation = gen + ".aside";
  ASSERT_EQ(rename(gen.c_str(), renamed_generation.c_str()), 0);
  ASSERT_EQ(mkdir(gen.c_str(), 0700), 0);
  store::LmdbOptions o;
  o.directory = gen.substr(0, gen.rfind('/'));
  o.boot_id = "test-boot";
  o.map_size = std::size_t{16} << 20;
  LmdbStore fresh(o);
  const Limit bob[] = {{{"u:bob@example.com", "rcpt", DAY}, 9}};
  ASSERT_TRUE(fresh.charge(bob, 1, T0, nullptr).accepted);
}

// Charges alice's counters once in a store of `o`, then closes it.
void charge_alice_once(const store::LmdbOptions& o) {
  LmdbStore s(o);
  ASSERT_TRUE(s.charge(Sender(10, 10, 10).limits, 1, T0, nullptr).accepted);
}

}  // namespace

// data.mdb always comes from the directory whose writer.lock the process
// holds, even when the generation is renamed in between: the store opens it
// by name only when that is the same file.
TEST(StoreLmdb, DataFileComesFromTheLockedGenerationAcrossARename) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  charge_alice_once(o);
  const std::string gen = LmdbStore::generation_path(o);
  o.before_env_open = move_generation_aside;
  LmdbStore s(o);
  ChargeResult r = s.charge(Sender(10, 10, 10).limits, 1, T0, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  ASSERT_TRUE(r.accepted);
  s.close();
  // The second charge landed next to the lock it used: in the old store,
  // now set aside, and not in the fresh one.
  store::LmdbOptions plain = store_test::options_for(d);
  std::vector<store::CounterUsage> u;
  LmdbStore now(plain);
  ASSERT_TRUE(now.usage("u:alice@example.com", T0, u).ok());
  EXPECT_TRUE(u.empty());
  now.close();
  ASSERT_EQ(rename(gen.c_str(), (gen + ".new").c_str()), 0);
  ASSERT_EQ(rename(renamed_generation.c_str(), gen.c_str()), 0);
  LmdbStore old(plain);
  ASSERT_TRUE(old.usage("u:alice@example.com", T0, u).ok());
  ASSERT_FALSE(u.empty());
  for (const store::CounterUsage& c : u) EXPECT_EQ(c.used, 2u) << c.metric;
}

TEST(StoreLmdb, NoDescriptorOfTheStoreSurvivesExec) {
  TempDir d;
  store::LmdbOptions o = store_test::options_for(d);
  LmdbStore s(o);
  Sender who(10, 10, 10);
  ASSERT_TRUE(s.charge(who.limits, 1, T0, nullptr).accepted);
  const std::string gen = LmdbStore::generation_path(o);
  int seen = 0;
  DIR* fds = opendir("/proc/self/fd");
  ASSERT_NE(fds, nullptr);
  while (struct dirent* e = readdir(fds)) {
    char target[4096];
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::string(target).rfind(gen, 0) != 0) continue;
    ++seen;
    const int flags = fcntl(std::atoi(e->d_name), F_GETFD);
    EXPECT_TRUE(flags != -1 && (flags & FD_CLOEXEC)) << target;
  }
  closedir(fds);
  EXPECT_GE(seen, 1);
}

