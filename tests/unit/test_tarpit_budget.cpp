// The global budget of delayed sessions: slots that die with their process.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store_test_util.h"
#include "tarpit_budget.h"

// Three processes hold the three slots: a fourth finds the budget spent.
// A killed holder frees its slot at once, and once all are killed, three
// new processes get a slot each.
TEST(TarpitBudget, SlotsAreCountedAcrossProcessesAndFreedByAKill) {
  store_test::TempDir d;
  const std::string path = d.path() + "/tarpit.slots";
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  // Three processes that each take a slot and hold it; EXPECTs every one got it.
  auto hold_three = [&](pid_t (&holders)[3]) {
    for (pid_t& h : holders) {
      h = fork();
      ASSERT_GE(h, 0);
      if (h == 0) {
        tarpit::Slot s;
        char c = s.acquire(path, 3) == tarpit::Slot::Outcome::held ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1) _exit(1);
        pause();
        _exit(0);
      }
    }
    for (int i = 0; i < 3; ++i) {
      char c = 0;
      ASSERT_EQ(read(ready[0], &c, 1), 1);
      EXPECT_EQ(c, 'y');
    }
  };
  pid_t holders[3];
  hold_three(holders);
  tarpit::Slot mine;
  EXPECT_EQ(mine.acquire(path, 3), tarpit::Slot::Outcome::spent);
  kill(holders[1], SIGKILL);  // a killed holder frees its slot at once
  waitpid(holders[1], nullptr, 0);
  EXPECT_EQ(mine.acquire(path, 3), tarpit::Slot::Outcome::held);
  EXPECT_LT(mine.index(), 3u);
  mine.release();
  for (pid_t h : {holders[0], holders[2]}) {
    kill(h, SIGKILL);
    waitpid(h, nullptr, 0);
  }
  hold_three(holders);  // every slot is free again
  for (pid_t h : holders) {
    kill(h, SIGKILL);
    waitpid(h, nullptr, 0);
  }
  close(ready[0]);
  close(ready[1]);
}

TEST(TarpitBudget, ZeroBudgetHoldsNobodyAndAMissingDirectoryIsAFault) {
  store_test::TempDir d;
  tarpit::Slot s;
  EXPECT_EQ(s.acquire(d.path() + "/tarpit.slots", 0), tarpit::Slot::Outcome::spent);
  EXPECT_EQ(s.acquire(d.path() + "/missing/tarpit.slots", 5), tarpit::Slot::Outcome::fault);
  EXPECT_NE(s.error(), 0);
  EXPECT_FALSE(s.held());
}
