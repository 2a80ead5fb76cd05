// helpers.h: the shared clock, ASCII case, decimals, periods and client prefix.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "helpers.h"

TEST(Helpers, MonotonicMsDoesNotGoBack) {
  const std::uint64_t a = helpers::monotonic_ms();
  const std::uint64_t b = helpers::monotonic_ms();
  EXPECT_GE(b, a);
  EXPECT_GT(a, 0u);
}

TEST(Helpers, LowerIsAsciiOnly) {
  EXPECT_EQ(helpers::lower('A'), 'a');
  EXPECT_EQ(helpers::lower('Z'), 'z');
  EXPECT_EQ(helpers::lower('@'), '@');
  EXPECT_EQ(helpers::lower('['), '[');
  EXPECT_EQ(helpers::lower('\xc4'), '\xc4');  // a byte of UTF-8 stays as it is, whatever the locale
  EXPECT_EQ(helpers::lowered("Alice@Example.COM"), "alice@example.com");
  std::string s = "MiXeD-1";
  helpers::lower_in_place(s);
  EXPECT_EQ(s, "mixed-1");
}

TEST(Helpers, ParseUnsignedIsDigitsOnly) {
  EXPECT_EQ(helpers::parse_u32("0"), 0u);
  EXPECT_EQ(helpers::parse_u32("64"), 64u);
  EXPECT_EQ(helpers::parse_u32("4294967295"), 4294967295u);
  EXPECT_EQ(helpers::parse_u32("0000000064"), 64u);  // ten digits: fine
  for (const char* bad : {"", "4294967296", "99999999999", "-1", "+1", " 1", "1 ", "2G", "0x10", "1e3", "1.0", "\t1"})
    EXPECT_FALSE(helpers::parse_u32(bad)) << bad;
  // from_chars would take eleven digits with leading zeros; the text
  // parsers before it did not, and still do not
  EXPECT_FALSE(helpers::parse_u32("00000000001"));
  EXPECT_FALSE(helpers::parse_u32(std::string_view("1\0", 2)));
  EXPECT_EQ(helpers::parse_unsigned<std::uint64_t>("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(helpers::parse_unsigned<std::uint64_t>("18446744073709551616"));
  EXPECT_EQ(helpers::parse_unsigned<std::uint8_t>("255"), 255u);
  EXPECT_FALSE(helpers::parse_unsigned<std::uint8_t>("256"));
}

TEST(Helpers, PutDecimal) {
  char buf[helpers::max_digits];
  EXPECT_EQ(std::string(buf, helpers::put_decimal(buf, 0u)), "0");
  EXPECT_EQ(std::string(buf, helpers::put_decimal(buf, std::uint32_t{4294967295u})), "4294967295");
  EXPECT_EQ(std::string(buf, helpers::put_decimal(buf, UINT64_MAX)), "18446744073709551615");
  EXPECT_EQ(std::string(buf, helpers::put_decimal(buf, std::uint8_t{7})), "7");
}

TEST(Helpers, PeriodsInTheLargestExactUnit) {
  EXPECT_EQ(helpers::period_text(30), "30s");
  EXPECT_EQ(helpers::period_text(90), "90s");
  EXPECT_EQ(helpers::period_text(600), "10m");
  EXPECT_EQ(helpers::period_text(3600), "1h");
  EXPECT_EQ(helpers::period_text(86400), "1d");
  EXPECT_EQ(helpers::period_text(1209600), "2w");
  EXPECT_EQ(helpers::period_text(0), "0s");
  EXPECT_EQ(helpers::period_text(4294967295u), "4294967295s");
  char buf[16];
  EXPECT_EQ(helpers::format_period(7200, buf), 2u);
}

TEST(Helpers, ClientPrefix) {
  EXPECT_EQ(helpers::client_prefix(true), 32u);
  EXPECT_EQ(helpers::client_prefix(false), 64u);
}

TEST(Helpers, IequalsFoldsAsciiCaseOnly) {
  EXPECT_TRUE(helpers::iequals("AUTH", "auth"));
  EXPECT_TRUE(helpers::iequals("Plain", "pLAIN"));
  EXPECT_TRUE(helpers::iequals("", ""));
  EXPECT_FALSE(helpers::iequals("auth", "auth "));
  EXPECT_FALSE(helpers::iequals("[", "{"));  // '[' + 32 is '{': not the same letter
  EXPECT_FALSE(helpers::iequals("\xc4", "\xe4"));
}
