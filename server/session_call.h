// Session steps from proto to the session store and back (SessionAttend, SessionAttendBatch,
// SessionAttendStream): each step's session leased and put in line when the call arrives, its
// tensors decoded and checked against the session's shape, planned, answered into the
// response's own buffers, and applied all or nothing. Errors name the field ("steps[2].key")
// and the numbers. Thread-safe (the store and engine are).
#ifndef ATTNSERVE_SERVER_SESSION_CALL_H_
#define ATTNSERVE_SERVER_SESSION_CALL_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "attention/v1/attention.pb.h"
#include "server/request_fields.h"
#include "src/engine/attention_engine.h"
#include "src/kv/session_store.h"

namespace attn {

// One step's answer before it is encoded: its tensors in an AttendResponse (whose fields 1-4
// are SessionAttendResponse's, so attend_wire.h sends them without a copy) and its positions.
struct SessionAnswer {
  attention::v1::AttendResponse tensors;
  int64_t position = 0;
  int64_t first_position = 0;
};

// The sessions of one call's steps, leased (never evicted or expired meanwhile) and each given
// a ticket in its session's line. Made where the call is submitted to the workers, in
// submission order, so steps on one session apply in the order they arrived; the worker waits
// for the turns. Ends every turn when destroyed. Not thread-safe (one call's).
class SessionTurns {
 public:
  // `ids` of the steps (a batch's field names are "steps[i].session_id"); the first failure
  // (NOT_FOUND, or INVALID_ARGUMENT for a session named twice) is kept as status().
  SessionTurns(SessionStore& store, std::span<const std::string* const> ids,
               const std::string& owner, bool batch);
  ~SessionTurns();
  SessionTurns(const SessionTurns&) = delete;
  SessionTurns& operator=(const SessionTurns&) = delete;

  const absl::Status& status() const { return status_; }
  // Waits until every earlier step of each session has been applied (DEADLINE_EXCEEDED at
  // `deadline`).
  absl::Status Wait(absl::Time deadline);
  KvSession& session(size_t i) const { return *leases_[i]; }
  size_t size() const { return leases_.size(); }
  // Working memory the steps `requests` need: their inputs in f32, outputs, maps over the keys
  // held, and for prefill the layer's f32 copy.
  int64_t EstimateBytes(std::span<const attention::v1::SessionAttendRequest* const> requests);

 private:
  absl::Status status_;
  std::vector<SessionLease> leases_;
  std::vector<int64_t> tickets_;
  size_t ended_ = 0;  // the turns before this one were waited for
};

// Computes the steps `requests` (their turns held) into `answers`: all or nothing. `call` may
// stop it and gets its FLOPs. Batch messages name "steps[i].<field>".
absl::Status RunSessionSteps(std::span<const attention::v1::SessionAttendRequest* const> requests,
                             SessionTurns& turns, SessionStore& store,
                             const AttentionEngine& engine, const AttendLimits& limits,
                             std::span<SessionAnswer* const> answers, CallContext* call,
                             bool batch);

// What the request log says about a step: "session=... layer=0 q=[32,1,128] ...".
std::string DescribeSessionStep(const attention::v1::SessionAttendRequest& request);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_SESSION_CALL_H_
