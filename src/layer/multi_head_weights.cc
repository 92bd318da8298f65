// Validation and packing of multi-head attention weights (see multi_head_weights.h).
#include "src/layer/multi_head_weights.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace attn {
namespace {

std::string ShapeString(std::span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// Checks a rank and dims >= 1 of a present tensor.
absl::Status CheckRank(const std::string& field, std::span<const int64_t> shape, size_t rank) {
  if (shape.size() != rank) {
    return absl::InvalidArgumentError(absl::StrCat(field, " has shape ", ShapeString(shape),
                                                   "; expected rank ", rank));
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 1 || shape[i] > (int64_t{1} << 40)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".shape[", i, "] = ", shape[i], " must be in [1, 2^40]"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDim(const std::string& field, std::span<const int64_t> shape, size_t dim,
                      int64_t want, const std::string& what) {
  if (shape[dim] != want) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".shape[", dim, "] = ", shape[dim], " but ", what, " = ", want));
  }
  return absl::OkStatus();
}

// A 1-D tensor of `want` elements, when present.
absl::Status CheckVector(const std::string& field, std::span<const int64_t> shape, int64_t want,
                         const std::string& what) {
  if (shape.empty()) return absl::OkStatus();
  if (absl::Status s = CheckRank(field, shape, 1); !s.ok()) return s;
  return CheckDim(field, shape, 0, want, what);
}

// Copies a rows x cols row-major matrix into `dst` with row stride `dst_stride`.
void CopyMatrix(std::span<const float> src, int64_t rows, int64_t cols, float* dst,
                int64_t dst_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(src.data() + r * cols, cols, dst + r * dst_stride);
  }
}

void CopyOrZero(std::span<const float> src, int64_t count, float* dst) {
  if (src.empty()) {
    std::fill_n(dst, count, 0.0f);
  } else {
    std::copy_n(src.data(), count, dst);
  }
}

}  // namespace

absl::StatusOr<MultiHeadDims> InferMultiHeadDims(const std::string& prefix,
                                                 const WeightShapes& shapes, int64_t num_heads,
                                                 int64_t num_kv_heads, bool has_add_norm,
                                                 float epsilon) {
  MultiHeadDims d;
  if (num_heads < 1 || num_heads > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "num_heads = ", num_heads, " must be in [1, 65536]"));
  }
  if (num_kv_heads == 0) num_kv_heads = num_heads;
  if (num_kv_heads < 1 || num_heads % num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "num_heads = ", num_heads, " is not a multiple of ", prefix,
                     "num_kv_heads = ", num_kv_heads));
  }
  d.num_heads = num_heads;
  d.num_kv_heads = num_kv_heads;
  const std::string w_q = prefix + "w_q", w_k = prefix + "w_k", w_v = prefix + "w_v",
                    w_o = prefix + "w_o";
  for (const auto& [field, shape] : {std::pair{w_q, shapes.w_q}, std::pair{w_k, shapes.w_k},
                                     std::pair{w_v, shapes.w_v}}) {
    if (shape.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is missing"));
    if (absl::Status s = CheckRank(field, shape, 2); !s.ok()) return s;
  }
  d.d_model = shapes.w_q[0];
  if (shapes.w_q[1] % num_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(w_q, ".shape[1] = ", shapes.w_q[1],
                                                   " is not a multiple of num_heads = ",
                                                   num_heads));
  }
  d.head_dim = shapes.w_q[1] / num_heads;
  d.d_ctx = shapes.w_k[0];
  if (absl::Status s = CheckDim(w_k, shapes.w_k, 1, num_kv_heads * d.head_dim,
                                absl::StrCat("num_kv_heads * head_dim = ", num_kv_heads, " * ",
                                             d.head_dim));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckDim(w_v, shapes.w_v, 0, d.d_ctx, w_k + ".shape[0]"); !s.ok()) return s;
  if (shapes.w_v[1] % num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(w_v, ".shape[1] = ", shapes.w_v[1],
                                                   " is not a multiple of num_kv_heads = ",
                                                   num_kv_heads));
  }
  d.value_dim = shapes.w_v[1] / num_kv_heads;
  d.d_out = d.concat_width();
  if (!shapes.w_o.empty()) {
    if (absl::Status s = CheckRank(w_o, shapes.w_o, 2); !s.ok()) return s;
    if (absl::Status s = CheckDim(w_o, shapes.w_o, 0, d.concat_width(),
                                  absl::StrCat("num_heads * value_dim = ", num_heads, " * ",
                                               d.value_dim));
        !s.ok()) {
      return s;
    }
    d.has_output_projection = true;
    d.d_out = shapes.w_o[1];
  } else if (!shapes.b_o.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "b_o is set but ", w_o, " is not"));
  }
  for (const auto& [field, shape, want, what] :
       {std::tuple{prefix + "b_q", shapes.b_q, d.query_width(), std::string("num_heads * head_dim")},
        std::tuple{prefix + "b_k", shapes.b_k, num_kv_heads * d.head_dim,
                   std::string("num_kv_heads * head_dim")},
        std::tuple{prefix + "b_v", shapes.b_v, num_kv_heads * d.value_dim,
                   std::string("num_kv_heads * value_dim")},
        std::tuple{prefix + "b_o", shapes.b_o, d.d_out, std::string("d_out")}}) {
    if (absl::Status s = CheckVector(field, shape, want, what); !s.ok()) return s;
  }
  if (has_add_norm) {
    if (d.d_out != d.d_model) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, "add_norm needs d_out = d_model, but d_out = ", d.d_out, " and d_model = ",
          d.d_model, " (", prefix, "w_q.shape[0])"));
    }
    for (const auto& [field, shape] : {std::pair{prefix + "add_norm.gamma", shapes.gamma},
                                       std::pair{prefix + "add_norm.beta", shapes.beta}}) {
      if (shape.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is missing"));
      if (absl::Status s = CheckVector(field, shape, d.d_model, "d_model"); !s.ok()) return s;
    }
    if (!std::isfinite(epsilon) || epsilon <= 0.0f) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, "add_norm.epsilon = ", epsilon,
                                                     " must be finite and > 0"));
    }
    d.has_add_norm = true;
    d.epsilon = epsilon;
  }
  return d;
}

std::shared_ptr<const MultiHeadWeights> MultiHeadWeights::Create(const MultiHeadDims& dims,
                                                                 const WeightValues& values) {
  std::shared_ptr<MultiHeadWeights> w(new MultiHeadWeights(dims));
  const int64_t nq = dims.query_width(), nk = dims.num_kv_heads * dims.head_dim,
                nv = dims.num_kv_heads * dims.value_dim;
  if (w->fused_qkv()) {
    const int64_t n = nq + nk + nv;
    w->projection_.resize(dims.d_model * n);
    CopyMatrix(values.w_q, dims.d_model, nq, w->projection_.data(), n);
    CopyMatrix(values.w_k, dims.d_model, nk, w->projection_.data() + nq, n);
    CopyMatrix(values.w_v, dims.d_model, nv, w->projection_.data() + nq + nk, n);
  } else {
    const int64_t nkv = nk + nv;
    w->projection_.resize(dims.d_model * nq + dims.d_ctx * nkv);
    float* kv = w->projection_.data() + dims.d_model * nq;
    CopyMatrix(values.w_q, dims.d_model, nq, w->projection_.data(), nq);
    CopyMatrix(values.w_k, dims.d_ctx, nk, kv, nkv);
    CopyMatrix(values.w_v, dims.d_ctx, nv, kv + nk, nkv);
  }
  w->bias_.resize(nq + nk + nv);
  CopyOrZero(values.b_q, nq, w->bias_.data());
  CopyOrZero(values.b_k, nk, w->bias_.data() + nq);
  CopyOrZero(values.b_v, nv, w->bias_.data() + nq + nk);
  if (dims.has_output_projection) {
    w->output_projection_.assign(values.w_o.begin(), values.w_o.end());
    w->output_bias_.resize(dims.d_out);
    CopyOrZero(values.b_o, dims.d_out, w->output_bias_.data());
  }
  if (dims.has_add_norm) {
    w->gamma_.assign(values.gamma.begin(), values.gamma.end());
    w->beta_.assign(values.beta.begin(), values.beta.end());
  }
  return w;
}

MatrixView MultiHeadWeights::qkv() const {
  const int64_t n = dims_.query_width() + dims_.key_value_width();
  return {projection_.data(), dims_.d_model, n, n};
}

MatrixView MultiHeadWeights::query() const {
  if (fused_qkv()) return {projection_.data(), dims_.d_model, dims_.query_width(), qkv().cols};
  return {projection_.data(), dims_.d_model, dims_.query_width(), dims_.query_width()};
}

MatrixView MultiHeadWeights::key_value() const {
  const int64_t nkv = dims_.key_value_width();
  if (fused_qkv()) {
    return {projection_.data() + dims_.query_width(), dims_.d_ctx, nkv, qkv().cols};
  }
  return {projection_.data() + dims_.d_model * dims_.query_width(), dims_.d_ctx, nkv, nkv};
}

MatrixView MultiHeadWeights::output_projection() const {
  return {output_projection_.data(), dims_.concat_width(), dims_.d_out, dims_.d_out};
}

int64_t MultiHeadWeights::bytes() const {
  const size_t floats = projection_.size() + bias_.size() + output_projection_.size() +
                        output_bias_.size() + gamma_.size() + beta_.size();
  return static_cast<int64_t>(floats * sizeof(float));
}

}  // namespace attn
