// Delivery numbers between qmail-send and the spawns: two bytes, low byte
// first, decoded unsigned (delnum.c of patch 0010, taken from the prepared
// tree and linked as qmail links it).
#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "delnum.h"

namespace {

std::array<unsigned char, DELNUM_LEN> encode(unsigned int n) {
  char s[DELNUM_LEN] = {};
  delnum_put(s, n);
  return {static_cast<unsigned char>(s[0]), static_cast<unsigned char>(s[1])};
}

unsigned int roundtrip(unsigned int n) {
  char s[DELNUM_LEN] = {};
  delnum_put(s, n);
  return delnum_get(s);
}

}  // namespace

TEST(Delnum, TwoBytesOnTheWire) {
  static_assert(DELNUM_LEN == 2);
  // delnum_put writes exactly DELNUM_LEN bytes: the ones around are untouched
  char s[DELNUM_LEN + 2];
  std::memset(s, 0x5a, sizeof s);
  delnum_put(s + 1, 0xffff);
  EXPECT_EQ(s[0], 0x5a);
  EXPECT_EQ(static_cast<unsigned char>(s[1]), 0xffu);
  EXPECT_EQ(static_cast<unsigned char>(s[2]), 0xffu);
  EXPECT_EQ(s[3], 0x5a);
  // and delnum_get reads exactly DELNUM_LEN: what follows does not count
  const char t[DELNUM_LEN + 2] = {1, 0, 0x7f, 0x7f};
  EXPECT_EQ(delnum_get(t), 1u);
}

TEST(Delnum, RoundTripsAtTheEdges) {
  for (unsigned int n : {0u, 1u, 255u, 256u, 32767u, 32768u, 65534u,
                         DELNUM_SPAWNMAX - 1u, 65535u})
    EXPECT_EQ(roundtrip(n), n) << n;
}

TEST(Delnum, RoundTripsEveryNumber) {
  for (unsigned int n = 0; n <= 65535; ++n) ASSERT_EQ(roundtrip(n), n);
}

TEST(Delnum, LowByteFirst) {
  using B = std::array<unsigned char, DELNUM_LEN>;
  EXPECT_EQ(encode(0), (B{0x00, 0x00}));
  EXPECT_EQ(encode(1), (B{0x01, 0x00}));
  EXPECT_EQ(encode(255), (B{0xff, 0x00}));
  EXPECT_EQ(encode(256), (B{0x00, 0x01}));
  EXPECT_EQ(encode(32767), (B{0xff, 0x7f}));
  EXPECT_EQ(encode(32768), (B{0x00, 0x80}));
  EXPECT_EQ(encode(65534), (B{0xfe, 0xff}));
  EXPECT_EQ(encode(DELNUM_SPAWNMAX - 1), (B{0xe7, 0xfd}));
}

TEST(Delnum, HighBitIsNotSignExtended) {
  // The classic big-concurrency patch read the high byte through a plain
  // char: 0x80 became -128 and delivery 32768 came out as -32768.
  const char s[DELNUM_LEN] = {0, static_cast<char>(0x80)};
  EXPECT_EQ(delnum_get(s), 32768u);
  const char t[DELNUM_LEN] = {static_cast<char>(0xff), static_cast<char>(0xff)};
  EXPECT_EQ(delnum_get(t), 65535u);
  const char u[DELNUM_LEN] = {static_cast<char>(0x80), 0};
  EXPECT_EQ(delnum_get(u), 128u);
}

TEST(Delnum, KeepsOnlyTheLow16Bits) {
  EXPECT_EQ(roundtrip(65536), 0u);
  EXPECT_EQ(roundtrip(65536 + 7), 7u);
}

TEST(Delnum, LargestSpawnFitsWithRoomToSpare) {
  static_assert(DELNUM_SPAWNMAX <= 65535);
  EXPECT_EQ(roundtrip(DELNUM_SPAWNMAX), static_cast<unsigned int>(DELNUM_SPAWNMAX));
}
