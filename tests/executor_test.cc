// Tests of src/executor: every task runs, FIFO with one worker, the destructor drains, workers
// run concurrently, each worker's OpenMP thread count is the configured one, and shared threads
// go whole to a lone task, make later tasks wait while it holds them all, and are divided
// between tasks starting together; and the options attnserve's thread flags resolve to.
#include "src/runtime/executor.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
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

// Runs `task` on `executor` and waits for it (and for its worker to stop counting it).
void RunAndWait(Executor& executor, absl::AnyInvocable<void()> task) {
  std::promise<void> done;
  executor.Submit([&] {
    task();
    executor.FinishedComputing();
    done.set_value();
  });
  done.get_future().wait();
}

TEST(ExecutorTest, SharedThreadsGoWholeToALoneTask) {
  Executor executor({.workers = 2, .intra_op_threads = 4, .share_threads = true});
  for (int i = 0; i < 4; ++i) {
    int seen = 0;
    RunAndWait(executor, [&] { seen = omp_get_max_threads(); });
    EXPECT_EQ(seen, 4) << "task " << i;
  }
}

TEST(ExecutorTest, SharedThreadsAreDividedBetweenTasksStartingTogether) {
  // Outlive the executor's workers.
  std::promise<void> first_started, release, second_done, third_started;
  std::shared_future<void> released = release.get_future().share();
  std::shared_future<void> third_running = third_started.get_future().share();
  std::atomic<int> first_threads{0}, second_threads{0}, third_threads{0};
  Executor executor({.workers = 3, .intra_op_threads = 4, .share_threads = true});
  executor.Submit([&] {
    first_threads = omp_get_max_threads();
    first_started.set_value();
    released.wait_for(std::chrono::seconds(10));
  });
  first_started.get_future().wait();
  // The first holds every thread: these two wait for it, then start together.
  executor.Submit([&] {
    second_threads = omp_get_max_threads();
    third_running.wait_for(std::chrono::seconds(10));
    second_done.set_value();
  });
  executor.Submit([&] {
    third_threads = omp_get_max_threads();
    third_started.set_value();
  });
  EXPECT_EQ(third_running.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  release.set_value();
  EXPECT_EQ(third_running.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(second_done.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  EXPECT_EQ(first_threads, 4);   // alone: all of them
  EXPECT_EQ(second_threads, 2);  // two computing together: half each
  EXPECT_EQ(third_threads, 2);
}

TEST(ExecutorTest, ATaskThatFinishedComputingHoldsNoThreads) {
  std::promise<void> first_computed, release, second_done;  // outlive the executor's workers
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> second_threads{0};
  Executor executor({.workers = 2, .intra_op_threads = 4, .share_threads = true});
  executor.FinishedComputing();  // not on a worker: no effect
  executor.Submit([&] {
    executor.FinishedComputing();
    executor.FinishedComputing();  // again: no effect
    first_computed.set_value();
    released.wait_for(std::chrono::seconds(10));  // answering its caller, say
  });
  first_computed.get_future().wait();
  executor.Submit([&] {
    second_threads = omp_get_max_threads();
    second_done.set_value();
  });
  ASSERT_EQ(second_done.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  release.set_value();
  EXPECT_EQ(second_threads, 4);
}

TEST(ExecutorTest, SharedThreadsOfOneWorkerGoWholeToEachTask) {
  // Waiting tasks do not compute, so they take no share.
  std::promise<void> started, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> last_threads{0};
  Executor executor({.workers = 1, .intra_op_threads = 3, .share_threads = true});
  executor.Submit([&] {
    started.set_value();
    released.wait_for(std::chrono::seconds(10));
  });
  started.get_future().wait();
  for (int i = 0; i < 3; ++i) executor.Submit([&] { last_threads = omp_get_max_threads(); });
  release.set_value();
  RunAndWait(executor, [] {});
  EXPECT_EQ(last_threads, 3);
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

TEST(ExecutorOptionsTest, ZeroFlagsMeanTheCoresAndOneWorkerPerThread) {
  EXPECT_EQ(Executor::Cores(), static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const Executor::Options options = Executor::OptionsFromFlags(0, 0, true).value();
  EXPECT_EQ(options.intra_op_threads, Executor::Cores());
  EXPECT_EQ(options.workers, Executor::Cores());
  EXPECT_TRUE(options.share_threads);

  const Executor::Options fixed = Executor::OptionsFromFlags(0, 3, false).value();
  EXPECT_EQ(fixed.intra_op_threads, 3);
  EXPECT_EQ(fixed.workers, 3);
  EXPECT_FALSE(fixed.share_threads);

  const Executor::Options given = Executor::OptionsFromFlags(5, 2, false).value();
  EXPECT_EQ(given.workers, 5);
  EXPECT_EQ(given.intra_op_threads, 2);
}

TEST(ExecutorOptionsTest, NegativeFlagsAreRefusedByName) {
  const absl::Status threads = Executor::OptionsFromFlags(1, -2, false).status();
  EXPECT_EQ(threads.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(threads.message(), "--intra_op_threads = -2; must be >= 0");
  const absl::Status workers = Executor::OptionsFromFlags(-1, 2, false).status();
  EXPECT_EQ(workers.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(workers.message(), "--workers = -1; must be >= 0");
}

}  // namespace
}  // namespace attn
