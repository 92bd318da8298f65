// Request fields shared by Attend and MultiHeadAttend (see request_fields.h).
#include "server/request_fields.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "src/engine/attention_shapes.h"

namespace attn {
namespace {

namespace pb = attention::v1;

absl::StatusOr<CausalKind> ParseCausal(int causal) {
  switch (causal) {
    case pb::CAUSAL_NONE:
      return CausalKind::kNone;
    case pb::CAUSAL_UPPER_LEFT:
      return CausalKind::kUpperLeft;
    case pb::CAUSAL_LOWER_RIGHT:
      return CausalKind::kLowerRight;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("mask.causal = ", causal, " is not a Causal value"));
  }
}

absl::Status CheckBiasValues(const FloatTensor& bias) {
  for (int64_t i = 0; i < bias.count; ++i) {
    const float x = bias.data[i];
    if (std::isnan(x) || x == INFINITY) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mask.bias[", i, "] = ", x, "; bias values must be finite or -inf"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::span<const int64_t> ShapeOf(const pb::Tensor& tensor) {
  return {tensor.shape().data(), static_cast<size_t>(tensor.shape().size())};
}

std::string ShapeString(std::span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

absl::StatusOr<MapsWanted> ParseMaps(int maps) {
  switch (maps) {
    case pb::ATTENTION_MAPS_DEFAULT:
    case pb::ATTENTION_MAPS_PROBABILITIES:
      return MapsWanted{.probabilities = true};
    case pb::ATTENTION_MAPS_NONE:
      return MapsWanted{};
    case pb::ATTENTION_MAPS_SCORES:
      return MapsWanted{.scores = true};
    case pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES:
      return MapsWanted{.probabilities = true, .scores = true};
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("attention_maps = ", maps, " is not an AttentionMaps value"));
  }
}

absl::StatusOr<float> ParseScale(bool has_scale, float scale, int64_t head_dim) {
  if (!has_scale) return static_cast<float>(1.0 / std::sqrt(double(head_dim)));
  if (!std::isfinite(scale) || scale <= 0.0f) {
    return absl::InvalidArgumentError(absl::StrCat("scale = ", scale, " must be finite and > 0"));
  }
  return scale;
}

absl::StatusOr<DType> ParseOutputDtype(int output_dtype) {
  absl::StatusOr<DType> dtype = DTypeFromProto("output_dtype", output_dtype);
  if (!dtype.ok()) return dtype.status();
  if (*dtype == DType::kBool) {
    return absl::InvalidArgumentError(
        "output_dtype = DATA_TYPE_BOOL; use FLOAT32, BFLOAT16 or FLOAT16");
  }
  return dtype;
}

absl::StatusOr<bool> ParseBf16Compute(int compute_dtype) {
  absl::StatusOr<DType> dtype = DTypeFromProto("compute_dtype", compute_dtype);
  if (!dtype.ok()) return dtype.status();
  if (*dtype == DType::kFloat32) return false;
  if (*dtype == DType::kBFloat16) return true;
  if (*dtype == DType::kBool) {
    return absl::InvalidArgumentError("compute_dtype = DATA_TYPE_BOOL; use FLOAT32 or BFLOAT16");
  }
  return absl::UnimplementedError(absl::StrCat("compute_dtype = ", std::string(DTypeName(*dtype)),
                                               " is not supported; use FLOAT32 or BFLOAT16"));
}

absl::Status DecodeMask(const pb::Mask& mask, const AttentionDims& dims, int64_t max_elements,
                        DecodedMask& out) {
  absl::StatusOr<CausalKind> causal = ParseCausal(mask.causal());
  if (!causal.ok()) return causal.status();
  out.spec.causal = *causal;
  out.spec.key_lengths = {mask.key_lengths().data(),
                          static_cast<size_t>(mask.key_lengths_size())};
  if (absl::Status s = CheckKeyLengths(out.spec.key_lengths, dims); !s.ok()) return s;
  if (!IsEmptyTensor(mask.allowed())) {
    absl::StatusOr<BroadcastStrides> strides =
        BroadcastToScores("mask.allowed", ShapeOf(mask.allowed()), dims);
    if (!strides.ok()) return strides.status();
    absl::StatusOr<BoolTensor> allowed =
        DecodeBoolTensor("mask.allowed", mask.allowed(), max_elements);
    if (!allowed.ok()) return allowed.status();
    out.allowed = *std::move(allowed);
    out.spec.allowed = out.allowed.data;
    out.spec.allowed_strides = *strides;
  }
  if (!IsEmptyTensor(mask.bias())) {
    absl::StatusOr<BroadcastStrides> strides =
        BroadcastToScores("mask.bias", ShapeOf(mask.bias()), dims);
    if (!strides.ok()) return strides.status();
    absl::StatusOr<FloatTensor> bias = DecodeFloatTensor("mask.bias", mask.bias(), max_elements);
    if (!bias.ok()) return bias.status();
    out.bias = *std::move(bias);
    if (absl::Status s = CheckBiasValues(out.bias); !s.ok()) return s;
    out.spec.bias = out.bias.data;
    out.spec.bias_strides = *strides;
  }
  return absl::OkStatus();
}

int64_t SaturatingProduct(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (int64_t f : factors) {
    if (f < 0) return 0;
    if (f != 0 && product > INT64_MAX / f) return INT64_MAX;
    product *= f;
  }
  return product;
}

int64_t SaturatingSum(int64_t a, int64_t b) {
  a = std::max<int64_t>(a, 0);
  b = std::max<int64_t>(b, 0);
  return a > INT64_MAX - b ? INT64_MAX : a + b;
}

int64_t EngineScratchBytes(int64_t rows_per_group, int64_t kv_len, int threads) {
  return SaturatingProduct({std::min<int64_t>(128, rows_per_group), kv_len, 4 * 2, threads});
}

double AttentionFlops(const AttentionDims& d) {
  return 2.0 * double(d.batch) * double(d.heads) * double(d.q_len) * double(d.kv_len) *
         double(d.head_dim + d.value_dim);
}

absl::Status CheckResponseSize(std::span<const int64_t> output_shape, DType output_dtype,
                               std::span<const int64_t> map_shape, const MapsWanted& maps,
                               const AttendLimits& limits) {
  absl::StatusOr<int64_t> output_count = CheckedElementCount("output.shape", output_shape);
  if (!output_count.ok()) return output_count.status();
  absl::StatusOr<int64_t> map_count = CheckedElementCount("attention.shape", map_shape);
  if (!map_count.ok()) return map_count.status();
  if (*output_count > limits.max_elements) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "output ", ShapeString(output_shape), " would have ", *output_count,
        " elements, over the limit of ", limits.max_elements, " (--max_elements)"));
  }
  if (maps.count() > 0 && *map_count > limits.max_elements) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "attention maps ", ShapeString(map_shape), " would have ", *map_count,
        " elements, over the limit of ", limits.max_elements,
        " (--max_elements); ask for attention_maps = ATTENTION_MAPS_NONE"));
  }
  const int64_t bytes = *output_count * DTypeSize(output_dtype) + maps.count() * *map_count * 4;
  if (bytes > limits.max_message_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the response would need ", bytes, " bytes, over the limit of ", limits.max_message_bytes,
        " (--max_message_bytes)", maps.count() > 0 ? "; ask for fewer attention maps" : ""));
  }
  return absl::OkStatus();
}

}  // namespace attn
