// Fixed pool of worker threads setting each task's OpenMP thread count (see executor.h).
#include "src/runtime/executor.h"

#include <omp.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace attn {
namespace {

// What the task this worker thread runs holds while it computes: the executor's threads.
struct Computing {
  const Executor* executor = nullptr;  // none once the task has finished computing
  int threads = 0;
};
thread_local Computing computing;

}  // namespace

absl::StatusOr<Executor::Options> Executor::OptionsFromFlags(int workers, int intra_op_threads,
                                                            bool share_threads) {
  for (const auto& [flag, value] :
       {std::pair{"--intra_op_threads", intra_op_threads}, std::pair{"--workers", workers}}) {
    if (value < 0) {
      return absl::InvalidArgumentError(absl::StrCat(flag, " = ", value, "; must be >= 0"));
    }
  }
  Options options{
      .workers = workers, .intra_op_threads = intra_op_threads, .share_threads = share_threads};
  if (options.intra_op_threads == 0) options.intra_op_threads = Cores();
  if (options.workers == 0) options.workers = options.intra_op_threads;
  return options;
}

int Executor::Cores() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

Executor::Executor(Options options)
    : options_(options), wake_(options.workers), free_threads_(options.intra_op_threads) {
  threads_.reserve(options_.workers);
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this, i] { WorkerLoop(i); });
}

Executor::~Executor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  for (std::condition_variable& wake : wake_) wake.notify_all();
  for (std::thread& thread : threads_) thread.join();
}

void Executor::Submit(absl::AnyInvocable<void() &&> task) {
  std::lock_guard lock(mu_);
  queue_.push_back(std::move(task));
  if (CanStartTask()) WakeIdleWorker();
}

void Executor::WakeIdleWorker() {
  if (idle_.empty()) return;
  wake_[idle_.back()].notify_one();
  idle_.pop_back();
}

void Executor::FinishedComputing() {
  if (computing.executor != this) return;
  computing.executor = nullptr;
  std::lock_guard lock(mu_);
  --running_;
  free_threads_ += computing.threads;
  if (CanStartTask()) WakeIdleWorker();  // shared: a task waiting for threads may start now
}

size_t Executor::queue_depth() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

bool Executor::CanStartTask() const {
  return !queue_.empty() && (!options_.share_threads || free_threads_ > 0);
}

int Executor::ThreadsForNextTask() const {
  if (!options_.share_threads) return options_.intra_op_threads;
  const int sharing = std::min<int64_t>(options_.workers, running_ + std::ssize(queue_));
  const int share = std::max(1, options_.intra_op_threads / std::max(1, sharing));
  return std::min(share, free_threads_);
}

void Executor::WorkerLoop(int worker) {
  int threads = options_.intra_op_threads;
  // OpenMP's thread count is per thread: set here, it holds for this worker's next tasks.
  omp_set_num_threads(threads);
  while (true) {
    absl::AnyInvocable<void() &&> task;
    {
      std::unique_lock lock(mu_);
      while (!(stopping_ && queue_.empty()) && !CanStartTask()) {
        idle_.push_back(worker);
        wake_[worker].wait(lock);
        std::erase(idle_, worker);  // still listed after a spurious wake-up
      }
      if (queue_.empty()) return;  // stopping, and everything submitted has run
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
      computing = {.executor = this, .threads = ThreadsForNextTask()};
      free_threads_ -= computing.threads;
      if (CanStartTask()) WakeIdleWorker();  // threads left for the next task too
    }
    if (computing.threads != threads) omp_set_num_threads(threads = computing.threads);
    std::move(task)();
    FinishedComputing();  // if the task did not say so itself
  }
}

}  // namespace attn
