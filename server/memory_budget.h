// The server's working-memory budget (--memory_budget_bytes): a computation reserves the bytes
// its shapes say it needs before it allocates anything, waits (until its deadline) while others
// hold too much, and is refused at once if it could never fit. Thread-safe.
#ifndef ATTNSERVE_SERVER_MEMORY_BUDGET_H_
#define ATTNSERVE_SERVER_MEMORY_BUDGET_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "absl/status/status.h"
#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace attn {

class MemoryBudget {
 public:
  // 0 = unlimited.
  explicit MemoryBudget(int64_t total_bytes);

  // Reserves `bytes`: RESOURCE_EXHAUSTED when they exceed the whole budget, DEADLINE_EXCEEDED
  // when they did not become free before `deadline`.
  absl::Status Acquire(int64_t bytes, absl::Time deadline);
  void Release(int64_t bytes);
  int64_t in_use() const;

 private:
  const int64_t total_;
  mutable std::mutex mu_;
  std::condition_variable released_;
  int64_t in_use_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_MEMORY_BUDGET_H_
