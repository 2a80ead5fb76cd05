// checkpassword::run against small real programs (/bin/sh scripts).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "checkpassword.h"

namespace {

checkpassword::Outcome run_sh(const std::string& script, std::string_view user = "alice",
                              std::string_view password = "pw", unsigned timeout = 10) {
  std::vector<char*> argv{const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), const_cast<char*>(script.c_str()),
                          nullptr};
  return checkpassword::run(argv.data(), user, password, timeout);
}

}  // namespace

TEST(Checkpassword, ExitStatusDecides) {
  EXPECT_EQ(run_sh("exit 0").result, checkpassword::Result::accepted);
  EXPECT_EQ(run_sh("exit 1").result, checkpassword::Result::refused);
  EXPECT_EQ(run_sh("exit 2").result, checkpassword::Result::refused);
  auto t = run_sh("exit 111");
  EXPECT_EQ(t.result, checkpassword::Result::temporary);
  EXPECT_EQ(t.problem, "exit 111");
  t = run_sh("kill -9 $$");
  EXPECT_EQ(t.result, checkpassword::Result::temporary);
  EXPECT_EQ(t.problem, "killed by signal 9");
}

TEST(Checkpassword, CredentialsArriveOnDescriptor3) {
  // "alice" NUL "pw" NUL "" (no timestamp) NUL, then end of file
  EXPECT_EQ(run_sh("test \"$(od -An -tx1 <&3 | tr -d ' \\n')\" = 616c6963650070770000").result,
            checkpassword::Result::accepted);
  EXPECT_EQ(run_sh("test \"$(od -An -tx1 <&3 | tr -d ' \\n')\" = 616c6963650070770000", "alice", "px").result,
            checkpassword::Result::refused);
}

TEST(Checkpassword, TheClientsConnectionIsOutOfReach) {
  // descriptor 0 is /dev/null, 1 is the log (a copy of 2)
  EXPECT_EQ(run_sh("test \"$(readlink /proc/$$/fd/0)\" = /dev/null && "
                   "test \"$(readlink /proc/$$/fd/1)\" = \"$(readlink /proc/$$/fd/2)\"")
                .result,
            checkpassword::Result::accepted);
}

TEST(Checkpassword, ProgramThatCannotRunIsTemporary) {
  char* argv[] = {const_cast<char*>("/nonexistent/checkpassword"), nullptr};
  auto o = checkpassword::run(argv, "alice", "pw", 10);
  EXPECT_EQ(o.result, checkpassword::Result::temporary);
  EXPECT_NE(o.problem.find("cannot run /nonexistent/checkpassword"), std::string::npos) << o.problem;
  EXPECT_EQ(checkpassword::run(nullptr, "alice", "pw", 10).result, checkpassword::Result::temporary);
}

TEST(Checkpassword, HungProgramIsKilledAtTheTimeout) {
  auto o = run_sh("exec sleep 30", "alice", "pw", 1);
  EXPECT_EQ(o.result, checkpassword::Result::temporary);
  EXPECT_EQ(o.problem, "no answer within 1 seconds");
}

TEST(Checkpassword, TooLongForDescriptor3IsRefused) {
  EXPECT_EQ(run_sh("exit 0", std::string(300, 'u'), std::string(300, 'p')).result, checkpassword::Result::refused);
}
