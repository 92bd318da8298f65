// Conversion between attention.v1.Weights / WeightsInfo and the engine's MultiHeadWeights:
// shapes are validated (InferMultiHeadDims) before any tensor is decoded, and every message
// names the field, e.g. "weights.w_k.shape[1] = 48 but num_kv_heads * head_dim = 2 * 16 = 32".
// Pure functions; thread-safe.
#ifndef ATTNSERVE_SERVER_WEIGHTS_PROTO_H_
#define ATTNSERVE_SERVER_WEIGHTS_PROTO_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "attention/v1/attention.pb.h"
#include "src/layer/multi_head_weights.h"

namespace attn {

// `prefix` names the message in errors ("weights."). Each tensor may hold at most
// `max_elements` elements (RESOURCE_EXHAUSTED).
absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> WeightsFromProto(
    const std::string& prefix, const attention::v1::Weights& weights, int64_t max_elements);

void FillWeightsInfo(const std::string& name, const MultiHeadWeights& weights,
                     attention::v1::WeightsInfo* info);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_WEIGHTS_PROTO_H_
