// Redis Cluster key slots, redirections and the slot map
// (redis_cluster_slots.h), with the examples of the Redis Cluster
// specification.
#include <gtest/gtest.h>

#include "redis_cluster_slots.h"
#include "store_redis.h"

using redis::Reply;

namespace {

Reply integer(long long v) {
  Reply r;
  r.type = Reply::Type::integer;
  r.integer = v;
  return r;
}

Reply string(std::string s) {
  Reply r;
  r.type = Reply::Type::string;
  r.str = std::move(s);
  return r;
}

Reply array(std::vector<Reply> e) {
  Reply r;
  r.type = Reply::Type::array;
  r.elements = std::move(e);
  return r;
}

Reply error(std::string s) {
  Reply r;
  r.type = Reply::Type::error;
  r.str = std::move(s);
  return r;
}

}  // namespace

TEST(RedisClusterSlots, Crc16AndKeySlots) {
  EXPECT_EQ(redis::crc16("123456789"), 0x31C3);  // the specification's check value
  EXPECT_EQ(redis::key_slot("foo"), 12182);
  EXPECT_EQ(redis::key_slot("{user1000}.following"), redis::key_slot("{user1000}.followers"));
  EXPECT_EQ(redis::key_slot("{user1000}.following"), redis::key_slot("user1000"));
  EXPECT_EQ(redis::key_slot("foo{}{bar}"), redis::crc16("foo{}{bar}") % 16384);  // empty tag: the whole key
  EXPECT_EQ(redis::key_slot("foo{{bar}}zap"), redis::key_slot("{bar"));
  EXPECT_EQ(redis::key_slot("foo{bar}{zap}"), redis::key_slot("bar"));
}

TEST(RedisClusterSlots, AnIdentitysKeysShareItsSlot) {
  for (const char* id : {"u:alice@example.com", "a:192.0.2.7", "n:2001:db8::/64", "u:a}b@example.com"}) {
    const std::string key = store::RedisStore::identity_key(id);
    EXPECT_EQ(redis::key_slot(key), redis::key_slot(key + ":anything")) << id;
  }
  EXPECT_NE(redis::key_slot(store::RedisStore::identity_key("u:alice@example.com")),
            redis::key_slot(store::RedisStore::identity_key("a:192.0.2.7")));
}

TEST(RedisClusterSlots, Redirections) {
  std::optional<redis::Redirect> r = redis::parse_redirect(error("MOVED 3999 127.0.0.1:6381"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ask);
  EXPECT_EQ(r->slot, 3999);
  EXPECT_EQ(r->to.host, "127.0.0.1");
  EXPECT_EQ(r->to.port, 6381);
  r = redis::parse_redirect(error("ASK 12182 [2001:db8::1]:7000"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ask);
  EXPECT_EQ(r->to.host, "2001:db8::1");
  EXPECT_FALSE(redis::parse_redirect(error("MOVED 16384 127.0.0.1:6381")));
  EXPECT_FALSE(redis::parse_redirect(error("MOVED x 127.0.0.1:6381")));
  EXPECT_FALSE(redis::parse_redirect(error("ERR Function not found")));
  EXPECT_FALSE(redis::parse_redirect(string("MOVED 1 h:1")));
}

TEST(RedisClusterSlots, TheMapFollowsClusterSlotsAndMoved) {
  // [[0, 5460, [host, port, id], [replica...]], [5461, 16383, ["", 7001, id]]]
  Reply slots = array({array({integer(0), integer(5460), array({string("10.0.0.1"), integer(7000), string("a")}),
                              array({string("10.0.0.9"), integer(7009), string("r")})}),
                       array({integer(5461), integer(16383), array({string(""), integer(7001), string("b")})})});
  redis::SlotMap m;
  ASSERT_TRUE(m.load(slots, {"10.0.0.2", 7001}));
  ASSERT_EQ(m.nodes().size(), 2u);  // primaries only
  EXPECT_EQ(m.nodes()[static_cast<std::size_t>(m.node_of(0))].text(), "10.0.0.1:7000");
  EXPECT_EQ(m.nodes()[static_cast<std::size_t>(m.node_of(5461))].text(), "10.0.0.2:7001");  // "": who answered
  m.move(5461, {"10.0.0.3", 7002});
  EXPECT_EQ(m.nodes()[static_cast<std::size_t>(m.node_of(5461))].text(), "10.0.0.3:7002");
  EXPECT_EQ(m.nodes()[static_cast<std::size_t>(m.node_of(5462))].text(), "10.0.0.2:7001");
  EXPECT_FALSE(m.load(error("ERR This instance has cluster support disabled"), {"h", 1}));
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.node_of(0), -1);
}
