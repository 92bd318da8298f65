// A Transformer attention layer on oneDNN (see multi_head_attention.h).
#include "src/layer/multi_head_attention.h"

#include <algorithm>
#include <vector>

namespace attn {
namespace {

// avg[b,i,j] = mean over h of maps[b,h,i,j].
void AverageOverHeads(const std::vector<float>& maps, int64_t batch, int64_t heads,
                      int64_t per_head, float* avg) {
  for (int64_t b = 0; b < batch; ++b) {
    float* dst = avg + b * per_head;
    const float* src = maps.data() + b * heads * per_head;
    for (int64_t e = 0; e < per_head; ++e) dst[e] = src[e];
    for (int64_t h = 1; h < heads; ++h) {
      for (int64_t e = 0; e < per_head; ++e) dst[e] += src[h * per_head + e];
    }
    for (int64_t e = 0; e < per_head; ++e) dst[e] /= static_cast<float>(heads);
  }
}

}  // namespace

MultiHeadAttention::MultiHeadAttention(const AttentionEngine& engine,
                                       size_t primitive_cache_capacity)
    : engine_(engine), dense_(primitive_cache_capacity) {}

absl::Status MultiHeadAttention::Run(const MultiHeadInputs& in, const MultiHeadOutputs& out,
                                     const StopCheck& stop) const {
  auto stopped = [&stop]() { return stop ? stop() : absl::OkStatus(); };
  const MultiHeadWeights& w = *in.weights;
  const MultiHeadDims& md = w.dims();
  const int64_t batch = in.batch, q_len = in.q_len, kv_len = in.kv_len;
  const int64_t nq = md.query_width(), nk = md.num_kv_heads * md.head_dim,
                nkv = md.key_value_width();
  const bool self_attention = in.context == nullptr;

  std::vector<float> projected;
  const float *q = nullptr, *k = nullptr, *v = nullptr;
  int64_t q_stride = 0, kv_stride = 0;
  if (self_attention && w.fused_qkv()) {
    // [Q | K | V] = input [W_q | W_k | W_v] + [b_q | b_k | b_v], one GEMM
    const int64_t n = nq + nkv;
    projected.resize(batch * q_len * n);
    if (absl::Status s = dense_.Linear({in.input, batch * q_len, md.d_model, md.d_model}, w.qkv(),
                                       w.qkv_bias(), nullptr,
                                       {projected.data(), batch * q_len, n, n});
        !s.ok()) {
      return s;
    }
    q = projected.data();
    q_stride = kv_stride = n;
  } else {
    const float* context = self_attention ? in.input : in.context;
    projected.resize(batch * q_len * nq + batch * kv_len * nkv);
    float* kv_out = projected.data() + batch * q_len * nq;
    // Q = input W_q + b_q
    if (absl::Status s = dense_.Linear({in.input, batch * q_len, md.d_model, md.d_model},
                                       w.query(), w.query_bias(), nullptr,
                                       {projected.data(), batch * q_len, nq, nq});
        !s.ok()) {
      return s;
    }
    // [K | V] = context [W_k | W_v] + [b_k | b_v]
    if (absl::Status s = dense_.Linear({context, batch * kv_len, md.d_ctx, md.d_ctx},
                                       w.key_value(), w.key_value_bias(), nullptr,
                                       {kv_out, batch * kv_len, nkv, nkv});
        !s.ok()) {
      return s;
    }
    q = projected.data();
    q_stride = nq;
    kv_stride = nkv;
  }
  if (absl::Status s = stopped(); !s.ok()) return s;
  k = self_attention && w.fused_qkv() ? q + nq : projected.data() + batch * q_len * nq;
  v = k + nk;

  // O_h = softmax(Q_h K_g^T * scale + mask) V_g for every head h (g = h / G), on strided views
  AttentionInputs heads_in;
  heads_in.dims = {.batch = batch, .heads = md.num_heads, .kv_heads = md.num_kv_heads,
                   .q_len = q_len, .kv_len = kv_len, .head_dim = md.head_dim,
                   .value_dim = md.value_dim};
  heads_in.query = q;
  heads_in.key = k;
  heads_in.value = v;
  heads_in.query_strides = {.batch = q_len * q_stride, .head = md.head_dim, .row = q_stride};
  heads_in.key_strides = {.batch = kv_len * kv_stride, .head = md.head_dim, .row = kv_stride};
  heads_in.value_strides = {.batch = kv_len * kv_stride, .head = md.value_dim, .row = kv_stride};
  heads_in.scale = in.scale;
  heads_in.mask = in.mask;
  heads_in.bf16_compute = in.bf16_compute;

  // concat(O_1..O_H) is [B,Sq,H*Dv]: each head writes its own columns.
  const int64_t concat_width = md.concat_width();
  const bool heads_are_output = !md.has_output_projection && !md.has_add_norm;
  std::vector<float> concat;
  if (!heads_are_output) concat.resize(batch * q_len * concat_width);
  AttentionOutputs heads_out;
  heads_out.output = heads_are_output ? out.output : concat.data();
  heads_out.output_strides = {.batch = q_len * concat_width, .head = md.value_dim,
                              .row = concat_width};
  const int64_t map_per_head = q_len * kv_len;
  std::vector<float> all_probabilities, all_scores;
  if (out.average_heads) {
    if (out.probabilities != nullptr) {
      all_probabilities.resize(batch * md.num_heads * map_per_head);
      heads_out.probabilities = all_probabilities.data();
    }
    if (out.scores != nullptr) {
      all_scores.resize(batch * md.num_heads * map_per_head);
      heads_out.scores = all_scores.data();
    }
  } else {
    heads_out.probabilities = out.probabilities;
    heads_out.scores = out.scores;
  }
  if (absl::Status s = engine_.Run(heads_in, heads_out, stop); !s.ok()) return s;
  if (!all_probabilities.empty()) {
    AverageOverHeads(all_probabilities, batch, md.num_heads, map_per_head, out.probabilities);
  }
  if (!all_scores.empty()) {
    AverageOverHeads(all_scores, batch, md.num_heads, map_per_head, out.scores);
  }
  if (heads_are_output) return absl::OkStatus();
  return FinishHeads(concat.data(), in.input, batch * q_len, w, out.output);
}

absl::Status MultiHeadAttention::Project(const float* input, int64_t rows,
                                         const MultiHeadWeights& w, float* q, float* k,
                                         float* v) const {
  const MultiHeadDims& md = w.dims();
  const int64_t nq = md.query_width(), nk = md.num_kv_heads * md.head_dim,
                nv = md.num_kv_heads * md.value_dim, width = nq + nk + nv;
  // [Q | K | V] = input [W_q | W_k | W_v] + [b_q | b_k | b_v], one GEMM, then split
  std::vector<float> projected(rows * width);
  if (absl::Status s = dense_.Linear({input, rows, md.d_model, md.d_model}, w.qkv(),
                                     w.qkv_bias(), nullptr, {projected.data(), rows, width, width});
      !s.ok()) {
    return s;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = projected.data() + r * width;
    std::copy_n(row, nq, q + r * nq);
    std::copy_n(row + nq, nk, k + r * nk);
    std::copy_n(row + nq + nk, nv, v + r * nv);
  }
  return absl::OkStatus();
}

absl::Status MultiHeadAttention::FinishHeads(const float* concat, const float* input,
                                             int64_t rows, const MultiHeadWeights& w,
                                             float* output) const {
  const MultiHeadDims& md = w.dims();
  const int64_t concat_width = md.concat_width();
  if (!md.has_output_projection && !md.has_add_norm) {
    std::copy_n(concat, rows * concat_width, output);
    return absl::OkStatus();
  }
  // y = concat W_o + b_o (+ input when Add & Norm follows), or y = concat (+ input)
  std::vector<float> pre_norm;
  float* y = output;
  if (md.has_add_norm) {
    pre_norm.resize(rows * md.d_out);
    y = pre_norm.data();
  }
  if (md.has_output_projection) {
    if (absl::Status s = dense_.Linear({concat, rows, concat_width, concat_width},
                                       w.output_projection(), w.output_bias(),
                                       md.has_add_norm ? input : nullptr,
                                       {y, rows, md.d_out, md.d_out});
        !s.ok()) {
      return s;
    }
  } else {
    for (int64_t e = 0; e < rows * md.d_out; ++e) y[e] = concat[e] + input[e];
  }
  if (!md.has_add_norm) return absl::OkStatus();
  // output = LayerNorm(input + attention_output) * gamma + beta
  return dense_.LayerNorm(y, rows, md.d_model, w.gamma(), w.beta(), md.epsilon, output);
}

}  // namespace attn
