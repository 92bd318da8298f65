// Tests of src/executor: every task runs, FIFO with one worker, the destructor drains, workers
// run concurrently, and each worker's OpenMP thread count is the configured one.
#include "src/executor.h"

#include <omp.h>

#include <atomic>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace attn {
namespace {

TEST(ExecutorTest, OneWorkerRunsTasksInOrder) {
  std::vector<int> order;
  absl::Mutex mu;
  {
    Executor executor({.workers = 1, .intra_op_threads = 1});
    for (int i = 0; i < 100; ++i) {
      executor.Submit([&, i] {
        absl::MutexLock lock(&mu);
        order.push_back(i);
      });
    }
  }  // the destructor drains the queue
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(ExecutorTest, WorkersRunConcurrently) {
  Executor executor({.workers = 2, .intra_op_threads = 1});
  absl::Notification first_started, release;
  std::atomic<bool> second_ran{false};
  executor.Submit([&] {
    first_started.Notify();
    release.WaitForNotificationWithTimeout(absl::Seconds(10));
  });
  first_started.WaitForNotification();
  absl::Notification second_done;
  executor.Submit([&] {
    second_ran = true;
    second_done.Notify();
  });
  // The second task runs while the first still blocks its worker.
  EXPECT_TRUE(second_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(second_ran);
  release.Notify();
}

TEST(ExecutorTest, TasksSeeTheConfiguredOpenMpThreadCount) {
  for (int threads : {1, 2, 3}) {
    std::atomic<int> seen{0};
    {
      Executor executor({.workers = 2, .intra_op_threads = threads});
      for (int i = 0; i < 4; ++i) {
        executor.Submit([&] { seen = omp_get_max_threads(); });
      }
    }
    EXPECT_EQ(seen, threads);
  }
}

TEST(ExecutorTest, QueueDepthCountsWaitingTasks) {
  Executor executor({.workers = 1, .intra_op_threads = 1});
  absl::Notification started, release;
  executor.Submit([&] {
    started.Notify();
    release.WaitForNotificationWithTimeout(absl::Seconds(10));
  });
  started.WaitForNotification();
  executor.Submit([] {});
  executor.Submit([] {});
  EXPECT_EQ(executor.queue_depth(), 2u);
  EXPECT_EQ(executor.workers(), 1);
  release.Notify();
}

}  // namespace
}  // namespace attn
