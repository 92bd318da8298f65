// A fixed pool of worker threads that runs submitted tasks in FIFO order. Before each task a
// worker sets its own OpenMP thread count, so oneDNN primitives and the engine's parallel loops
// called from the task use exactly that many threads: `intra_op_threads`, or with
// `share_threads` the task's share of them: intra_op_threads / (tasks computing or waiting, at
// most `workers`), at least 1, taken from the threads no computing task holds, and a task starts
// only once one is free. So a lone request gets every thread, requests arriving together get one
// each (no OpenMP team to wake per call), and the cores are never oversubscribed: while a lone
// request holds them all, the next waits until it has finished computing. An idle worker woken
// for a task is the one that went idle last. Thread-safe: Submit may be called from any thread.
// The destructor runs every task already submitted, then joins the workers.
#ifndef ATTNSERVE_SRC_RUNTIME_EXECUTOR_H_
#define ATTNSERVE_SRC_RUNTIME_EXECUTOR_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"

namespace attn {

class Executor {
 public:
  struct Options {
    int workers = 1;
    int intra_op_threads = 1;
    bool share_threads = false;
  };

  // Options as attnserve's flags give them: intra_op_threads 0 = the machine's cores, workers
  // 0 = intra_op_threads. InvalidArgument naming the flag when one is negative.
  static absl::StatusOr<Options> OptionsFromFlags(int workers, int intra_op_threads,
                                                  bool share_threads);
  // The cores this machine has (at least 1).
  static int Cores();

  explicit Executor(Options options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Submit(absl::AnyInvocable<void() &&> task);

  // Called by a running task, on its worker, once it has computed and before it answers its
  // caller: from then on it takes no share of the threads, so the request its answer lets in
  // does not find it still counted. Does nothing on other threads or when called again.
  void FinishedComputing();

  int workers() const { return options_.workers; }
  // The most OpenMP threads one task uses.
  int intra_op_threads() const { return options_.intra_op_threads; }
  // Tasks submitted but not yet started.
  size_t queue_depth() const;

 private:
  void WorkerLoop(int worker);
  // Wakes the worker that went idle last (its caches and OpenMP team are the warmest), if any.
  void WakeIdleWorker() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether a worker may start the task at the front of the queue (shared: once a thread is free).
  bool CanStartTask() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The OpenMP threads of the task about to start, popped and counted in `running_`.
  int ThreadsForNextTask() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable std::mutex mu_;
  std::vector<std::condition_variable> wake_;  // one per worker
  std::vector<int> idle_ ABSL_GUARDED_BY(mu_);   // waiting workers, the last to go idle at the back
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // tasks started and not finished computing
  int free_threads_ ABSL_GUARDED_BY(mu_);  // shared: threads no computing task holds
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_RUNTIME_EXECUTOR_H_
