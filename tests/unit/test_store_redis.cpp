// What only the Redis store does (store_redis.h): key expiries, the
// function library, connection faults and timeouts, passwords, databases,
// and in a cluster the reservations, their expiry and redirections. What
// every store does is test_store_contract.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "redis_functions.h"
#include "redis_test_server.h"
#include "store_redis.h"
#include "store_test_util.h"

using redis::Reply;
using store::ChargeResult;
using store::Limit;
using store::RedisStore;
using store::Status;

namespace {

constexpr std::uint32_t DAY = 86400;

template <class F>
bool qt_wait(F ok, int ms = 20000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return ok();
}

long ms_since(std::chrono::steady_clock::time_point t0) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
}

std::vector<std::string> all_keys(redis_test::Server& s) {
  std::vector<std::string> keys;
  Reply r = s.command({"KEYS", "*"});
  for (const Reply& k : r.elements) keys.push_back(k.str);
  return keys;
}

// A user and a client address: two identities (two slots in a cluster).
const Limit user_and_ip[] = {{{"u:alice@example.com", "rcpt", DAY}, 100},
                             {{"u:alice@example.com", "msg", 3600}, 10},
                             {{"a:192.0.2.7", "rcpt", 60}, 50}};

std::uint64_t used(store::Store& s, std::string_view id, std::string_view metric) {
  std::vector<store::CounterUsage> u;
  EXPECT_TRUE(s.usage(id, store::store_clock, u).ok());
  for (const auto& c : u)
    if (c.metric == metric) return c.used;
  return 0;
}

// Checks every key of `server` has an expiry.
void expect_every_key_expires(redis_test::Server& server) {
  for (const std::string& k : all_keys(server)) {
    Reply ttl = server.command({"PTTL", k});
    EXPECT_EQ(ttl.type, Reply::Type::integer) << k;
    EXPECT_GT(ttl.integer, 0) << k << " has no expiry";
  }
}

}  // namespace

TEST(StoreRedis, EveryKeyExpires) {
  redis_test::Server& server = redis_test::standalone();
  server.command({"FLUSHALL"});
  RedisStore s(redis_test::options(server.url()));
  store::Receipt r;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s.charge(user_and_ip, 1, store::store_clock, &r).accepted);
  ASSERT_TRUE(s.refund(r, store::store_clock).ok());
  ASSERT_TRUE(s.charge(user_and_ip, 2, store::store_clock, nullptr).accepted);
  ASSERT_TRUE(s.update_record("tg:a:192.0.2.7", store::store_clock, [](auto, std::uint64_t now) {
                 return store::RecordEdit::put("state", now + 30'000);
               }).ok());
  ASSERT_EQ(all_keys(server).size(), 3u);
  expect_every_key_expires(server);
  // The user's key lives as long as its day counter needs, plus a minute.
  Reply ttl = server.command({"PTTL", "qt1:{u:alice@example.com}"});
  EXPECT_GT(ttl.integer, std::int64_t{DAY} * 1000);
  EXPECT_LE(ttl.integer, std::int64_t{DAY} * 1000 + DAY * 1000 / 60 + 61 + 60'000);
  ttl = server.command({"PTTL", "qt1:{a:192.0.2.7}"});
  EXPECT_LE(ttl.integer, 62'000 + 60'000);
  ttl = server.command({"PTTL", "qt1:r:{tg:a:192.0.2.7}"});
  EXPECT_GT(ttl.integer, 20'000);
  EXPECT_LE(ttl.integer, 30'000);
}

TEST(StoreRedis, TheLibraryIsLoadedWhereverItIsMissing) {
  redis_test::Server& server = redis_test::standalone();
  server.command({"FLUSHALL"});
  server.command({"FUNCTION", "FLUSH"});
  RedisStore s(redis_test::options(server.url()));
  ASSERT_TRUE(s.charge(user_and_ip, 1, store::store_clock, nullptr).accepted);
  Reply list = server.command({"FUNCTION", "LIST"});
  ASSERT_EQ(list.type, Reply::Type::array);
  EXPECT_EQ(list.elements.size(), 1u);
  // Gone again (FUNCTION FLUSH, a restart without persistence): loaded again.
  server.command({"FUNCTION", "FLUSH"});
  ChargeResult c = s.charge(user_and_ip, 1, store::store_clock, nullptr);
  ASSERT_TRUE(c.ok()) << c.reason;
  EXPECT_TRUE(c.accepted);
  EXPECT_EQ(used(s, "u:alice@example.com", "rcpt"), 2u);
  // The functions carry a digest of their source: another version's would
  // not be called by mistake.
  EXPECT_NE(redis_functions::name(redis_functions::Function::charge).find("qt1_charge_"), std::string::npos);
  EXPECT_EQ(redis_functions::name(redis_functions::Function::charge).size(), 11u + 8u);
}

TEST(StoreRedis, NothingListeningIsUnavailableAtOnceAndRemembered) {
  RedisStore s(redis_test::options("redis://127.0.0.1:1?connect_timeout=300"));
  auto t0 = std::chrono::steady_clock::now();
  ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
  EXPECT_EQ(r.status, Status::unavailable);
  EXPECT_NE(r.reason.find("connect to 127.0.0.1:1"), std::string::npos) << r.reason;
  EXPECT_LT(ms_since(t0), 1000);
  t0 = std::chrono::steady_clock::now();
  std::vector<store::CounterUsage> u;
  store::Result again = s.usage("u:alice@example.com", store::store_clock, u);
  EXPECT_EQ(again.status, Status::unavailable);
  EXPECT_EQ(again.reason, r.reason);  // remembered, not tried again
  EXPECT_LT(ms_since(t0), 50);
}

TEST(StoreRedis, AStalledServerTimesOutAfterTheTimeout) {
  redis_test::Server server;
  ASSERT_TRUE(server.start());
  RedisStore s(redis_test::options(server.url() + "?timeout=200&connect_timeout=200"));
  ASSERT_TRUE(s.charge(user_and_ip, 1, store::store_clock, nullptr).accepted);
  server.pause();
  auto t0 = std::chrono::steady_clock::now();
  ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
  const long waited = ms_since(t0);
  server.resume();
  EXPECT_EQ(r.status, Status::unavailable);
  EXPECT_NE(r.reason.find("timed out after 200 ms"), std::string::npos) << r.reason;
  EXPECT_GE(waited, 150);
  EXPECT_LT(waited, 2000);
  // A new store (the next session) works again.
  RedisStore next(redis_test::options(server.url()));
  EXPECT_TRUE(next.charge(user_and_ip, 1, store::store_clock, nullptr).accepted);
  // So does this one, once closed.
  s.close();
  EXPECT_TRUE(s.charge(user_and_ip, 1, store::store_clock, nullptr).accepted);
}

TEST(StoreRedis, AServerThatWasRestartedIsUsedByTheNextSession) {
  redis_test::Server server;
  ASSERT_TRUE(server.start());
  RedisStore s(redis_test::options(server.url()));
  ASSERT_TRUE(s.charge(user_and_ip, 1, store::store_clock, nullptr).accepted);
  server.stop();
  ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
  EXPECT_EQ(r.status, Status::unavailable) << r.reason;
  ASSERT_TRUE(server.start());
  RedisStore next(redis_test::options(server.url()));
  r = next.charge(user_and_ip, 1, store::store_clock, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;  // no persistence: a fresh server, library loaded again
  EXPECT_TRUE(r.accepted);
}

TEST(StoreRedis, PasswordsComeFromAFileOthersCannotRead) {
  redis_test::Server server({"--requirepass", "pw-for-test"});
  ASSERT_TRUE(server.start());
  store_test::TempDir d;
  const std::string file = d.path() + "/throttlestorepassword";
  auto write_file = [&](const std::string& text, mode_t mode) {
    std::ofstream(file, std::ios::trunc) << text;
    chmod(file.c_str(), mode);
  };
  store::RedisOptions o = redis_test::options(server.url());
  o.password_file = file;
  // No file: no AUTH, and Redis says so.
  {
    RedisStore s(o);
    ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
    EXPECT_EQ(r.status, Status::unavailable);
    EXPECT_NE(r.reason.find("control/throttlestorepassword"), std::string::npos) << r.reason;
  }
  write_file("pw-for-test\n", 0400);
  {
    RedisStore s(o);
    ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
    ASSERT_TRUE(r.ok()) << r.reason;
    EXPECT_TRUE(r.accepted);
    EXPECT_EQ(s.describe().find("pw-for-test"), std::string::npos);
  }
  write_file("pw-for-test\n", 0644);  // readable by everyone: refused
  {
    RedisStore s(o);
    ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
    EXPECT_EQ(r.status, Status::unavailable);
    EXPECT_NE(r.reason.find("refused"), std::string::npos) << r.reason;
    EXPECT_EQ(r.reason.find("pw-for-test"), std::string::npos) << r.reason;
  }
  write_file("wrong-password\n", 0440);
  {
    RedisStore s(o);
    ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
    EXPECT_EQ(r.status, Status::unavailable);
    EXPECT_NE(r.reason.find("AUTH refused"), std::string::npos) << r.reason;
    EXPECT_EQ(r.reason.find("wrong-password"), std::string::npos) << r.reason;
  }
  // An ACL user named in the URL, with only what qmail-throttle-redis(8)
  // grants it (the commands inside the functions are checked too).
  Reply acl = server.command({"ACL", "SETUSER", "qmail", "reset", "on", ">user-pw", "~qt1:*", "resetchannels",
                              "+fcall", "+function|load", "+hget", "+hset", "+hdel", "+hgetall", "+hkeys",
                              "+pttl", "+pexpire", "+time", "+type", "+get", "+set", "+del", "+watch", "+unwatch",
                              "+multi", "+exec", "+scan", "+info", "+cluster|slots", "+asking", "+select", "+ping"},
                             "pw-for-test");
  ASSERT_EQ(acl.type, Reply::Type::status) << acl.str;
  write_file("user-pw\n", 0400);
  o.spec.user = "qmail";
  {
    server.command({"FUNCTION", "FLUSH"}, "pw-for-test");  // the user loads the library itself
    RedisStore s(o);
    ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
    ASSERT_TRUE(r.ok()) << r.reason;
    EXPECT_EQ(s.describe(), "redis://qmail@127.0.0.1:" + std::to_string(server.port()) + "/0");
    store::Receipt receipt;
    ASSERT_TRUE(s.charge(user_and_ip, 1, store::store_clock, &receipt).accepted);
    ASSERT_TRUE(s.refund(receipt, store::store_clock).ok());
    std::vector<store::CounterUsage> top;
    ASSERT_TRUE(s.top(5, "", store::store_clock, top).ok());
    EXPECT_FALSE(top.empty());
    ASSERT_TRUE(s.update_record("tg:x", store::store_clock, [](auto, std::uint64_t now) {
                   return store::RecordEdit::put("v", now + 1000);
                 }).ok());
    std::size_t n = 0;
    ASSERT_TRUE(s.expire(store::store_clock, 100, &n).ok());
    store::Stats st;
    ASSERT_TRUE(s.stats(st).ok());
    ASSERT_TRUE(s.reset("u:alice@example.com", store::store_clock, &n).ok());
  }
}

TEST(StoreRedis, ADatabaseNumberKeepsTheCountersApart) {
  redis_test::Server& server = redis_test::standalone();
  server.command({"FLUSHALL"});
  RedisStore db3(redis_test::options(server.url() + "/3"));
  RedisStore db0(redis_test::options(server.url()));
  ASSERT_TRUE(db3.charge(user_and_ip, 4, store::store_clock, nullptr).accepted);
  EXPECT_EQ(used(db3, "u:alice@example.com", "rcpt"), 4u);
  EXPECT_EQ(used(db0, "u:alice@example.com", "rcpt"), 0u);
  Reply info = server.command({"INFO", "keyspace"});
  EXPECT_NE(info.str.find("db3:keys=2"), std::string::npos) << info.str;
}

TEST(StoreRedis, RedisRefusingToStoreIsFull) {
  redis_test::Server server({"--maxmemory", "1mb", "--maxmemory-policy", "noeviction"});
  ASSERT_TRUE(server.start());
  RedisStore s(redis_test::options(server.url()));
  ChargeResult r;
  for (int i = 0; i < 200000; ++i) {
    const std::string id = "a:" + std::string(200, 'p') + std::to_string(i);
    const Limit l[] = {{{id, "rcpt", DAY}, 10}};
    r = s.charge(l, 1, store::store_clock, nullptr);
    if (!r.ok()) break;
  }
  EXPECT_EQ(r.status, Status::full) << r.reason;
  EXPECT_NE(r.reason.find("OOM"), std::string::npos) << r.reason;
}

// ---- cluster ----------------------------------------------------------------

namespace {

redis_test::Server* node_of_key(redis_test::Cluster& c, const std::string& key) {
  for (std::size_t i = 0; i < c.size(); ++i) {
    Reply r = c.node(i).command({"EXISTS", key});
    if (r.type == Reply::Type::integer) return &c.node(i);  // the owner answers; others say MOVED
  }
  return nullptr;
}

}  // namespace

TEST(StoreRedisCluster, ChargesAcrossSlotsLeaveNoReservationAndEveryKeyExpires) {
  redis_test::Cluster& c = redis_test::cluster();
  ASSERT_TRUE(c.ok());
  c.flushall();
  RedisStore s(redis_test::options(c.url()));
  store::Receipt r;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(s.charge(user_and_ip, 1, store::store_clock, &r).accepted);
  const Limit tight[] = {{{"u:alice@example.com", "rcpt", DAY}, 100}, {{"a:192.0.2.7", "rcpt", 60}, 10}};
  ChargeResult refused = s.charge(tight, 1, store::store_clock, nullptr);
  ASSERT_TRUE(refused.ok()) << refused.reason;
  EXPECT_FALSE(refused.accepted);
  EXPECT_EQ(refused.refusal.index, 1u);
  EXPECT_EQ(used(s, "u:alice@example.com", "rcpt"), 10u);  // given back
  for (std::size_t i = 0; i < c.size(); ++i) {
    for (const std::string& k : all_keys(c.node(i))) {
      Reply fields = c.node(i).command({"HKEYS", k});
      for (const Reply& f : fields.elements) EXPECT_NE(f.str.substr(0, 1), "~") << k << " " << f.str;
    }
    expect_every_key_expires(c.node(i));
  }
  ASSERT_TRUE(s.refund(r, store::store_clock).ok());
  EXPECT_EQ(used(s, "u:alice@example.com", "rcpt"), 0u);
  EXPECT_EQ(used(s, "a:192.0.2.7", "rcpt"), 0u);
}

TEST(StoreRedisCluster, AReservationOfAKilledProcessIsGivenBackAfterItsHoldTime) {
  redis_test::Cluster& c = redis_test::cluster();
  ASSERT_TRUE(c.ok());
  c.flushall();
  const std::string key = RedisStore::identity_key("u:bob@example.com");
  redis_test::Server* owner = node_of_key(c, key);
  ASSERT_NE(owner, nullptr);
  RedisStore s(redis_test::options(c.url()));
  const Limit bob[] = {{{"u:bob@example.com", "rcpt", DAY}, 3}, {{"a:192.0.2.8", "rcpt", DAY}, 100}};
  ASSERT_TRUE(s.charge(bob, 1, store::store_clock, nullptr).accepted);  // loads the library everywhere
  // A qmail-smtpd reserved 2 on bob's key and was killed before settling.
  Reply reserved = owner->command({"FCALL", redis_functions::name(redis_functions::Function::charge), "1", key, "0",
                                   "2", "killed-1", "300", "1", "1", "rcpt/86400", "86400", "3"});
  ASSERT_EQ(reserved.type, Reply::Type::array) << reserved.str;
  ASSERT_EQ(reserved.elements[0].integer, 1);
  // The reservation counts: bob's budget is full while it is held.
  ChargeResult r = s.charge(bob, 1, store::store_clock, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_FALSE(r.accepted);
  EXPECT_EQ(used(s, "u:bob@example.com", "rcpt"), 3u);
  // Past its hold time the next charge gives it back first.
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  r = s.charge(bob, 1, store::store_clock, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.accepted);
  EXPECT_EQ(used(s, "u:bob@example.com", "rcpt"), 2u);
  Reply fields = owner->command({"HKEYS", key});
  for (const Reply& f : fields.elements) EXPECT_NE(f.str.substr(0, 1), "~") << f.str;
}

TEST(StoreRedisCluster, AMovedSlotIsFollowed) {
  redis_test::Cluster& c = redis_test::cluster();
  ASSERT_TRUE(c.ok());
  c.flushall();
  RedisStore s(redis_test::options(c.url()));
  ASSERT_TRUE(s.charge(user_and_ip, 2, store::store_clock, nullptr).accepted);
  const std::string key = RedisStore::identity_key("u:alice@example.com");
  const std::string slot = std::to_string(redis::key_slot(key));
  redis_test::Server* from = node_of_key(c, key);
  ASSERT_NE(from, nullptr);
  redis_test::Server* to = &c.node(0) == from ? &c.node(1) : &c.node(0);
  const std::string from_id = from->command({"CLUSTER", "MYID"}).str;
  const std::string to_id = to->command({"CLUSTER", "MYID"}).str;
  ASSERT_EQ(to->command({"CLUSTER", "SETSLOT", slot, "IMPORTING", from_id}).type, Reply::Type::status);
  ASSERT_EQ(from->command({"CLUSTER", "SETSLOT", slot, "MIGRATING", to_id}).type, Reply::Type::status);
  // While the slot migrates, a new identity of that slot is asked for on
  // the target (ASK): its key is not on the source.
  std::string fresh;
  for (int i = 0; fresh.empty(); ++i) {
    const std::string id = "u:x" + std::to_string(i) + "@example.com";
    if (redis::key_slot(RedisStore::identity_key(id)) == redis::key_slot(key)) fresh = id;
  }
  const Limit fresh_limit[] = {{{fresh, "rcpt", DAY}, 5}};
  ChargeResult r = s.charge(fresh_limit, 1, store::store_clock, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.accepted);
  Reply moved = from->command({"MIGRATE", "127.0.0.1", std::to_string(to->port()), "", "0", "5000", "KEYS", key});
  ASSERT_EQ(moved.type, Reply::Type::status) << moved.str;
  for (std::size_t i = 0; i < c.size(); ++i)
    c.node(i).command({"CLUSTER", "SETSLOT", slot, "NODE", to_id});
  // The store still has the old map: MOVED, and it follows.
  r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.accepted);
  EXPECT_EQ(used(s, "u:alice@example.com", "rcpt"), 3u);
  EXPECT_EQ(used(s, fresh, "rcpt"), 1u);
  EXPECT_EQ(to->command({"EXISTS", key}).integer, 1);
}

TEST(StoreRedisCluster, ARecipientCostsAtMostTwoRoundTrips) {
  redis_test::Cluster& c = redis_test::cluster();
  ASSERT_TRUE(c.ok());
  c.flushall();
  RedisStore s(redis_test::options(c.url()));
  ASSERT_TRUE(s.charge(user_and_ip, 1, store::store_clock, nullptr).accepted);  // connects, reads the map
  const unsigned long before = s.router()->round_trips();
  store::Receipt r;
  ASSERT_TRUE(s.charge(user_and_ip, 1, store::store_clock, &r).accepted);  // two slots: reserve, commit
  EXPECT_EQ(s.router()->round_trips() - before, 2u);
  const Limit tight[] = {{{"u:alice@example.com", "rcpt", DAY}, 100}, {{"a:192.0.2.7", "rcpt", 60}, 2}};
  ASSERT_FALSE(s.charge(tight, 1, store::store_clock, nullptr).accepted);  // reserve, give back
  EXPECT_EQ(s.router()->round_trips() - before, 4u);
  const Limit one_identity[] = {{{"u:alice@example.com", "rcpt", DAY}, 100}, {{"u:alice@example.com", "msg", DAY}, 9}};
  ASSERT_TRUE(s.charge(one_identity, 1, store::store_clock, nullptr).accepted);  // one slot: one call
  EXPECT_EQ(s.router()->round_trips() - before, 5u);
  ASSERT_TRUE(s.refund(r, store::store_clock).ok());  // both slots at once
  EXPECT_EQ(s.router()->round_trips() - before, 6u);
}

// ---- Sentinel ---------------------------------------------------------------

TEST(StoreRedisSentinel, TheStoreFollowsTheFailoverOnAKeptConnection) {
  redis_test::SentinelGroup g;
  ASSERT_TRUE(g.ok());
  RedisStore s(redis_test::options(g.url()));
  ASSERT_TRUE(s.charge(user_and_ip, 1, store::store_clock, nullptr).accepted);
  EXPECT_EQ(s.describe(), g.url() + "/0 (primary 127.0.0.1:" + std::to_string(g.primary().port()) + ")");
  EXPECT_EQ(s.router()->discoveries(), 1u);
  // Wait until the charge reached the replica, then fail over: the old
  // primary becomes a replica and answers READONLY on the kept connection;
  // the store asks Sentinel again and goes on with the new primary.
  ASSERT_TRUE(qt_wait([&] { return g.replica().command({"EXISTS", "qt1:{a:192.0.2.7}"}).integer == 1; }));
  ASSERT_TRUE(g.failover());
  ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.accepted);
  EXPECT_EQ(s.router()->discoveries(), 2u);
  EXPECT_EQ(s.describe(), g.url() + "/0 (primary 127.0.0.1:" + std::to_string(g.replica().port()) + ")");
  EXPECT_EQ(used(s, "a:192.0.2.7", "rcpt"), 2u);
  // A new store (the next session) asks Sentinel and finds the new one.
  RedisStore next(redis_test::options(g.url()));
  EXPECT_EQ(used(next, "u:alice@example.com", "rcpt"), 2u);
}

TEST(StoreRedisSentinel, NoSentinelAnsweringIsUnavailable) {
  RedisStore s(redis_test::options("redis-sentinel://127.0.0.1:1,127.0.0.1:2/qt?connect_timeout=200"));
  const auto t0 = std::chrono::steady_clock::now();
  ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, nullptr);
  EXPECT_EQ(r.status, Status::unavailable);
  EXPECT_NE(r.reason.find("no Sentinel named the primary of qt"), std::string::npos) << r.reason;
  EXPECT_LT(ms_since(t0), 1000);
}

namespace {

redis_test::Server* reservation_owner = nullptr;
std::string reservation_key;

// Between reserving and committing: the reservation on one key goes (held
// past its hold time and given back, or an admin's reset).
void drop_reservation() { reservation_owner->command({"DEL", reservation_key}); }

}  // namespace

TEST(StoreRedisCluster, AChargeWhoseReservationIsGoneBeforeItsCommitDoesNotStand) {
  redis_test::Cluster& c = redis_test::cluster();
  ASSERT_TRUE(c.ok());
  c.flushall();
  reservation_key = RedisStore::identity_key("u:alice@example.com");
  reservation_owner = node_of_key(c, reservation_key);
  ASSERT_NE(reservation_owner, nullptr);
  store::RedisOptions o = redis_test::options(c.url());
  o.before_settle = drop_reservation;
  RedisStore s(o);
  RedisStore plain(redis_test::options(c.url()));
  ASSERT_TRUE(plain.charge(user_and_ip, 1, store::store_clock, nullptr).accepted);  // library everywhere
  store::Receipt receipt;
  ChargeResult r = s.charge(user_and_ip, 1, store::store_clock, &receipt);
  EXPECT_EQ(r.status, Status::unavailable);
  EXPECT_NE(r.reason.find("a reservation was gone before it was committed"), std::string::npos) << r.reason;
  EXPECT_TRUE(receipt.empty());
  // The address's charge, committed, was given back: only the first charge counts.
  EXPECT_EQ(used(plain, "a:192.0.2.7", "rcpt"), 1u);
  EXPECT_EQ(used(plain, "u:alice@example.com", "rcpt"), 0u);  // its key was dropped
}
