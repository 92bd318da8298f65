// Waits on a std::condition_variable until a predicate holds or an absl::Time deadline passes
// (absl::InfiniteFuture() waits without a time limit). The project synchronises with std::mutex
// and std::condition_variable rather than absl::Mutex, so ThreadSanitizer, which sees pthread
// calls but not Debian's uninstrumented Abseil, can check it. Thread-safe as the caller's lock.
#ifndef ATTNSERVE_SRC_RUNTIME_DEADLINE_WAIT_H_
#define ATTNSERVE_SRC_RUNTIME_DEADLINE_WAIT_H_

#include <condition_variable>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace attn {

// True when `ready()` holds (checked under `lock`), false when the deadline passed first.
template <typename Predicate>
bool WaitUntilDeadline(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                       absl::Time deadline, Predicate ready) {
  if (deadline == absl::InfiniteFuture()) {
    cv.wait(lock, ready);
    return true;
  }
  while (!ready()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    cv.wait_for(lock, absl::ToChronoMicroseconds(left) + std::chrono::microseconds(1));
  }
  return true;
}

}  // namespace attn

#endif  // ATTNSERVE_SRC_RUNTIME_DEADLINE_WAIT_H_
