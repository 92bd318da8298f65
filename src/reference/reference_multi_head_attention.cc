// Double-precision reference multi-head attention (see reference_multi_head_attention.h).
#include "src/reference/reference_multi_head_attention.h"

#include <cmath>

#include "src/reference/reference_attention.h"

namespace attn {
namespace {

// out[b,head,row,t] = sum_c x[b,row,c] * w[c, head*width + t] + bias[head*width + t], i.e. the
// projection x W + b split into heads of `width` columns, laid out [B,heads,rows,width].
std::vector<double> ProjectHeads(const float* x, int64_t batch, int64_t rows, int64_t in_width,
                                 std::span<const float> w, std::span<const float> bias,
                                 int64_t heads, int64_t width) {
  const int64_t cols = heads * width;
  std::vector<double> out(batch * heads * rows * width);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t col = 0; col < cols; ++col) {
        double sum = bias.empty() ? 0.0 : double{bias[col]};
        for (int64_t c = 0; c < in_width; ++c) {
          sum += double{x[(b * rows + r) * in_width + c]} * double{w[c * cols + col]};
        }
        const int64_t head = col / width, t = col % width;
        out[((b * heads + head) * rows + r) * width + t] = sum;
      }
  return out;
}

std::vector<double> AverageOverHeads(const std::vector<double>& maps, int64_t batch,
                                     int64_t heads, int64_t per_head) {
  std::vector<double> avg(batch * per_head, 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t e = 0; e < per_head; ++e) {
        avg[b * per_head + e] += maps[(b * heads + h) * per_head + e] / double(heads);
      }
  return avg;
}

}  // namespace

ReferenceMultiHeadResult ReferenceMultiHeadAttention(const MultiHeadDims& md,
                                                     const WeightValues& w, int64_t batch,
                                                     int64_t q_len, int64_t kv_len,
                                                     const float* input, const float* context,
                                                     double scale, const MaskSpec& mask,
                                                     bool average_heads) {
  if (context == nullptr) context = input;
  const int64_t H = md.num_heads, Hkv = md.num_kv_heads, D = md.head_dim, Dv = md.value_dim;
  // Q = input W_q + b_q, K = context W_k + b_k, V = context W_v + b_v, split into heads
  const std::vector<double> q = ProjectHeads(input, batch, q_len, md.d_model, w.w_q, w.b_q, H, D);
  const std::vector<double> k = ProjectHeads(context, batch, kv_len, md.d_ctx, w.w_k, w.b_k, Hkv, D);
  const std::vector<double> v =
      ProjectHeads(context, batch, kv_len, md.d_ctx, w.w_v, w.b_v, Hkv, Dv);
  // O_h = softmax(Q_h K_g^T * scale + mask) V_g
  const AttentionDims dims{.batch = batch, .heads = H, .kv_heads = Hkv, .q_len = q_len,
                           .kv_len = kv_len, .head_dim = D, .value_dim = Dv};
  ReferenceResult heads = ReferenceAttention(dims, q.data(), k.data(), v.data(), scale, mask);

  // concat[b,i,h*Dv+t] = O[b,h,i,t]
  const int64_t rows = batch * q_len, concat_width = H * Dv;
  std::vector<double> concat(rows * concat_width);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < q_len; ++i)
        for (int64_t t = 0; t < Dv; ++t) {
          concat[(b * q_len + i) * concat_width + h * Dv + t] =
              heads.output[((b * H + h) * q_len + i) * Dv + t];
        }
  // y = concat W_o + b_o, or concat
  std::vector<double> y = concat;
  if (md.has_output_projection) {
    y.assign(rows * md.d_out, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < md.d_out; ++o) {
        double sum = w.b_o.empty() ? 0.0 : double{w.b_o[o]};
        for (int64_t c = 0; c < concat_width; ++c) {
          sum += concat[r * concat_width + c] * double{w.w_o[c * md.d_out + o]};
        }
        y[r * md.d_out + o] = sum;
      }
  }
  // output = LayerNorm(input + y) * gamma + beta (population variance, as PyTorch)
  if (md.has_add_norm) {
    for (int64_t r = 0; r < rows; ++r) {
      double* z = &y[r * md.d_model];
      double mean = 0.0, variance = 0.0;
      for (int64_t c = 0; c < md.d_model; ++c) {
        z[c] += double{input[r * md.d_model + c]};
        mean += z[c] / double(md.d_model);
      }
      for (int64_t c = 0; c < md.d_model; ++c) variance += (z[c] - mean) * (z[c] - mean);
      variance /= double(md.d_model);
      const double inv = 1.0 / std::sqrt(variance + double{md.epsilon});
      for (int64_t c = 0; c < md.d_model; ++c) {
        z[c] = (z[c] - mean) * inv * double{w.gamma[c]} + double{w.beta[c]};
      }
    }
  }
  ReferenceMultiHeadResult result;
  result.output = std::move(y);
  if (average_heads) {
    result.probabilities = AverageOverHeads(heads.probabilities, batch, H, q_len * kv_len);
    result.scores = AverageOverHeads(heads.scores, batch, H, q_len * kv_len);
  } else {
    result.probabilities = std::move(heads.probabilities);
    result.scores = std::move(heads.scores);
  }
  return result;
}

}  // namespace attn
