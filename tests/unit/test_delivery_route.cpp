// The route record qmail-remote writes and qmail-rspawn passes on.
#include <gtest/gtest.h>

#include "delivery_route.h"

using destinations::parse_route;

TEST(DeliveryRoute, ConnectedAndGreeted) {
  auto r = parse_route("mx1.Example.NET 192.0.2.7 220");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->host, "mx1.example.net");
  ASSERT_TRUE(r->address.has_value());
  EXPECT_EQ(*r->address, *ip::parse("192.0.2.7"));
  EXPECT_EQ(r->greeting, 220);
  EXPECT_TRUE(r->connected());
  EXPECT_FALSE(r->failed());
}

TEST(DeliveryRoute, FailuresForTheBackoff) {
  auto refused = parse_route("mx1.example.net 192.0.2.7 -");
  ASSERT_TRUE(refused.has_value());
  EXPECT_FALSE(refused->connected());
  EXPECT_TRUE(refused->failed());
  auto busy = parse_route("mx1.example.net 192.0.2.7 421");
  ASSERT_TRUE(busy.has_value());
  EXPECT_TRUE(busy->connected());
  EXPECT_TRUE(busy->failed());
  EXPECT_TRUE(parse_route("m 2001:db8::25 554")->failed());
}

TEST(DeliveryRoute, UnknownFields) {
  auto r = parse_route("- 192.0.2.7 220");
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->host.empty());
  auto n = parse_route("- - -");
  ASSERT_TRUE(n.has_value());
  EXPECT_FALSE(n->address.has_value());
}

TEST(DeliveryRoute, MalformedIsRefused) {
  for (const char* bad : {"", "host", "host 192.0.2.7", "host 192.0.2.7 220 extra", "host  192.0.2.7 220",
                          "ho st 192.0.2.7 220", "host 999.0.2.7 220", "host 192.0.2.7 22",
                          "host 192.0.2.7 2200", "host 192.0.2.7 abc", "bad!host 192.0.2.7 220"})
    EXPECT_FALSE(parse_route(bad).has_value()) << bad;
}
