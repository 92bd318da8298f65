// Shape validation for attention calls (see attention_shapes.h).
#include "src/engine/attention_shapes.h"

#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace attn {
namespace {

std::string Join(std::span<const int64_t> dims) {
  return absl::StrCat("[", absl::StrJoin(dims, ","), "]");
}

absl::Status CheckRank4(const std::string& field, std::span<const int64_t> shape,
                        const char* layout) {
  if (shape.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must have rank 4 ", layout,
                                                   ", got rank ", shape.size(),
                                                   shape.empty() ? " (is it missing?)" : ""));
  }
  return CheckedElementCount(absl::StrCat(field, ".shape"), shape).status();
}

absl::Status CheckSameDim(const char* field, std::span<const int64_t> shape, int dim,
                          const char* other_field, std::span<const int64_t> other, int other_dim) {
  if (shape[dim] != other[other_dim]) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape[", dim, "] = ", shape[dim],
                                                   " but ", other_field, ".shape[", other_dim,
                                                   "] = ", other[other_dim]));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> CheckedElementCount(std::string_view field,
                                            std::span<const int64_t> shape) {
  const std::string name(field);
  if (shape.empty()) return absl::InvalidArgumentError(absl::StrCat(name, " is empty (rank 0)"));
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "[", i, "] = ", shape[i], " must be >= 1"));
    }
  }
  for (int64_t dim : shape) {
    if (count > std::numeric_limits<int64_t>::max() / dim) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " ", Join(shape), " has a product that overflows int64"));
    }
    count *= dim;
  }
  return count;
}

absl::StatusOr<AttentionDims> InferAttentionDims(std::span<const int64_t> q,
                                                 std::span<const int64_t> k,
                                                 std::span<const int64_t> v) {
  if (absl::Status s = CheckRank4("query", q, "[B,H,Sq,D]"); !s.ok()) return s;
  if (absl::Status s = CheckRank4("key", k, "[B,Hkv,Sk,D]"); !s.ok()) return s;
  if (absl::Status s = CheckRank4("value", v, "[B,Hkv,Sk,Dv]"); !s.ok()) return s;
  for (const absl::Status& s : {CheckSameDim("key", k, 0, "query", q, 0),
                                CheckSameDim("key", k, 3, "query", q, 3),
                                CheckSameDim("value", v, 0, "query", q, 0),
                                CheckSameDim("value", v, 1, "key", k, 1),
                                CheckSameDim("value", v, 2, "key", k, 2)}) {
    if (!s.ok()) return s;
  }
  if (q[1] % k[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "query.shape[1] = ", q[1], " is not a multiple of key.shape[1] = ", k[1],
        " (query heads must be a multiple of key/value heads)"));
  }
  return AttentionDims{.batch = q[0], .heads = q[1], .kv_heads = k[1], .q_len = q[2],
                       .kv_len = k[2], .head_dim = q[3], .value_dim = v[3]};
}

absl::Status CheckKeyLengths(std::span<const int32_t> key_lengths, const AttentionDims& dims) {
  if (key_lengths.empty()) return absl::OkStatus();
  if (static_cast<int64_t>(key_lengths.size()) != dims.batch) {
    return absl::InvalidArgumentError(absl::StrCat("mask.key_lengths has ", key_lengths.size(),
                                                   " entries but batch is ", dims.batch));
  }
  for (size_t b = 0; b < key_lengths.size(); ++b) {
    if (key_lengths[b] < 0 || key_lengths[b] > dims.kv_len) {
      return absl::InvalidArgumentError(absl::StrCat("mask.key_lengths[", b, "] = ",
                                                     key_lengths[b], " is outside [0, ",
                                                     dims.kv_len, "]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BroadcastStrides> BroadcastToScores(std::string_view field,
                                                   std::span<const int64_t> shape,
                                                   const AttentionDims& dims) {
  const std::string name(field);
  if (shape.empty() || shape.size() > 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has rank ", shape.size(), "; it must broadcast to [B,H,Sq,Sk] from rank 1 to 4"));
  }
  if (absl::Status s = CheckedElementCount(absl::StrCat(name, ".shape"), shape).status(); !s.ok()) {
    return s;
  }
  const int64_t target[4] = {dims.batch, dims.heads, dims.q_len, dims.kv_len};
  const size_t offset = 4 - shape.size();  // NumPy aligns shapes on the right
  BroadcastStrides strides{};
  int64_t stride = 1;
  for (int axis = 3; axis >= static_cast<int>(offset); --axis) {
    const size_t i = axis - offset;
    if (shape[i] != 1 && shape[i] != target[axis]) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ".shape[", i, "] = ", shape[i], " does not broadcast to ", target[axis],
          " (dim ", axis, " of [B,H,Sq,Sk] = ", Join(target), ")"));
    }
    strides[axis] = shape[i] == 1 ? 0 : stride;
    stride *= shape[i];
  }
  return strides;
}

}  // namespace attn
