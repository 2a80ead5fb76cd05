// The packed first-in-first-out queue of held recipients.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "held_queue.h"

namespace {

using destinations::Held;
using destinations::HeldQueue;

destinations::Domain* dom(std::uintptr_t n) { return reinterpret_cast<destinations::Domain*>(n * 64); }

std::vector<std::string> drain(HeldQueue& q) {
  std::vector<std::string> out;
  while (!q.empty()) {
    Held h = q.front();
    EXPECT_EQ(h.recip.data()[h.recip.size()], '\0');
    out.push_back(std::string(h.recip) + "/" + std::to_string(h.job) + "/" + std::to_string(h.mpos));
    q.pop();
  }
  return out;
}

}  // namespace

TEST(HeldQueue, FirstInFirstOutWithEveryField) {
  HeldQueue q;
  EXPECT_TRUE(q.empty());
  ASSERT_TRUE(q.push(Held{dom(1), 7, 0, "a@x.example"}));
  ASSERT_TRUE(q.push(Held{dom(2), -1, 4000000000u, ""}));
  ASSERT_TRUE(q.push(Held{dom(1), 65536, 12, "b@y.example"}));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.front().domain, dom(1));
  EXPECT_EQ(drain(q), (std::vector<std::string>{"a@x.example/7/0", "/-1/4000000000", "b@y.example/65536/12"}));
  EXPECT_TRUE(q.empty());
}

TEST(HeldQueue, RefusesAnAddressTooLongForARecord) {
  HeldQueue q;
  std::string longest(HeldQueue::max_recip, 'a');
  std::string too_long(HeldQueue::max_recip + 1, 'a');
  EXPECT_TRUE(q.push(Held{dom(1), 1, 1, longest}));
  EXPECT_FALSE(q.push(Held{dom(1), 1, 1, too_long}));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.front().recip.size(), HeldQueue::max_recip);
}

TEST(HeldQueue, RemoveIfKeepsTheOrderOfTheRest) {
  HeldQueue q;
  for (int i = 0; i < 10; ++i) q.push(Held{dom(i % 3), i, static_cast<std::uint32_t>(i), "r" + std::to_string(i)});
  std::vector<int> taken;
  q.remove_if([](const Held& h) { return h.domain == dom(1); }, [&](const Held& h) { taken.push_back(h.job); });
  EXPECT_EQ(taken, (std::vector<int>{1, 4, 7}));
  EXPECT_EQ(q.size(), 7u);
  EXPECT_EQ(drain(q), (std::vector<std::string>{"r0/0/0", "r2/2/2", "r3/3/3", "r5/5/5", "r6/6/6", "r8/8/8",
                                                "r9/9/9"}));
}

TEST(HeldQueue, ManyRecordsStayCompact) {
  // 100,000 held recipients in one queue, half taken from the front while
  // the rest is added: the buffer is compacted and stays near the data.
  HeldQueue q;
  const std::string r = "someone.with.a.name@example.com";  // 31 bytes
  for (int i = 0; i < 100000; ++i) q.push(Held{dom(1), i, 0, r});
  for (int i = 0; i < 50000; ++i) {
    EXPECT_EQ(q.front().job, i);
    q.pop();
    q.push(Held{dom(1), 100000 + i, 0, r});
  }
  EXPECT_EQ(q.size(), 100000u);
  EXPECT_EQ(q.front().job, 50000);
  const std::size_t per_record = q.capacity_bytes() / q.size();
  EXPECT_LE(per_record, 3 * (19 + r.size() + 1) / 2) << "bytes per held recipient";
  std::size_t n = 0;
  q.for_each([&](const Held& h) { EXPECT_EQ(h.job, 50000 + static_cast<int>(n++)); });
  EXPECT_EQ(n, 100000u);
}
