// One MultiHeadAttend request from proto to engine and back: resolves the weights (inline, or by
// name from the registry), validates input/context against them and the mask against the heads
// before allocating anything that depends on them, runs the layer writing straight into the
// response, and encodes the output in the requested dtype. Thread-safe.
#ifndef ATTNSERVE_SERVER_MULTI_HEAD_CALL_H_
#define ATTNSERVE_SERVER_MULTI_HEAD_CALL_H_

#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "attention/v1/attention.pb.h"
#include "server/request_fields.h"
#include "src/layer/multi_head_attention.h"
#include "src/weights/weight_registry.h"

namespace attn {

// The request's weights: inline (decoded) or named (from the registry). INVALID_ARGUMENT /
// NOT_FOUND name the field.
absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> ResolveMultiHeadWeights(
    const attention::v1::MultiHeadAttendRequest& request, int64_t max_elements,
    const WeightRegistry& registry);

// OK when `shape` is [B, S, want_width]; INVALID_ARGUMENT naming `field` and `width_name`.
absl::Status CheckEmbeddings(const std::string& field, std::span<const int64_t> shape,
                             int64_t want_width, const std::string& width_name);

// Intermediate tensors (projections, per-head maps before averaging) obey --max_elements too:
// RESOURCE_EXHAUSTED naming `what` when rows x cols is over it.
absl::Status CheckIntermediate(const std::string& what, int64_t rows, int64_t cols,
                               const AttendLimits& limits);

// What the request log says about a call: "input=[2,16,64] context=- weights=name heads=...".
std::string DescribeMultiHeadRequest(const attention::v1::MultiHeadAttendRequest& request);

// INVALID_ARGUMENT / NOT_FOUND / RESOURCE_EXHAUSTED / UNIMPLEMENTED name the field and numbers.
// `call` (when set) may stop it between chunks and gets the attention's FLOPs (not the
// projections').
absl::Status RunMultiHeadAttend(const attention::v1::MultiHeadAttendRequest& request,
                                const AttendLimits& limits, const MultiHeadAttention& layer,
                                const WeightRegistry& registry,
                                attention::v1::AttendResponse* response,
                                CallContext* call = nullptr);

// Working memory the request would need (inline weights, input/context in f32, projections,
// concatenation, maps, output), from its shapes alone (named weights count as their
// activations only); 0 when malformed.
int64_t EstimateMultiHeadBytes(const attention::v1::MultiHeadAttendRequest& request,
                               const WeightRegistry& registry, int threads);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_MULTI_HEAD_CALL_H_
