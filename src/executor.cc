// Fixed pool of worker threads with per-worker OpenMP thread counts (see executor.h).
#include "src/executor.h"

#include <omp.h>

#include <utility>

namespace attn {

Executor::Executor(Options options) : options_(options) {
  threads_.reserve(options_.workers);
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { WorkerLoop(); });
}

Executor::~Executor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_or_stop_.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

void Executor::Submit(absl::AnyInvocable<void() &&> task) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(task));
  }
  work_or_stop_.notify_one();
}

size_t Executor::queue_depth() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void Executor::WorkerLoop() {
  // OpenMP's thread count is per thread: set once here, it holds for every task of this worker.
  omp_set_num_threads(options_.intra_op_threads);
  while (true) {
    absl::AnyInvocable<void() &&> task;
    {
      std::unique_lock lock(mu_);
      work_or_stop_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything submitted has run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(task)();
  }
}

}  // namespace attn
