// Seeded random MultiHeadAttend requests and their reference check (see random_multi_head.h).
#include "client/random_multi_head.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "proto/tensor_codec.h"
#include "src/reference/reference_multi_head_attention.h"

namespace attn {
namespace {

namespace pb = attention::v1;

std::vector<float> Normal(int64_t count, float scale, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = scale * normal(rng);
  return values;
}

pb::Tensor TensorOf(std::vector<int64_t> shape, const std::vector<float>& values) {
  pb::Tensor tensor;
  EncodeFloatTensor(shape, values.data(), DType::kFloat32, false, &tensor);
  return tensor;
}

double MaxAbsError(const pb::Tensor& got, const std::vector<double>& want) {
  absl::StatusOr<FloatTensor> decoded = DecodeFloatTensor("got", got, int64_t{1} << 40);
  if (!decoded.ok() || decoded->count != static_cast<int64_t>(want.size())) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i]) && decoded->data[i] == want[i]) continue;
    worst = std::max(worst, std::abs(double(decoded->data[i]) - want[i]));
  }
  return worst;
}

}  // namespace

RandomMultiHead MakeRandomMultiHead(const RandomMultiHeadSpec& spec) {
  RandomMultiHead out;
  out.spec = spec;
  const int64_t heads = spec.heads, kv_heads = spec.kv_heads > 0 ? spec.kv_heads : spec.heads;
  const int64_t d = spec.d_model / heads, d_model = spec.d_model;
  out.dims = {.num_heads = heads, .num_kv_heads = kv_heads, .d_model = d_model,
              .d_ctx = d_model, .head_dim = d, .value_dim = d, .d_out = d_model,
              .has_output_projection = true, .has_add_norm = spec.add_norm, .epsilon = 1e-5f};
  std::mt19937 rng(spec.seed);
  // Weights ~ N(0, 1/d_model) keep every activation of order 1.
  const float w = 1.0f / std::sqrt(float(d_model));
  out.input = Normal(spec.batch * spec.q_len * d_model, 1.0f, rng);
  out.w_q = Normal(d_model * heads * d, w, rng);
  out.w_k = Normal(d_model * kv_heads * d, w, rng);
  out.w_v = Normal(d_model * kv_heads * d, w, rng);
  out.w_o = Normal(heads * d * d_model, w, rng);
  out.b_q = Normal(heads * d, 0.1f, rng);
  out.b_k = Normal(kv_heads * d, 0.1f, rng);
  out.b_v = Normal(kv_heads * d, 0.1f, rng);
  out.b_o = Normal(d_model, 0.1f, rng);

  pb::MultiHeadAttendRequest& r = out.request;
  *r.mutable_input() = TensorOf({spec.batch, spec.q_len, d_model}, out.input);
  pb::Weights& weights = *r.mutable_weights();
  weights.set_num_heads(static_cast<int32_t>(heads));
  weights.set_num_kv_heads(static_cast<int32_t>(kv_heads));
  *weights.mutable_w_q() = TensorOf({d_model, heads * d}, out.w_q);
  *weights.mutable_w_k() = TensorOf({d_model, kv_heads * d}, out.w_k);
  *weights.mutable_w_v() = TensorOf({d_model, kv_heads * d}, out.w_v);
  *weights.mutable_w_o() = TensorOf({heads * d, d_model}, out.w_o);
  *weights.mutable_b_q() = TensorOf({heads * d}, out.b_q);
  *weights.mutable_b_k() = TensorOf({kv_heads * d}, out.b_k);
  *weights.mutable_b_v() = TensorOf({kv_heads * d}, out.b_v);
  *weights.mutable_b_o() = TensorOf({d_model}, out.b_o);
  if (spec.add_norm) {
    out.gamma = Normal(d_model, 1.0f, rng);
    out.beta = Normal(d_model, 1.0f, rng);
    *weights.mutable_add_norm()->mutable_gamma() = TensorOf({d_model}, out.gamma);
    *weights.mutable_add_norm()->mutable_beta() = TensorOf({d_model}, out.beta);
    weights.mutable_add_norm()->set_epsilon(1e-5f);
  }
  if (spec.causal) r.mutable_mask()->set_causal(pb::CAUSAL_UPPER_LEFT);
  r.set_average_heads(spec.average_heads);
  return out;
}

MultiHeadCheck CheckMultiHead(const RandomMultiHead& sent, const pb::AttendResponse& got) {
  const RandomMultiHeadSpec& spec = sent.spec;
  const WeightValues values{.w_q = sent.w_q, .w_k = sent.w_k, .w_v = sent.w_v, .w_o = sent.w_o,
                            .b_q = sent.b_q, .b_k = sent.b_k, .b_v = sent.b_v, .b_o = sent.b_o,
                            .gamma = sent.gamma, .beta = sent.beta};
  MaskSpec mask;
  if (spec.causal) mask.causal = CausalKind::kUpperLeft;
  const ReferenceMultiHeadResult want = ReferenceMultiHeadAttention(
      sent.dims, values, spec.batch, spec.q_len, spec.q_len, sent.input.data(), nullptr,
      1.0 / std::sqrt(double(sent.dims.head_dim)), mask, spec.average_heads);
  MultiHeadCheck check;
  check.output_max_abs_error = MaxAbsError(got.output(), want.output);
  check.probabilities_max_abs_error = MaxAbsError(got.attention(), want.probabilities);
  return check;
}

}  // namespace attn
