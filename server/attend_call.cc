// Attend: proto request -> validated engine call -> proto response (see attend_call.h).
#include "server/attend_call.h"

#include <span>

#include "absl/strings/str_cat.h"
#include "proto/tensor_codec.h"
#include "server/response_writer.h"
#include "src/engine/attention_shapes.h"

namespace attn {
namespace {

namespace pb = attention::v1;

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

// Everything the engine needs, decoded and validated; views into the request where possible.
struct DecodedAttend {
  AttentionInputs inputs;
  MapsWanted maps;
  DType output_dtype = DType::kFloat32;
  bool use_values = false;
  FloatTensor query, key, value;
  DecodedMask mask;
};

absl::Status Decode(const pb::AttendRequest& request, const AttendLimits& limits,
                    DecodedAttend& out) {
  absl::StatusOr<AttentionDims> dims = InferAttentionDims(
      ShapeOf(request.query()), ShapeOf(request.key()), ShapeOf(request.value()));
  if (!dims.ok()) return dims.status();
  if (absl::Status s = CheckSharedDtype(request); !s.ok()) return s;
  absl::StatusOr<MapsWanted> maps = ParseMaps(request.attention_maps());
  if (!maps.ok()) return maps.status();
  absl::StatusOr<DType> output_dtype = ParseOutputDtype(request.output_dtype());
  if (!output_dtype.ok()) return output_dtype.status();
  absl::StatusOr<bool> bf16 = ParseBf16Compute(request.compute_dtype());
  if (!bf16.ok()) return bf16.status();
  out.inputs.bf16_compute = *bf16;
  absl::StatusOr<float> scale = ParseScale(request.has_scale(), request.scale(), dims->head_dim);
  if (!scale.ok()) return scale.status();
  const int64_t output_shape[] = {dims->batch, dims->heads, dims->q_len, dims->value_dim};
  const int64_t map_shape[] = {dims->batch, dims->heads, dims->q_len, dims->kv_len};
  if (absl::Status s = CheckResponseSize(output_shape, *output_dtype, map_shape, *maps, limits);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = DecodeMask(request.mask(), *dims, limits.max_elements, out.mask); !s.ok()) {
    return s;
  }
  out.inputs.mask = out.mask.spec;

  // bf16 inputs computed in bf16 reach the engine as they are (it copies them into its blocked
  // K^T, scaled Q and dense V, with no f32 step); the three share one dtype, so all or none
  // stay bf16.
  const bool keep_bf16 = *bf16;
  absl::StatusOr<FloatTensor> query =
      DecodeFloatTensor("query", request.query(), limits.max_elements, keep_bf16);
  if (!query.ok()) return query.status();
  absl::StatusOr<FloatTensor> key =
      DecodeFloatTensor("key", request.key(), limits.max_elements, keep_bf16);
  if (!key.ok()) return key.status();
  absl::StatusOr<FloatTensor> value =
      DecodeFloatTensor("value", request.value(), limits.max_elements, keep_bf16);
  if (!value.ok()) return value.status();
  out.query = *std::move(query);
  out.key = *std::move(key);
  out.value = *std::move(value);

  out.inputs.dims = *dims;
  out.inputs.query = out.query.data;
  out.inputs.key = out.key.data;
  out.inputs.value = out.value.data;
  out.inputs.query_bf16 = out.query.bf16;
  out.inputs.key_bf16 = out.key.bf16;
  out.inputs.value_bf16 = out.value.bf16;
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

int64_t EstimateAttendBytes(const pb::AttendRequest& request, int threads) {
  const auto& q = request.query().shape();
  const auto& k = request.key().shape();
  const auto& v = request.value().shape();
  if (q.size() != 4 || k.size() != 4 || v.size() != 4 || k[1] < 1) return 0;
  const int64_t b = q[0], h = q[1], sq = q[2], d = q[3], hkv = k[1], sk = k[2], dv = v[3];
  int64_t bytes = 0;
  // f32 copies of inputs that are not f32 `data` (viewed in place otherwise; bf16 computed in
  // bf16 is viewed in place too, and this then bounds the engine's bf16 copies of Q and V)
  const bool converted = request.query().dtype() > pb::DATA_TYPE_FLOAT32 ||
                         request.query().values_size() > 0;
  if (converted) {
    bytes = SaturatingSum(bytes, SaturatingProduct({b, h, sq, d, 4}));
    bytes = SaturatingSum(bytes, SaturatingProduct({b, hkv, sk, d, 4}));
    bytes = SaturatingSum(bytes, SaturatingProduct({b, hkv, sk, dv, 4}));
  }
  // the output, staged in f32 when it is answered in 16 bits
  const int64_t output = SaturatingProduct({b, h, sq, dv, 4});
  const bool staged = request.output_dtype() > pb::DATA_TYPE_FLOAT32;
  bytes = SaturatingSum(bytes, staged ? SaturatingProduct({2, output}) : output);
  // the engine's transposed copy of K
  bytes = SaturatingSum(bytes, SaturatingProduct({b, hkv, sk, d, 4}));
  // the maps
  absl::StatusOr<MapsWanted> maps = ParseMaps(request.attention_maps());
  if (maps.ok()) bytes = SaturatingSum(bytes, SaturatingProduct({maps->count(), b, h, sq, sk, 4}));
  return SaturatingSum(bytes, EngineScratchBytes(SaturatingProduct({h / hkv, sq}), sk, threads));
}

absl::Status RunAttend(const pb::AttendRequest& request, const AttendLimits& limits,
                       const AttentionEngine& engine, pb::AttendResponse* response,
                       CallContext* call_context) {
  DecodedAttend call;
  if (absl::Status s = Decode(request, limits, call); !s.ok()) return s;
  const AttentionDims& d = call.inputs.dims;
  const int64_t output_shape[] = {d.batch, d.heads, d.q_len, d.value_dim};
  const int64_t map_shape[] = {d.batch, d.heads, d.q_len, d.kv_len};

  ResponseWriter writer(output_shape, call.output_dtype, map_shape, call.maps, call.use_values,
                        response);
  AttentionOutputs outputs;
  outputs.output = writer.output();
  outputs.probabilities = writer.probabilities();
  outputs.scores = writer.scores();
  if (absl::Status s = engine.Run(call.inputs, outputs,
                                  call_context != nullptr ? call_context->stop : StopCheck());
      !s.ok()) {
    return s;
  }
  writer.Finish();
  if (call_context != nullptr) call_context->flops += AttentionFlops(d);
  return absl::OkStatus();
}

}  // namespace attn
