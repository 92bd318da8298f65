// A fixed pool of worker threads that runs submitted tasks in FIFO order. Each worker sets its
// own OpenMP thread count to `intra_op_threads` before running anything, so oneDNN primitives
// called from a task use exactly that many threads and W workers x T threads stay within the
// cores. Thread-safe: Submit may be called from any thread. The destructor runs every task
// already submitted, then joins the workers.
#ifndef ATTNSERVE_SRC_EXECUTOR_H_
#define ATTNSERVE_SRC_EXECUTOR_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/base/thread_annotations.h"

namespace attn {

class Executor {
 public:
  struct Options {
    int workers = 1;
    int intra_op_threads = 1;
  };

  explicit Executor(Options options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Submit(absl::AnyInvocable<void() &&> task);

  int workers() const { return options_.workers; }
  int intra_op_threads() const { return options_.intra_op_threads; }
  // Tasks submitted but not yet started.
  size_t queue_depth() const;

 private:
  void WorkerLoop();

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable work_or_stop_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_EXECUTOR_H_
