// Tests of src/executor: every task runs, FIFO with one worker, the destructor drains, workers
// run concurrently, and each worker's OpenMP thread count is the configured one.
#include "src/executor.h"

#include <omp.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <vector>

#include "gtest/gtest.h"

namespace attn {
namespace {

TEST(ExecutorTest, OneWorkerRunsTasksInOrder) {
  std::vector<int> order;
  std::mutex mu;
  {
    Executor executor({.workers = 1, .intra_op_threads = 1});
    for (int i = 0; i < 100; ++i) {
      executor.Submit([&, i] {
        std::lock_guard lock(mu);
        order.push_back(i);
      });
    }
  }  // the destructor drains the queue
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(ExecutorTest, WorkersRunConcurrently) {
  // Declared before the executor, so they outlive its workers.
  std::promise<void> first_started, release, second_done;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> second_ran{false};
  Executor executor({.workers = 2, .intra_op_threads = 1});
  executor.Submit([&] {
    first_started.set_value();
    released.wait_for(std::chrono::seconds(10));
  });
  first_started.get_future().wait();
  executor.Submit([&] {
    second_ran = true;
    second_done.set_value();
  });
  // The second task runs while the first still blocks its worker.
  EXPECT_EQ(second_done.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  EXPECT_TRUE(second_ran);
  release.set_value();
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
  std::promise<void> started, release;  // outlive the executor's worker
  std::shared_future<void> released = release.get_future().share();
  Executor executor({.workers = 1, .intra_op_threads = 1});
  executor.Submit([&] {
    started.set_value();
    released.wait_for(std::chrono::seconds(10));
  });
  started.get_future().wait();
  executor.Submit([] {});
  executor.Submit([] {});
  EXPECT_EQ(executor.queue_depth(), 2u);
  EXPECT_EQ(executor.workers(), 1);
  release.set_value();
}

}  // namespace
}  // namespace attn
