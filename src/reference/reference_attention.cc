// Double-precision reference attention (see reference_attention.h). Written as the math reads:
// one (batch, head, query) row at a time, no blocking, no fusion, no oneDNN.
#include "src/reference/reference_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attn {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Whether key j may be attended by query i of head h in batch b (ignoring a -inf bias).
bool Allowed(const MaskSpec& mask, const AttentionDims& d, int64_t b, int64_t h, int64_t i,
             int64_t j) {
  if (mask.causal == CausalKind::kUpperLeft && j > i) return false;
  if (mask.causal == CausalKind::kLowerRight && j > i + (d.kv_len - d.q_len)) return false;
  if (!mask.key_lengths.empty() && j >= mask.key_lengths[b]) return false;
  if (mask.allowed != nullptr) {
    const BroadcastStrides& s = mask.allowed_strides;
    if (mask.allowed[b * s[0] + h * s[1] + i * s[2] + j * s[3]] == 0) return false;
  }
  return true;
}

double Bias(const MaskSpec& mask, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (mask.bias == nullptr) return 0.0;
  const BroadcastStrides& s = mask.bias_strides;
  return mask.bias[b * s[0] + h * s[1] + i * s[2] + j * s[3]];
}

// The math of API.md over dense [B,H,Sq,D], [B,Hkv,Sk,D], [B,Hkv,Sk,Dv] arrays of float or double.
template <typename T>
ReferenceResult Compute(const AttentionDims& d, const T* query, const T* key, const T* value,
                        double scale, const MaskSpec& mask) {
  const int64_t group = d.heads / d.kv_heads;
  ReferenceResult result;
  result.output.assign(d.batch * d.heads * d.q_len * d.value_dim, 0.0);
  result.probabilities.assign(d.batch * d.heads * d.q_len * d.kv_len, 0.0);
  result.scores.assign(d.batch * d.heads * d.q_len * d.kv_len, kNegInf);

  for (int64_t b = 0; b < d.batch; ++b) {
    for (int64_t h = 0; h < d.heads; ++h) {
      const int64_t kv = h / group;
      const T* k = key + (b * d.kv_heads + kv) * d.kv_len * d.head_dim;
      const T* v = value + (b * d.kv_heads + kv) * d.kv_len * d.value_dim;
      for (int64_t i = 0; i < d.q_len; ++i) {
        const int64_t row = (b * d.heads + h) * d.q_len + i;
        const T* q = query + row * d.head_dim;
        double* scores = &result.scores[row * d.kv_len];
        double* probs = &result.probabilities[row * d.kv_len];
        double* out = &result.output[row * d.value_dim];

        // s = scale * q.k + bias, -inf where forbidden
        double max_score = kNegInf;
        for (int64_t j = 0; j < d.kv_len; ++j) {
          if (!Allowed(mask, d, b, h, i, j)) continue;
          double dot = 0.0;
          for (int64_t t = 0; t < d.head_dim; ++t) {
            dot += static_cast<double>(q[t]) * static_cast<double>(k[j * d.head_dim + t]);
          }
          scores[j] = scale * dot + Bias(mask, b, h, i, j);
          max_score = std::max(max_score, scores[j]);
        }
        if (max_score == kNegInf) continue;  // every key forbidden: P = 0, out = 0

        // P = softmax(s), shifted by the row maximum
        double sum = 0.0;
        for (int64_t j = 0; j < d.kv_len; ++j) {
          probs[j] = scores[j] == kNegInf ? 0.0 : std::exp(scores[j] - max_score);
          sum += probs[j];
        }
        for (int64_t j = 0; j < d.kv_len; ++j) probs[j] /= sum;

        // O = P V
        for (int64_t j = 0; j < d.kv_len; ++j) {
          for (int64_t c = 0; c < d.value_dim; ++c) out[c] += probs[j] * v[j * d.value_dim + c];
        }
      }
    }
  }
  return result;
}

}  // namespace

ReferenceResult ReferenceAttention(const AttentionInputs& in) {
  return Compute(in.dims, in.query, in.key, in.value, double{in.scale}, in.mask);
}

ReferenceResult ReferenceAttention(const AttentionDims& dims, const double* query,
                                   const double* key, const double* value, double scale,
                                   const MaskSpec& mask) {
  return Compute(dims, query, key, value, scale, mask);
}

}  // namespace attn
