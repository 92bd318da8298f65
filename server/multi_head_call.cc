// MultiHeadAttend: proto request -> validated layer call -> proto response (see
// multi_head_call.h).
#include "server/multi_head_call.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "proto/tensor_codec.h"
#include "server/response_writer.h"
#include "server/weights_proto.h"
#include "src/engine/attention_shapes.h"

namespace attn {

namespace pb = attention::v1;

absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> ResolveMultiHeadWeights(
    const pb::MultiHeadAttendRequest& request, int64_t max_elements,
    const WeightRegistry& registry) {
  switch (request.weights_source_case()) {
    case pb::MultiHeadAttendRequest::kWeights:
      return WeightsFromProto("weights.", request.weights(), max_elements);
    case pb::MultiHeadAttendRequest::kWeightsName:
      return registry.Get(request.weights_name());
    default:
      return absl::InvalidArgumentError(
          "weights_source is not set: send weights, or the weights_name of a PutWeights");
  }
}

absl::Status CheckEmbeddings(const std::string& field, std::span<const int64_t> shape,
                             int64_t want_width, const std::string& width_name) {
  absl::StatusOr<int64_t> count = CheckedElementCount(absl::StrCat(field, ".shape"), shape);
  if (!count.ok()) return count.status();
  if (shape.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(field, " has shape ", ShapeString(shape),
                                                   "; expected rank 3 [B, S, ", width_name, "]"));
  }
  if (shape[2] != want_width) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape[2] = ", shape[2], " but the weights' ",
                                                   width_name, " = ", want_width));
  }
  return absl::OkStatus();
}

absl::Status CheckIntermediate(const std::string& what, int64_t rows, int64_t cols,
                               const AttendLimits& limits) {
  if (rows > limits.max_elements / cols) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, " would have ", rows, " x ", cols, " elements, over the limit of ",
                     limits.max_elements, " (--max_elements)"));
  }
  return absl::OkStatus();
}

int64_t EstimateMultiHeadBytes(const pb::MultiHeadAttendRequest& request,
                               const WeightRegistry& registry, int threads) {
  const auto& x = request.input().shape();
  if (x.size() != 3) return 0;
  const int64_t b = x[0], sq = x[1];
  const int64_t sk = request.context().shape_size() == 3 ? request.context().shape(1) : sq;
  int64_t bytes = 0, heads = 0, d = 0, dv = 0, nkv = 0, d_out = 0;
  if (request.has_weights()) {
    const pb::Weights& w = request.weights();
    // decoded and packed copies of every weight tensor
    for (const pb::Tensor* t : {&w.w_q(), &w.w_k(), &w.w_v(), &w.w_o(), &w.b_q(), &w.b_k(),
                                &w.b_v(), &w.b_o()}) {
      int64_t count = 1;
      for (int64_t dim : t->shape()) count = SaturatingProduct({count, dim});
      bytes = SaturatingSum(bytes, SaturatingProduct({count, 8}));
    }
    if (w.w_q().shape_size() != 2 || w.w_k().shape_size() != 2 || w.w_v().shape_size() != 2 ||
        w.num_heads() < 1) {
      return bytes;
    }
    heads = w.num_heads();
    const int64_t kv_heads = w.num_kv_heads() > 0 ? w.num_kv_heads() : heads;
    d = w.w_q().shape(1) / heads;
    dv = w.w_v().shape(1) / kv_heads;
    // Sizes from the request may be anything: sums and products saturate (negatives count 0).
    nkv = SaturatingSum(w.w_k().shape(1), w.w_v().shape(1));
    d_out = w.w_o().shape_size() == 2 ? w.w_o().shape(1) : SaturatingProduct({heads, dv});
  } else {
    absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> named =
        registry.Get(request.weights_name());
    if (!named.ok()) return 0;
    const MultiHeadDims& md = (*named)->dims();
    heads = md.num_heads;
    d = md.head_dim;
    dv = md.value_dim;
    nkv = md.key_value_width();
    d_out = md.d_out;
  }
  // projections, concatenation, pre-norm sum and output
  bytes = SaturatingSum(
      bytes, SaturatingProduct({b, sq, SaturatingSum(SaturatingProduct({heads, d}), nkv), 4}));
  bytes = SaturatingSum(bytes, SaturatingProduct({b, sk, nkv, 4}));
  // the engine's copies of K (transposed) and V (dense, as the projection lays it out strided)
  bytes = SaturatingSum(bytes, SaturatingProduct({b, sk, nkv, 4}));
  bytes = SaturatingSum(bytes, SaturatingProduct({b, sq,
                                                  SaturatingSum(SaturatingProduct({heads, dv}),
                                                                SaturatingProduct({3, d_out})),
                                                  4}));
  // per-head maps (both kinds at most) and the engine's scratch
  bytes = SaturatingSum(bytes, SaturatingProduct({2, b, heads, sq, sk, 4}));
  return SaturatingSum(bytes, EngineScratchBytes(sq, sk, threads));
}

std::string DescribeMultiHeadRequest(const pb::MultiHeadAttendRequest& request) {
  return absl::StrCat(
      "input=", ShapeString(ShapeOf(request.input())),
      " context=", request.has_context() ? ShapeString(ShapeOf(request.context())) : "-",
      " weights=", request.has_weights_name() ? request.weights_name() : "inline",
      " dtype=", pb::DataType_Name(request.input().dtype()),
      " out=", pb::DataType_Name(request.output_dtype()),
      " maps=", pb::AttentionMaps_Name(request.attention_maps()),
      request.average_heads() ? " average_heads" : "",
      " causal=", pb::Causal_Name(request.mask().causal()),
      request.session_id().empty()
          ? ""
          : absl::StrCat(" session=", request.session_id().substr(0, 80), " layer=",
                         request.layer()));
}

absl::Status RunMultiHeadAttend(const pb::MultiHeadAttendRequest& request,
                                const AttendLimits& limits, const MultiHeadAttention& layer,
                                const WeightRegistry& registry, pb::AttendResponse* response,
                                CallContext* call) {
  // (With session_id, gRPC calls go to RunMultiHeadSessionStep; the HTTP gateway's do not.)
  if (!request.session_id().empty()) {
    return absl::UnimplementedError(
        "MultiHeadAttend on a session (session_id) is served over gRPC only");
  }
  if (request.layer() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer = ", request.layer(), " but session_id is empty: layer selects a session's layer"));
  }
  absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> weights =
      ResolveMultiHeadWeights(request, limits.max_elements, registry);
  if (!weights.ok()) return weights.status();
  const MultiHeadDims& md = (*weights)->dims();

  const bool self_attention = !request.has_context();
  if (absl::Status s = CheckEmbeddings("input", ShapeOf(request.input()), md.d_model,
                                       "d_model (w_q.shape[0])");
      !s.ok()) {
    return s;
  }
  const int64_t batch = request.input().shape(0), q_len = request.input().shape(1);
  int64_t kv_len = q_len;
  if (self_attention) {
    if (md.d_ctx != md.d_model) {
      return absl::InvalidArgumentError(absl::StrCat(
          "context is absent (self-attention) but the weights' d_ctx = w_k.shape[0] = ", md.d_ctx,
          " differs from d_model = ", md.d_model));
    }
  } else {
    if (absl::Status s = CheckEmbeddings("context", ShapeOf(request.context()), md.d_ctx,
                                       "d_ctx (w_k.shape[0])");
        !s.ok()) {
      return s;
    }
    if (request.context().shape(0) != batch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "context.shape[0] = ", request.context().shape(0), " but input.shape[0] = ", batch));
    }
    if (request.context().dtype() != request.input().dtype()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input and context must share one dtype; got input.dtype = ",
          pb::DataType_Name(request.input().dtype()), ", context.dtype = ",
          pb::DataType_Name(request.context().dtype())));
    }
    kv_len = request.context().shape(1);
  }
  absl::StatusOr<MapsWanted> maps = ParseMaps(request.attention_maps());
  if (!maps.ok()) return maps.status();
  absl::StatusOr<DType> output_dtype = ParseOutputDtype(request.output_dtype());
  if (!output_dtype.ok()) return output_dtype.status();
  absl::StatusOr<bool> bf16 = ParseBf16Compute(request.compute_dtype());
  if (!bf16.ok()) return bf16.status();
  absl::StatusOr<float> scale = ParseScale(request.has_scale(), request.scale(), md.head_dim);
  if (!scale.ok()) return scale.status();

  const int64_t output_shape[] = {batch, q_len, md.d_out};
  const int64_t averaged_map_shape[] = {batch, q_len, kv_len};
  const int64_t map_shape[] = {batch, md.num_heads, q_len, kv_len};
  const std::span<const int64_t> response_map_shape =
      request.average_heads() ? std::span<const int64_t>(averaged_map_shape)
                              : std::span<const int64_t>(map_shape);
  if (absl::Status s =
          CheckResponseSize(output_shape, *output_dtype, response_map_shape, *maps, limits);
      !s.ok()) {
    return s;
  }
  for (const auto& [what, rows, cols] :
       {std::tuple{"the Q/K/V projection of input", batch * q_len,
                   md.query_width() + md.key_value_width()},
        std::tuple{"the K/V projection of context", batch * kv_len, md.key_value_width()},
        std::tuple{"the per-head attention maps", maps->count() > 0 ? batch * md.num_heads * q_len : 0,
                   kv_len}}) {
    if (absl::Status s = CheckIntermediate(what, rows, cols, limits); !s.ok()) return s;
  }
  const AttentionDims heads{.batch = batch, .heads = md.num_heads, .kv_heads = md.num_kv_heads,
                            .q_len = q_len, .kv_len = kv_len, .head_dim = md.head_dim,
                            .value_dim = md.value_dim};
  DecodedMask mask;
  if (absl::Status s = DecodeMask(request.mask(), heads, limits.max_elements, mask); !s.ok()) {
    return s;
  }
  absl::StatusOr<FloatTensor> input =
      DecodeFloatTensor("input", request.input(), limits.max_elements);
  if (!input.ok()) return input.status();
  FloatTensor context;
  if (!self_attention) {
    absl::StatusOr<FloatTensor> decoded =
        DecodeFloatTensor("context", request.context(), limits.max_elements);
    if (!decoded.ok()) return decoded.status();
    context = *std::move(decoded);
  }

  ResponseWriter writer(output_shape, *output_dtype, response_map_shape, *maps,
                        input->used_values, response);
  MultiHeadInputs in;
  in.batch = batch;
  in.q_len = q_len;
  in.kv_len = kv_len;
  in.input = input->data;
  in.context = self_attention ? nullptr : context.data;
  in.weights = weights->get();
  in.scale = *scale;
  in.mask = mask.spec;
  in.bf16_compute = *bf16;
  MultiHeadOutputs out{.output = writer.output(), .probabilities = writer.probabilities(),
                       .scores = writer.scores(), .average_heads = request.average_heads()};
  if (absl::Status s = layer.Run(in, out, call != nullptr ? call->stop : StopCheck()); !s.ok()) {
    return s;
  }
  writer.Finish();
  if (call != nullptr) call->flops += AttentionFlops(heads);
  return absl::OkStatus();
}

}  // namespace attn
