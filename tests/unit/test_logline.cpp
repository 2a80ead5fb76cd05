// logline: what the client sends cannot break a log line or its fields.
#include <gtest/gtest.h>

#include "logline.h"

TEST(LogLine, FieldKeepsPrintableAsciiOnly) {
  EXPECT_EQ(logline::field("alice@example.com"), "alice@example.com");
  EXPECT_EQ(logline::field("a b\tc\r\nd"), "a?b?c??d");
  EXPECT_EQ(logline::field(std::string_view("x\0y\x7f\xc3\xa9", 6)), "x?y???");
  EXPECT_EQ(logline::field(""), "-");
}

TEST(LogLine, FieldIsCut) {
  EXPECT_EQ(logline::field(std::string(1000, 'u')).size(), 255u);
  EXPECT_EQ(logline::field("abcdef", 3), "abc");
}

TEST(LogLine, TextKeepsSpacesButNotLineBreaks) {
  EXPECT_EQ(logline::text("cannot load OpenSSL: no such file\nqmail-smtpd: fake"),
            "cannot load OpenSSL: no such file?qmail-smtpd: fake");
}

TEST(LogLine, RemoteIpFromTheEnvironment) {
  setenv("TCPREMOTEIP", "192.0.2.7", 1);
  EXPECT_EQ(logline::remote_ip(), "192.0.2.7");
  unsetenv("TCPREMOTEIP");
  EXPECT_EQ(logline::remote_ip(), "unknown");
}
