// control_file: lines as qmail's control.c reads them.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include <unistd.h>
#include <string>

#include "control_file.h"

TEST(ControlFile, LinesLoseTrailingSpaceAndEmptyLinesGo) {
  auto l = control_file::lines("ECDHE+AESGCM  \n\n\t\n!aNULL\r\nlast");
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[0], "ECDHE+AESGCM");
  EXPECT_EQ(l[1], "!aNULL");
  EXPECT_EQ(l[2], "last");
  EXPECT_TRUE(control_file::lines("").empty());
}

TEST(ControlFile, MissingIsNotAnError) {
  auto c = control_file::read("/nonexistent/control/me");
  EXPECT_EQ(c.status, control_file::Contents::Status::missing);
  EXPECT_EQ(control_file::first_line("/nonexistent/control/me"), "");
}

TEST(ControlFile, FirstLine) {
  char path[] = "/tmp/qt-control-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_NE(fd, -1);
  std::string text = "example.com \t\nsecond\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  EXPECT_EQ(control_file::first_line(path), "example.com");
  auto c = control_file::read(path);
  EXPECT_EQ(c.status, control_file::Contents::Status::ok);
  EXPECT_EQ(c.text, text);
  unlink(path);
}

TEST(ControlFile, UnreadableIsReported) {
  auto c = control_file::read("/proc/self/mem");  // exists, but reading it at 0 fails
  EXPECT_EQ(c.status, control_file::Contents::Status::unreadable);
  EXPECT_NE(c.error, 0);
}
