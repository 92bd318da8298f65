// Admission of calls around a graceful drain: counts the calls computing, refuses new ones once
// draining has begun, tells open streams to end, and lets shutdown wait until the server is quiet.
// Thread-safe.
#ifndef ATTNSERVE_SERVER_CALL_GATE_H_
#define ATTNSERVE_SERVER_CALL_GATE_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"

namespace attn {

// An open stream that must end when the server drains.
class Drainable {
 public:
  virtual ~Drainable() = default;
  // Called once, with the gate's lock held: must not call back into the gate.
  virtual void OnDrain() = 0;
};

class CallGate {
 public:
  // At most `max_inflight` computing plus `max_queue` waiting for a worker (0 = no limit).
  CallGate(int64_t max_inflight, int64_t max_queue);

  // Counts one computation as admitted, or refuses it: UNAVAILABLE while draining,
  // RESOURCE_EXHAUSTED (with the numbers) when the limits are reached.
  absl::Status Admit();
  // Ends a computation that Admit counted.
  void Release();

  // A stream registers while open; a drain that starts while it is open calls its OnDrain.
  void RegisterStream(Drainable* stream);
  void UnregisterStream(Drainable* stream);

  // From now on Admit refuses, and every open stream is told to end.
  void StartDraining();
  // Blocks until no admitted computation is running and nothing at all (even a refused call)
  // has arrived for `quiet`, or until `deadline`; returns whether that quiet point was reached.
  // Calls whose bytes were still arriving when draining began reach the service in that time
  // and are answered UNAVAILABLE, instead of being cut off when gRPC itself stops.
  bool WaitUntilQuiet(absl::Duration quiet, absl::Time deadline);

  bool draining() const;
  // Computations admitted and not yet released.
  int64_t running() const;

 private:
  const int64_t max_inflight_;
  const int64_t max_queue_;
  mutable std::mutex mu_;
  std::condition_variable released_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_arrival_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::flat_hash_set<Drainable*> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_CALL_GATE_H_
