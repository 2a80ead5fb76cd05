// control/throttlestore's first line (store_url.h): the store it names,
// and never a password.
#include <gtest/gtest.h>

#include "store_url.h"

using store_url::Kind;
using store_url::parse;

namespace {

store_url::Spec ok(std::string_view line) {
  std::string error;
  std::optional<store_url::Spec> s = parse(line, &error);
  EXPECT_TRUE(s.has_value()) << line << ": " << error;
  return s.value_or(store_url::Spec{});
}

std::string bad(std::string_view line) {
  std::string error;
  EXPECT_FALSE(parse(line, &error).has_value()) << line;
  return error;
}

}  // namespace

TEST(StoreUrl, NothingOrLmdbIsTheEmbeddedStore) {
  EXPECT_EQ(ok("").kind, Kind::lmdb);
  EXPECT_EQ(ok("lmdb").kind, Kind::lmdb);
  EXPECT_EQ(ok("  lmdb \r").kind, Kind::lmdb);
  EXPECT_NE(bad("mysql://x").find("not lmdb"), std::string::npos);
}

TEST(StoreUrl, Redis) {
  store_url::Spec s = ok("redis://10.0.0.5");
  EXPECT_EQ(s.kind, Kind::redis);
  ASSERT_EQ(s.hosts.size(), 1u);
  EXPECT_EQ(s.hosts[0].host, "10.0.0.5");
  EXPECT_EQ(s.hosts[0].port, 6379);
  EXPECT_EQ(s.db, 0u);
  EXPECT_EQ(s.connect_timeout_ms, store_url::default_connect_timeout_ms);
  EXPECT_EQ(s.timeout_ms, store_url::default_timeout_ms);
  s = ok("redis://qmail@redis.example.net:6380/3?timeout=100&connect_timeout=50");
  EXPECT_EQ(s.user, "qmail");
  EXPECT_EQ(s.hosts[0].host, "redis.example.net");
  EXPECT_EQ(s.hosts[0].port, 6380);
  EXPECT_EQ(s.db, 3u);
  EXPECT_EQ(s.timeout_ms, 100u);
  EXPECT_EQ(s.connect_timeout_ms, 50u);
  s = ok("redis://[2001:db8::5]:7000/1");
  EXPECT_EQ(s.hosts[0].host, "2001:db8::5");
  EXPECT_EQ(s.hosts[0].port, 7000);
  EXPECT_EQ(s.hosts[0].text(), "[2001:db8::5]:7000");
  EXPECT_EQ(store_url::describe(s), "redis://[2001:db8::5]:7000/1");
  bad("redis://a:1,b:2");
  bad("redis://host/16");
  bad("redis://host:0");
  bad("redis://host:65536");
  bad("redis://host:x");
  bad("redis:///0");
  bad("redis://ho st");
  bad("redis://host?timeout=0");
  bad("redis://host?timeout=60001");
  bad("redis://host?color=blue");
}

TEST(StoreUrl, SentinelAndCluster) {
  store_url::Spec s = ok("redis-sentinel://10.0.0.1,10.0.0.2:26380,[::1]/mymaster/2");
  EXPECT_EQ(s.kind, Kind::sentinel);
  ASSERT_EQ(s.hosts.size(), 3u);
  EXPECT_EQ(s.hosts[0].port, 26379);
  EXPECT_EQ(s.hosts[1].port, 26380);
  EXPECT_EQ(s.hosts[2].host, "::1");
  EXPECT_EQ(s.master, "mymaster");
  EXPECT_EQ(s.db, 2u);
  EXPECT_EQ(store_url::describe(s), "redis-sentinel://10.0.0.1:26379,10.0.0.2:26380,[::1]:26379/mymaster/2");
  bad("redis-sentinel://10.0.0.1");
  bad("redis-sentinel://10.0.0.1/");
  s = ok("redis-cluster://10.0.0.1:7000,10.0.0.2:7001?timeout=400");
  EXPECT_EQ(s.kind, Kind::cluster);
  EXPECT_EQ(s.hosts.size(), 2u);
  EXPECT_EQ(s.timeout_ms, 400u);
  EXPECT_EQ(store_url::describe(s), "redis-cluster://10.0.0.1:7000,10.0.0.2:7001");
  bad("redis-cluster://10.0.0.1:7000/0");
}

TEST(StoreUrl, APasswordIsRefusedAndNeverRepeated) {
  for (const char* line : {"redis://qmail:s3cret@10.0.0.5:6379/0", "redis://:s3cret@10.0.0.5",
                           "redis://10.0.0.5?password=s3cret", "redis-cluster://u:s3cret@h1,h2"}) {
    const std::string why = bad(line);
    EXPECT_EQ(why.find("s3cret"), std::string::npos) << why;
    EXPECT_NE(why.find("control/throttlestorepassword"), std::string::npos) << why;
    EXPECT_EQ(store_url::masked(line).find("s3cret"), std::string::npos) << store_url::masked(line);
  }
  EXPECT_EQ(store_url::masked("redis://qmail:s3cret@10.0.0.5:6379/0"), "redis://qmail:***@10.0.0.5:6379/0");
  EXPECT_EQ(store_url::masked("redis://10.0.0.5/0"), "redis://10.0.0.5/0");
  EXPECT_EQ(store_url::masked("redis://qmail@10.0.0.5/0"), "redis://qmail@10.0.0.5/0");
}
