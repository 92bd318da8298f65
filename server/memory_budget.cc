// The working-memory budget (see memory_budget.h).
#include "server/memory_budget.h"

#include "absl/strings/str_cat.h"
#include "src/runtime/deadline_wait.h"

namespace attn {

MemoryBudget::MemoryBudget(int64_t total_bytes) : total_(total_bytes) {}

absl::Status MemoryBudget::Acquire(int64_t bytes, absl::Time deadline) {
  if (total_ == 0) return absl::OkStatus();
  if (bytes > total_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the request needs about ", bytes, " bytes of working memory, over the "
                     "whole budget of ", total_, " (--memory_budget_bytes)"));
  }
  std::unique_lock lock(mu_);
  auto fits = [this, bytes]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_use_ + bytes <= total_;
  };
  if (!WaitUntilDeadline(released_, lock, deadline, fits)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the deadline passed while waiting for ", bytes, " bytes of working memory (",
        in_use_, " of ", total_, " in use, --memory_budget_bytes)"));
  }
  in_use_ += bytes;
  return absl::OkStatus();
}

void MemoryBudget::Release(int64_t bytes) {
  if (total_ == 0) return;
  {
    std::lock_guard lock(mu_);
    in_use_ -= bytes;
  }
  released_.notify_all();
}

int64_t MemoryBudget::in_use() const {
  std::lock_guard lock(mu_);
  return in_use_;
}

}  // namespace attn
