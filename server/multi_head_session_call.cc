// MultiHeadAttend on a session (see multi_head_session_call.h).
#include "server/multi_head_session_call.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/tensor_codec.h"
#include "server/multi_head_call.h"
#include "server/response_writer.h"

namespace attn {
namespace {

namespace pb = attention::v1;

// What a session step through MultiHeadAttend cannot take.
absl::Status CheckSessionRequest(const pb::MultiHeadAttendRequest& request) {
  if (request.input().shape(0) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input.shape[0] = ", request.input().shape(0),
        " but a session holds one sequence: input must be [1, n, d_model]"));
  }
  if (request.has_context()) {
    return absl::InvalidArgumentError(
        "context must be absent on a session: it caches its own tokens' keys and values");
  }
  const pb::Mask& mask = request.mask();
  if ((mask.causal() != pb::CAUSAL_NONE && mask.causal() != pb::CAUSAL_LOWER_RIGHT) ||
      mask.key_lengths_size() > 0 || mask.has_allowed() || mask.has_bias()) {
    return absl::InvalidArgumentError(
        "mask must be empty on a session: each new token attends to every cached position up "
        "to its own (lower-right causal)");
  }
  if ((request.attention_maps() != pb::ATTENTION_MAPS_DEFAULT &&
       request.attention_maps() != pb::ATTENTION_MAPS_NONE) ||
      request.average_heads()) {
    return absl::UnimplementedError(
        "attention_maps on a session through MultiHeadAttend: use NONE, or SessionAttend for "
        "maps");
  }
  return absl::OkStatus();
}

// dst [b][a][c] = src [a][b][c] for src [a, b, c] (token-major <-> head-major).
std::vector<float> SwapFirstTwo(const float* src, int64_t a, int64_t b, int64_t c) {
  std::vector<float> dst(a * b * c);
  for (int64_t i = 0; i < a; ++i) {
    for (int64_t j = 0; j < b; ++j) std::copy_n(src + (i * b + j) * c, c, &dst[(j * a + i) * c]);
  }
  return dst;
}

// `tensor` = the [heads, n, dim] head-major copy of token-major rows [n, heads * dim].
void EncodeHeads(const std::vector<float>& rows, int64_t n, int64_t heads, int64_t dim,
                 pb::Tensor* tensor) {
  const std::vector<float> head_major = SwapFirstTwo(rows.data(), n, heads, dim);
  const int64_t shape[] = {heads, n, dim};
  EncodeFloatTensor(shape, head_major.data(), DType::kFloat32, false, tensor);
}

}  // namespace

absl::Status RunMultiHeadSessionStep(const pb::MultiHeadAttendRequest& request,
                                     const AttendLimits& limits, const MultiHeadAttention& layer,
                                     const WeightRegistry& registry, SessionTurns& turns,
                                     SessionStore& store, const AttentionEngine& engine,
                                     pb::AttendResponse* response, CallContext* call) {
  absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> weights =
      ResolveMultiHeadWeights(request, limits.max_elements, registry);
  if (!weights.ok()) return weights.status();
  const MultiHeadDims& md = (*weights)->dims();
  if (absl::Status s = CheckEmbeddings("input", ShapeOf(request.input()), md.d_model,
                                       "d_model (w_q.shape[0])");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckSessionRequest(request); !s.ok()) return s;
  if (md.d_ctx != md.d_model) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a session step is self-attention but the weights' d_ctx = w_k.shape[0] = ", md.d_ctx,
        " differs from d_model = ", md.d_model));
  }
  const SessionConfig& config = turns.session(0).config;
  if (config.num_heads != md.num_heads || config.num_kv_heads != md.num_kv_heads ||
      config.head_dim != md.head_dim || config.value_dim != md.value_dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the weights' heads and dims (num_heads ", md.num_heads, ", num_kv_heads ",
        md.num_kv_heads, ", head_dim ", md.head_dim, ", value_dim ", md.value_dim,
        ") are not session ", request.session_id(), "'s (", config.num_heads, ", ",
        config.num_kv_heads, ", ", config.head_dim, ", ", config.value_dim, ")"));
  }
  absl::StatusOr<DType> output_dtype = ParseOutputDtype(request.output_dtype());
  if (!output_dtype.ok()) return output_dtype.status();
  const int64_t n = request.input().shape(1);
  const int64_t output_shape[] = {1, n, md.d_out};
  const int64_t no_maps[] = {1};  // (none asked for)
  if (absl::Status s = CheckResponseSize(output_shape, *output_dtype, no_maps, MapsWanted{}, limits);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckIntermediate("the Q/K/V projection of input", n,
                                         md.query_width() + md.key_value_width(), limits);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<FloatTensor> input =
      DecodeFloatTensor("input", request.input(), limits.max_elements);
  if (!input.ok()) return input.status();

  // Q, K, V of the new tokens (token-major), sent to the session's layer as a step.
  const int64_t h = md.num_heads, hkv = md.num_kv_heads;
  std::vector<float> q(n * h * md.head_dim), k(n * hkv * md.head_dim), v(n * hkv * md.value_dim);
  if (absl::Status s = layer.Project(input->data, n, **weights, q.data(), k.data(), v.data());
      !s.ok()) {
    return s;
  }
  pb::SessionAttendRequest step;
  step.set_session_id(request.session_id());
  step.set_layer(request.layer());
  step.set_attention_maps(pb::ATTENTION_MAPS_NONE);
  step.set_compute_dtype(request.compute_dtype());
  if (request.has_scale()) step.set_scale(request.scale());
  EncodeHeads(q, n, h, md.head_dim, step.mutable_query());
  EncodeHeads(k, n, hkv, md.head_dim, step.mutable_key());
  EncodeHeads(v, n, hkv, md.value_dim, step.mutable_value());
  SessionAnswer answer;
  const pb::SessionAttendRequest* steps[] = {&step};
  SessionAnswer* answers[] = {&answer};
  if (absl::Status s = RunSessionSteps(steps, turns, store, engine, limits, answers, call, false);
      !s.ok()) {
    return s;
  }

  // The heads' outputs [H, n, Dv] concatenated per token, then W_o and Add & Norm.
  absl::StatusOr<FloatTensor> heads =
      DecodeFloatTensor("output", answer.tensors.output(), limits.max_elements);
  if (!heads.ok()) return heads.status();
  const std::vector<float> concat = SwapFirstTwo(heads->data, h, n, md.value_dim);
  ResponseWriter writer(output_shape, *output_dtype, no_maps, MapsWanted{}, input->used_values,
                        response);
  if (absl::Status s = layer.FinishHeads(concat.data(), input->data, n, **weights,
                                         writer.output());
      !s.ok()) {
    return s;
  }
  writer.Finish();
  return absl::OkStatus();
}

}  // namespace attn
