// ip_address: strict parsing, IPv4-mapped IPv6 as IPv4, RFC 5952 text.
#include <gtest/gtest.h>

#include <string>

#include <arpa/inet.h>

#include "ip_address.h"

namespace {

std::string text(const ip::Address& a) {
  char buf[ip::text_max];
  return std::string(buf, ip::format(a, buf));
}

std::string text(const ip::Network& n) {
  char buf[ip::text_max];
  return std::string(buf, ip::format(n, buf));
}

std::string roundtrip(const char* s) {
  auto a = ip::parse(s);
  return a ? text(*a) : "(invalid)";
}

}  // namespace

TEST(IpAddress, ParsesIPv4) {
  auto a = ip::parse("192.0.2.7");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family, ip::Family::v4);
  EXPECT_EQ(a->bytes[0], 192);
  EXPECT_EQ(a->bytes[3], 7);
  EXPECT_EQ(a->bits(), 32u);
  EXPECT_EQ(roundtrip("0.0.0.0"), "0.0.0.0");
  EXPECT_EQ(roundtrip("255.255.255.255"), "255.255.255.255");
}

TEST(IpAddress, RejectsBadIPv4) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4 ", " 1.2.3.4", "01.2.3.4", "1.2.3.04",
                          "1..2.3", "1.2.3.", "a.b.c.d", "1.2.3.4/24", "1.2.3.-4", "1234.1.1.1", "1.2.3.4%eth0"}) {
    EXPECT_FALSE(ip::parse(bad)) << bad;
  }
}

TEST(IpAddress, ParsesIPv6Forms) {
  EXPECT_EQ(roundtrip("2001:db8::7"), "2001:db8::7");
  EXPECT_EQ(roundtrip("2001:DB8:0:0:0:0:0:7"), "2001:db8::7");
  EXPECT_EQ(roundtrip("::"), "::");
  EXPECT_EQ(roundtrip("::1"), "::1");
  EXPECT_EQ(roundtrip("1::"), "1::");
  EXPECT_EQ(roundtrip("1:2:3:4:5:6:7:8"), "1:2:3:4:5:6:7:8");
  EXPECT_EQ(roundtrip("1:2:3:4:5:6:7::"), "1:2:3:4:5:6:7:0");
  EXPECT_EQ(roundtrip("::2:3:4:5:6:7:8"), "0:2:3:4:5:6:7:8");
  EXPECT_EQ(roundtrip("2001:0db8:0000:0000:0001:0000:0000:0001"), "2001:db8::1:0:0:1");  // first longest run
  EXPECT_EQ(roundtrip("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");                  // one zero group stays
  EXPECT_EQ(roundtrip("2001:db8:0:0:1:0:0:0"), "2001:db8:0:0:1::");                      // longer run wins
  EXPECT_EQ(roundtrip("64:ff9b::192.0.2.33"), "64:ff9b::c000:221");                      // embedded IPv4
  EXPECT_EQ(roundtrip("::192.0.2.33"), "::c000:221");                                    // compatible, not mapped
}

TEST(IpAddress, RejectsBadIPv6) {
  for (const char* bad : {":", ":::", "1:::2", "1::2::3", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:", "1:2:3:4:5:6:7:8:9",
                          "1:2:3:4:5:6:7:8::", "12345::", "g::1", "::1%eth0", "1:2:3:4:5:6:7:1.2.3.4",
                          "::1.2.3", "1.2.3.4::", "::ffff:1.2.3.256", "[::1]"}) {
    EXPECT_FALSE(ip::parse(bad)) << bad;
  }
}

TEST(IpAddress, MappedIPv6IsIPv4) {
  auto a = ip::parse("::ffff:192.0.2.7");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family, ip::Family::v4);
  EXPECT_EQ(*a, *ip::parse("192.0.2.7"));
  EXPECT_EQ(text(*ip::parse("::FFFF:c000:0207")), "192.0.2.7");
  EXPECT_EQ(text(*ip::parse("0:0:0:0:0:ffff:192.0.2.7")), "192.0.2.7");
  // ::fffe: is not mapped
  EXPECT_EQ(ip::parse("::fffe:192.0.2.7")->family, ip::Family::v6);
}

TEST(IpAddress, ParsesNetworks) {
  auto n = ip::parse_network("192.0.2.0/24");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->prefix, 24u);
  EXPECT_EQ(text(*n), "192.0.2.0/24");
  EXPECT_EQ(ip::parse_network("192.0.2.7")->prefix, 32u);
  EXPECT_EQ(ip::parse_network("2001:db8::")->prefix, 128u);
  EXPECT_EQ(text(*ip::parse_network("2001:DB8::/32")), "2001:db8::/32");
  EXPECT_EQ(text(*ip::parse_network("0.0.0.0/0")), "0.0.0.0/0");
  // host bits are kept, and reported
  auto h = ip::parse_network("192.0.2.7/24");
  ASSERT_TRUE(h);
  EXPECT_FALSE(ip::host_bits_clear(*h));
  EXPECT_TRUE(ip::host_bits_clear(*n));
  for (const char* bad : {"192.0.2.0/33", "192.0.2.0/", "192.0.2.0/024", "192.0.2.0/a", "2001:db8::/129",
                          "/24", "192.0.2.0/24/1", "192.0.2.0/-1"}) {
    EXPECT_FALSE(ip::parse_network(bad)) << bad;
  }
}

TEST(IpAddress, MappedNetworkIsIPv4Network) {
  auto n = ip::parse_network("::ffff:192.0.2.0/120");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->address.family, ip::Family::v4);
  EXPECT_EQ(n->prefix, 24u);
  EXPECT_EQ(text(*n), "192.0.2.0/24");
  // shorter than /96 covers more than IPv4: stays IPv6
  EXPECT_EQ(ip::parse_network("::ffff:0:0/95")->address.family, ip::Family::v6);
}

TEST(IpAddress, MasksAndContains) {
  auto a = *ip::parse("192.0.2.255");
  EXPECT_EQ(text(ip::masked(a, 24)), "192.0.2.0");
  EXPECT_EQ(text(ip::masked(a, 25)), "192.0.2.128");
  EXPECT_EQ(text(ip::masked(a, 0)), "0.0.0.0");
  EXPECT_EQ(text(ip::masked(a, 32)), "192.0.2.255");
  auto b = *ip::parse("2001:db8:1:2:3:4:5:6");
  EXPECT_EQ(text(ip::masked(b, 64)), "2001:db8:1:2::");
  EXPECT_EQ(text(ip::masked(b, 33)), "2001:db8::");
  EXPECT_EQ(text(ip::masked(b, 47)), "2001:db8::");
  EXPECT_EQ(text(ip::masked(b, 48)), "2001:db8:1::");

  auto net = *ip::parse_network("192.0.2.0/24");
  EXPECT_TRUE(ip::contains(net, *ip::parse("192.0.2.7")));
  EXPECT_TRUE(ip::contains(net, *ip::parse("::ffff:192.0.2.7")));
  EXPECT_FALSE(ip::contains(net, *ip::parse("192.0.3.7")));
  EXPECT_FALSE(ip::contains(net, *ip::parse("2001:db8::")));
  EXPECT_TRUE(ip::contains(*ip::parse_network("::/0"), b));
  EXPECT_FALSE(ip::contains(*ip::parse_network("::/0"), a));  // families never mix
}

TEST(IpAddress, FormatFitsTextMax) {
  auto a = *ip::parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
  char buf[ip::text_max];
  std::size_t n = ip::format(ip::Network{a, 128}, buf);
  EXPECT_EQ(std::string(buf, n), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128");
  EXPECT_LT(n, ip::text_max);
}

// Parsing is inet_pton's, given text that is a C string of at most 45
// bytes: a NUL inside must not cut the text short.
TEST(IpAddress, TextWithANulIsNotAnAddress) {
  EXPECT_FALSE(ip::parse(std::string_view("192.0.2.7\0junk", 14)));
  EXPECT_FALSE(ip::parse(std::string_view("2001:db8::7\0", 12)));
  EXPECT_FALSE(ip::parse_network(std::string_view("192.0.2.0\0/24", 13)));
  EXPECT_EQ(roundtrip("0000:0000:0000:0000:0000:ffff:255.255.255.255"), "255.255.255.255");  // 45 bytes
  EXPECT_FALSE(ip::parse("0000:0000:0000:0000:0000:0ffff:255.255.255.255"));
}

// The difference from inet_ntop that matters: glibc writes an
// IPv4-compatible or -mapped IPv6 address with a dotted quad, format()
// keeps hex groups, so the text of an address - a store key, a log field -
// is one form and does not depend on the C library.
TEST(IpAddress, FormatIsNotInetNtop) {
  auto a = ip::parse("::192.0.2.33");
  ASSERT_TRUE(a);
  char ntop[64];
  ASSERT_NE(inet_ntop(AF_INET6, a->bytes, ntop, sizeof ntop), nullptr);
  EXPECT_EQ(std::string(ntop), "::192.0.2.33");
  EXPECT_EQ(text(*a), "::c000:221");
  auto n = ip::parse_network("::ffff:0.0.0.0/80");  // a mapped block too wide to be IPv4
  ASSERT_TRUE(n);
  EXPECT_EQ(text(*n), "::ffff:0:0/80");
  // elsewhere they agree
  for (const char* s : {"2001:db8::1:0:0:1", "::1", "::", "1:2:3:4:5:6:7:8", "2001:db8:0:0:1::", "fe80::1"}) {
    auto b = ip::parse(s);
    ASSERT_TRUE(b) << s;
    ASSERT_NE(inet_ntop(AF_INET6, b->bytes, ntop, sizeof ntop), nullptr);
    EXPECT_EQ(text(*b), std::string(ntop)) << s;
  }
}
