// MultiHeadAttend on a KV-cache session (docs/sessions.md): the new tokens' embeddings
// [1, n, d_model] projected with the weights, their K and V appended to the session's layer,
// their queries attending to every cached position up to their own (lower-right causal) as a
// SessionAttend step, then W_o and Add & Norm as the weights say. The answer equals
// MultiHeadAttend over the whole prefix's embeddings (its last n rows). Thread-safe (the store,
// engine and layer are).
#ifndef ATTNSERVE_SERVER_MULTI_HEAD_SESSION_CALL_H_
#define ATTNSERVE_SERVER_MULTI_HEAD_SESSION_CALL_H_

#include "absl/status/status.h"
#include "attention/v1/attention.pb.h"
#include "server/request_fields.h"
#include "server/session_call.h"
#include "src/layer/multi_head_attention.h"
#include "src/weights/weight_registry.h"

namespace attn {

// Runs the step of `request` (session_id set) on the session `turns` holds (its turn waited
// for): all or nothing, like SessionAttend. INVALID_ARGUMENT names the field and the numbers
// (a batch other than 1, a context, a mask, weights whose heads or dims are not the session's);
// UNIMPLEMENTED for maps; the step's own errors otherwise.
absl::Status RunMultiHeadSessionStep(const attention::v1::MultiHeadAttendRequest& request,
                                     const AttendLimits& limits, const MultiHeadAttention& layer,
                                     const WeightRegistry& registry, SessionTurns& turns,
                                     SessionStore& store, const AttentionEngine& engine,
                                     attention::v1::AttendResponse* response, CallContext* call);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_MULTI_HEAD_SESSION_CALL_H_
