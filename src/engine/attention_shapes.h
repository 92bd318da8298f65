// Validation of attention shapes before anything is allocated: ranks, dims >= 1, agreement
// between query/key/value, grouped-query divisibility, element-count overflow, key_lengths, and
// NumPy broadcasting of mask operands to [B,H,Sq,Sk]. Every error is INVALID_ARGUMENT with a
// message naming the field and the numbers, e.g. "key.shape[3] = 32 but query.shape[3] = 64".
// Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_ENGINE_ATTENTION_SHAPES_H_
#define ATTNSERVE_SRC_ENGINE_ATTENTION_SHAPES_H_

#include <cstdint>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "src/engine/attention_types.h"

namespace attn {

// Product of `shape`; error when the rank is 0, a dim is < 1, or the product overflows int64.
absl::StatusOr<int64_t> CheckedElementCount(std::string_view field,
                                            std::span<const int64_t> shape);

// query [B,H,Sq,D], key [B,Hkv,Sk,D], value [B,Hkv,Sk,Dv] -> dims. Field names in messages are
// "query", "key", "value".
absl::StatusOr<AttentionDims> InferAttentionDims(std::span<const int64_t> query_shape,
                                                 std::span<const int64_t> key_shape,
                                                 std::span<const int64_t> value_shape);

// Empty, or exactly B entries each in [0, Sk]. Field name "mask.key_lengths".
absl::Status CheckKeyLengths(std::span<const int32_t> key_lengths, const AttentionDims& dims);

// Element strides that broadcast a row-major tensor of `shape` (rank 1..4, NumPy rules, aligned
// to the right) over [B,H,Sq,Sk]; 0 on broadcast dims.
absl::StatusOr<BroadcastStrides> BroadcastToScores(std::string_view field,
                                                   std::span<const int64_t> shape,
                                                   const AttentionDims& dims);

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_ATTENTION_SHAPES_H_
