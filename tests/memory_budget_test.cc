// Tests of server/memory_budget: a request larger than the whole budget is refused at once; one
// that does not fit now waits until memory is released, or until its deadline.
#include "server/memory_budget.h"

#include <thread>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attn {
namespace {

using ::testing::HasSubstr;

TEST(MemoryBudgetTest, RefusesWhatCouldNeverFit) {
  MemoryBudget budget(1000);
  const absl::Status status = budget.Acquire(1001, absl::InfiniteFuture());
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("needs about 1001 bytes of working memory, over the whole budget of 1000"));
  EXPECT_EQ(budget.in_use(), 0);
}

TEST(MemoryBudgetTest, WaitsForReleasedMemory) {
  MemoryBudget budget(1000);
  ASSERT_TRUE(budget.Acquire(600, absl::InfiniteFuture()).ok());
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(50));
    budget.Release(600);
  });
  EXPECT_TRUE(budget.Acquire(600, absl::Now() + absl::Seconds(30)).ok());
  releaser.join();
  EXPECT_EQ(budget.in_use(), 600);
}

TEST(MemoryBudgetTest, GivesUpAtTheDeadline) {
  MemoryBudget budget(1000);
  ASSERT_TRUE(budget.Acquire(600, absl::InfiniteFuture()).ok());
  const absl::Status status = budget.Acquire(600, absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(status.message()), HasSubstr("600 of 1000 in use"));
  EXPECT_EQ(budget.in_use(), 600);
}

TEST(MemoryBudgetTest, ZeroMeansUnlimited) {
  MemoryBudget budget(0);
  EXPECT_TRUE(budget.Acquire(int64_t{1} << 60, absl::InfinitePast()).ok());
}

}  // namespace
}  // namespace attn
