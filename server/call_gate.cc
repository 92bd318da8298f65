// Call admission around a graceful drain (see call_gate.h).
#include "server/call_gate.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "src/runtime/deadline_wait.h"

namespace attn {

CallGate::CallGate(int64_t max_inflight, int64_t max_queue)
    : max_inflight_(max_inflight), max_queue_(max_queue) {}

absl::Status CallGate::Admit() {
  std::lock_guard lock(mu_);
  last_arrival_ = absl::Now();
  if (draining_) {
    return absl::UnavailableError("the server is shutting down; retry on another replica");
  }
  if (max_inflight_ > 0 && running_ >= max_inflight_ + max_queue_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the server is full: ", running_, " requests admitted, the limit is ", max_inflight_,
        " computing (--max_inflight) + ", max_queue_, " waiting (--max_queue); retry later"));
  }
  ++running_;
  return absl::OkStatus();
}

void CallGate::Release() {
  {
    std::lock_guard lock(mu_);
    --running_;
  }
  released_.notify_all();
}

void CallGate::RegisterStream(Drainable* stream) {
  std::lock_guard lock(mu_);
  streams_.insert(stream);
  if (draining_) stream->OnDrain();
}

void CallGate::UnregisterStream(Drainable* stream) {
  std::lock_guard lock(mu_);
  streams_.erase(stream);
}

void CallGate::StartDraining() {
  std::lock_guard lock(mu_);
  draining_ = true;
  // Under the lock, so no stream can unregister (and be deleted) meanwhile.
  for (Drainable* stream : streams_) stream->OnDrain();
}

bool CallGate::draining() const {
  std::lock_guard lock(mu_);
  return draining_;
}

int64_t CallGate::running() const {
  std::lock_guard lock(mu_);
  return running_;
}

bool CallGate::WaitUntilQuiet(absl::Duration quiet, absl::Time deadline) {
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ == 0; };
  while (true) {
    absl::Time quiet_at;
    {
      std::unique_lock lock(mu_);
      if (!WaitUntilDeadline(released_, lock, deadline, idle)) return false;
      quiet_at = last_arrival_ + quiet;
    }
    const absl::Time now = absl::Now();
    if (now >= quiet_at) return true;
    if (now >= deadline) return false;
    absl::SleepFor(std::min(quiet_at, deadline) - now);
  }
}

}  // namespace attn
