// Attend: proto request -> validated engine call -> proto response (see attend_call.h).
#include "server/attend_call.h"

#include <cmath>
#include <optional>
#include <span>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/tensor_codec.h"
#include "src/attention_shapes.h"

namespace attn {
namespace {

namespace pb = attention::v1;

std::span<const int64_t> ShapeOf(const pb::Tensor& tensor) {
  return {tensor.shape().data(), static_cast<size_t>(tensor.shape().size())};
}

std::string ShapeString(std::span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

struct MapsWanted {
  bool probabilities = false;
  bool scores = false;
};

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

absl::Status CheckSharedDtype(const pb::AttendRequest& request) {
  if (request.key().dtype() != request.query().dtype() ||
      request.value().dtype() != request.query().dtype()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "query, key and value must share one dtype; got query.dtype = ",
        pb::DataType_Name(request.query().dtype()), ", key.dtype = ",
        pb::DataType_Name(request.key().dtype()), ", value.dtype = ",
        pb::DataType_Name(request.value().dtype())));
  }
  return absl::OkStatus();
}

absl::StatusOr<float> ParseScale(const pb::AttendRequest& request, int64_t head_dim) {
  if (!request.has_scale()) return static_cast<float>(1.0 / std::sqrt(double(head_dim)));
  const float scale = request.scale();
  if (!std::isfinite(scale) || scale <= 0.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("scale = ", scale, " must be finite and > 0"));
  }
  return scale;
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

// The response tensors must fit --max_elements each and --max_message_bytes together.
absl::Status CheckOutputSizes(const AttentionDims& d, const MapsWanted& maps,
                              DType output_dtype, const AttendLimits& limits) {
  const int64_t output_shape[] = {d.batch, d.heads, d.q_len, d.value_dim};
  const int64_t map_shape[] = {d.batch, d.heads, d.q_len, d.kv_len};
  absl::StatusOr<int64_t> output_count = CheckedElementCount("output.shape", output_shape);
  if (!output_count.ok()) return output_count.status();
  absl::StatusOr<int64_t> map_count = CheckedElementCount("attention.shape", map_shape);
  if (!map_count.ok()) return map_count.status();
  if (*output_count > limits.max_elements) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "output ", ShapeString(output_shape), " would have ", *output_count,
        " elements, over the limit of ", limits.max_elements, " (--max_elements)"));
  }
  const int64_t maps_returned = int64_t{maps.probabilities} + int64_t{maps.scores};
  if (maps_returned > 0 && *map_count > limits.max_elements) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "attention maps ", ShapeString(map_shape), " would have ", *map_count,
        " elements, over the limit of ", limits.max_elements,
        " (--max_elements); ask for attention_maps = ATTENTION_MAPS_NONE"));
  }
  const int64_t bytes = *output_count * DTypeSize(output_dtype) + maps_returned * *map_count * 4;
  if (bytes > limits.max_message_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the response would need ", bytes, " bytes, over the limit of ", limits.max_message_bytes,
        " (--max_message_bytes)", maps_returned > 0 ? "; ask for fewer attention maps" : ""));
  }
  return absl::OkStatus();
}

// Everything the engine needs, decoded and validated; views into the request where possible.
struct DecodedAttend {
  AttentionInputs inputs;
  MapsWanted maps;
  DType output_dtype = DType::kFloat32;
  bool use_values = false;
  FloatTensor query, key, value, bias;
  BoolTensor allowed;
};

absl::Status Decode(const pb::AttendRequest& request, const AttendLimits& limits,
                    DecodedAttend& out) {
  absl::StatusOr<AttentionDims> dims = InferAttentionDims(
      ShapeOf(request.query()), ShapeOf(request.key()), ShapeOf(request.value()));
  if (!dims.ok()) return dims.status();
  if (absl::Status s = CheckSharedDtype(request); !s.ok()) return s;
  absl::StatusOr<MapsWanted> maps = ParseMaps(request.attention_maps());
  if (!maps.ok()) return maps.status();
  absl::StatusOr<DType> output_dtype = DTypeFromProto("output_dtype", request.output_dtype());
  if (!output_dtype.ok()) return output_dtype.status();
  if (*output_dtype == DType::kBool) {
    return absl::InvalidArgumentError("output_dtype = DATA_TYPE_BOOL; use FLOAT32, BFLOAT16 or FLOAT16");
  }
  absl::StatusOr<DType> compute_dtype = DTypeFromProto("compute_dtype", request.compute_dtype());
  if (!compute_dtype.ok()) return compute_dtype.status();
  if (*compute_dtype != DType::kFloat32) {
    return absl::UnimplementedError(absl::StrCat("compute_dtype = ", std::string(DTypeName(*compute_dtype)),
                                                 " is not supported yet; use FLOAT32"));
  }
  absl::StatusOr<float> scale = ParseScale(request, dims->head_dim);
  if (!scale.ok()) return scale.status();
  if (absl::Status s = CheckOutputSizes(*dims, *maps, *output_dtype, limits); !s.ok()) return s;

  MaskSpec& mask = out.inputs.mask;
  absl::StatusOr<CausalKind> causal = ParseCausal(request.mask().causal());
  if (!causal.ok()) return causal.status();
  mask.causal = *causal;
  mask.key_lengths = {request.mask().key_lengths().data(),
                      static_cast<size_t>(request.mask().key_lengths_size())};
  if (absl::Status s = CheckKeyLengths(mask.key_lengths, *dims); !s.ok()) return s;
  if (!IsEmptyTensor(request.mask().allowed())) {
    absl::StatusOr<BroadcastStrides> strides =
        BroadcastToScores("mask.allowed", ShapeOf(request.mask().allowed()), *dims);
    if (!strides.ok()) return strides.status();
    absl::StatusOr<BoolTensor> allowed =
        DecodeBoolTensor("mask.allowed", request.mask().allowed(), limits.max_elements);
    if (!allowed.ok()) return allowed.status();
    out.allowed = *std::move(allowed);
    mask.allowed = out.allowed.data;
    mask.allowed_strides = *strides;
  }
  if (!IsEmptyTensor(request.mask().bias())) {
    absl::StatusOr<BroadcastStrides> strides =
        BroadcastToScores("mask.bias", ShapeOf(request.mask().bias()), *dims);
    if (!strides.ok()) return strides.status();
    absl::StatusOr<FloatTensor> bias =
        DecodeFloatTensor("mask.bias", request.mask().bias(), limits.max_elements);
    if (!bias.ok()) return bias.status();
    out.bias = *std::move(bias);
    if (absl::Status s = CheckBiasValues(out.bias); !s.ok()) return s;
    mask.bias = out.bias.data;
    mask.bias_strides = *strides;
  }

  absl::StatusOr<FloatTensor> query = DecodeFloatTensor("query", request.query(), limits.max_elements);
  if (!query.ok()) return query.status();
  absl::StatusOr<FloatTensor> key = DecodeFloatTensor("key", request.key(), limits.max_elements);
  if (!key.ok()) return key.status();
  absl::StatusOr<FloatTensor> value = DecodeFloatTensor("value", request.value(), limits.max_elements);
  if (!value.ok()) return value.status();
  out.query = *std::move(query);
  out.key = *std::move(key);
  out.value = *std::move(value);

  out.inputs.dims = *dims;
  out.inputs.query = out.query.data;
  out.inputs.key = out.key.data;
  out.inputs.value = out.value.data;
  out.inputs.scale = *scale;
  out.maps = *maps;
  out.output_dtype = *output_dtype;
  out.use_values = out.query.used_values;
  return absl::OkStatus();
}

}  // namespace

std::string DescribeAttendRequest(const pb::AttendRequest& request) {
  return absl::StrCat("q=", ShapeString(ShapeOf(request.query())),
                      " k=", ShapeString(ShapeOf(request.key())),
                      " v=", ShapeString(ShapeOf(request.value())),
                      " dtype=", pb::DataType_Name(request.query().dtype()),
                      " out=", pb::DataType_Name(request.output_dtype()),
                      " maps=", pb::AttentionMaps_Name(request.attention_maps()),
                      " causal=", pb::Causal_Name(request.mask().causal()));
}

absl::Status RunAttend(const pb::AttendRequest& request, const AttendLimits& limits,
                       const AttentionEngine& engine, pb::AttendResponse* response) {
  DecodedAttend call;
  if (absl::Status s = Decode(request, limits, call); !s.ok()) return s;
  const AttentionDims& d = call.inputs.dims;
  const int64_t output_shape[] = {d.batch, d.heads, d.q_len, d.value_dim};
  const int64_t map_shape[] = {d.batch, d.heads, d.q_len, d.kv_len};

  AttentionOutputs outputs;
  std::vector<float> output_f32;
  const bool output_in_place = call.use_values || call.output_dtype == DType::kFloat32;
  if (output_in_place) {
    outputs.output = ReserveFloatOutput(output_shape, call.use_values, response->mutable_output());
  } else {
    output_f32.resize(d.batch * d.heads * d.q_len * d.value_dim);
    outputs.output = output_f32.data();
  }
  if (call.maps.probabilities) {
    outputs.probabilities =
        ReserveFloatOutput(map_shape, call.use_values, response->mutable_attention());
  }
  if (call.maps.scores) {
    outputs.scores = ReserveFloatOutput(map_shape, call.use_values, response->mutable_scores());
  }
  if (absl::Status s = engine.Run(call.inputs, outputs); !s.ok()) return s;
  if (!output_in_place) {
    EncodeFloatTensor(output_shape, output_f32.data(), call.output_dtype, false,
                      response->mutable_output());
  }
  return absl::OkStatus();
}

}  // namespace attn
