// throttle_controls: control/throttlestoresize and control/tarpitbudget,
// read one way for qmail-smtpd and qmail-showctl.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session_throttle.h"
#include "throttle_controls.h"

namespace tc = throttle_controls;
using Status = tc::Reading::Status;

TEST(ThrottleControls, ValidNumbersApply) {
  tc::Reading r = tc::judge(tc::store_size, "64");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.value, 64u);
  EXPECT_EQ(tc::judge(tc::store_size, "1048576").value, 1048576u);
  EXPECT_EQ(tc::judge(tc::tarpit_budget, "0").status, Status::ok);
}

TEST(ThrottleControls, EmptyIsTheDefaultSilently) {
  tc::Reading r = tc::judge(tc::store_size, "");
  EXPECT_EQ(r.status, Status::absent);
  EXPECT_EQ(r.value, 1024u);
  EXPECT_EQ(tc::judge(tc::tarpit_budget, "").value, 20u);
}

TEST(ThrottleControls, WhatQmailScanUlongWouldReadIsInvalid) {
  // scan_ulong reads "2G" as 2: qmail-showctl said 2 MiB while qmail-smtpd used 1024
  tc::Reading r = tc::judge(tc::store_size, "2G");
  EXPECT_EQ(r.status, Status::invalid);
  EXPECT_EQ(r.value, 1024u);
  EXPECT_EQ(r.problem, "'2G' is not a whole number from 1 to 1048576");
  EXPECT_EQ(tc::log_line(tc::store_size, r),
            "throttle: control/throttlestoresize: '2G' is not a whole number from 1 to 1048576: using the default, 1024");
  for (const char* bad : {"0", "1048577", "-1", " 64", "64k", "4294967296", "1.5"}) {
    tc::Reading b = tc::judge(tc::store_size, bad);
    EXPECT_EQ(b.status, Status::invalid) << bad;
    EXPECT_EQ(b.value, 1024u) << bad;
  }
  EXPECT_EQ(tc::judge(tc::tarpit_budget, "1000001").value, 20u);
  // what cannot be shown as it is, is not
  EXPECT_EQ(tc::judge(tc::tarpit_budget, "\x1b[2J").problem, "'?[2J' is not a whole number from 0 to 1000000");
}

namespace {

// A QMAIL_HOME of its own with control/, the working directory while it lives.
class Home {
 public:
  Home() {
    char tmpl[] = "/tmp/qt-controls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    old_ = getcwd(nullptr, 0);
    mkdir((dir_ + "/control").c_str(), 0755);
    EXPECT_EQ(chdir(dir_.c_str()), 0);
  }
  ~Home() {
    EXPECT_EQ(chdir(old_), 0);
    std::free(old_);
    std::system(("rm -rf " + dir_).c_str());
  }
  void write(const char* name, const std::string& text) {
    int fd = open((dir_ + "/control/" + name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_NE(fd, -1);
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
  }

 private:
  std::string dir_;
  char* old_ = nullptr;
};

}  // namespace

TEST(ThrottleControls, ReadTakesTheFirstLineWithoutTrailingBlanks) {
  Home home;
  EXPECT_EQ(tc::read(tc::store_size, "control/throttlestoresize").status, Status::absent);
  home.write("throttlestoresize", "64 \t\r\nignored\n");
  tc::Reading r = tc::read(tc::store_size, "control/throttlestoresize");
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.value, 64u);
}

TEST(ThrottleControls, QmailSmtpdConfigLogsAnInvalidSizeAndUsesTheDefault) {
  Home home;
  home.write("throttlestoresize", "2G\n");
  std::vector<std::string> lines;
  throttle::Config c = throttle::config_from_qmail([&](const std::string& l) { lines.push_back(l); });
  EXPECT_EQ(c.store.map_size, std::size_t{1024} << 20);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "throttle: control/throttlestoresize: '2G' is not a whole number from 1 to 1048576: using the default, 1024");

  home.write("throttlestoresize", "64\n");
  lines.clear();
  c = throttle::config_from_qmail([&](const std::string& l) { lines.push_back(l); });
  EXPECT_EQ(c.store.map_size, std::size_t{64} << 20);
  EXPECT_TRUE(lines.empty());
}

TEST(ThrottleControls, ShowctlSaysTheSame) {
  Home home;
  ASSERT_EQ(chdir("control"), 0);  // qmail-showctl runs in the control directory
  static std::vector<std::string> said;
  auto out = [](const char* line) { said.emplace_back(line); };
  said.clear();
  EXPECT_EQ(showctl_throttle_number("throttlestoresize", out), 0);
  home.write("throttlestoresize", "2G\n");
  EXPECT_EQ(showctl_throttle_number("throttlestoresize", out), -1);
  home.write("tarpitbudget", "5\n");
  EXPECT_EQ(showctl_throttle_number("tarpitbudget", out), 1);
  EXPECT_EQ(showctl_throttle_number("concurrencyremote", out), -2);
  ASSERT_EQ(said.size(), 3u);
  EXPECT_EQ(said[0], "(Default.) The throttle store holds at most 1024 MiB.");
  EXPECT_EQ(said[1], "Oops! '2G' is not a whole number from 1 to 1048576: qmail-smtpd uses the default. "
                     "The throttle store holds at most 1024 MiB.");
  EXPECT_EQ(said[2], "At most 5 sessions are held by the teergrube at once.");
  ASSERT_EQ(chdir(".."), 0);
}
