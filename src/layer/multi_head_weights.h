// The projection weights of one multi-head attention layer (W_q, W_k, W_v, optional W_o, biases
// and Add & Norm), validated against each other and packed for the projections: when the context
// width equals d_model, [W_q | W_k | W_v] is one matrix so self-attention projects Q, K and V in
// a single GEMM. Immutable after Create and shared by pointer, so a registry can replace or drop
// a weight set while requests still use it. Thread-safe (read-only).
#ifndef ATTNSERVE_SRC_LAYER_MULTI_HEAD_WEIGHTS_H_
#define ATTNSERVE_SRC_LAYER_MULTI_HEAD_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace attn {

// Shapes of the weight tensors as a caller sent them; an empty span means "absent".
struct WeightShapes {
  std::span<const int64_t> w_q, w_k, w_v, w_o;
  std::span<const int64_t> b_q, b_k, b_v, b_o;
  std::span<const int64_t> gamma, beta;
};

// Sizes of a layer: H heads of query/key size D and value size Dv over Hkv KV heads, input
// width d_model, context width d_ctx and output width d_out (H*Dv without W_o).
struct MultiHeadDims {
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t d_model = 0;
  int64_t d_ctx = 0;
  int64_t head_dim = 0;
  int64_t value_dim = 0;
  int64_t d_out = 0;
  bool has_output_projection = false;
  bool has_add_norm = false;
  float epsilon = 0.0f;

  int64_t query_width() const { return num_heads * head_dim; }
  int64_t key_value_width() const { return num_kv_heads * (head_dim + value_dim); }
  int64_t concat_width() const { return num_heads * value_dim; }
};

// Checks every shape against the others and the head counts (num_kv_heads 0 = num_heads),
// before anything is allocated. Errors are INVALID_ARGUMENT naming `prefix` + the field and the
// numbers, e.g. "weights.w_k.shape[1] = 48 but num_kv_heads * head_dim = 2 * 16 = 32".
absl::StatusOr<MultiHeadDims> InferMultiHeadDims(const std::string& prefix,
                                                 const WeightShapes& shapes, int64_t num_heads,
                                                 int64_t num_kv_heads, bool has_add_norm,
                                                 float epsilon);

// f32 values of the tensors of WeightShapes, row-major; empty = absent.
struct WeightValues {
  std::span<const float> w_q, w_k, w_v, w_o;
  std::span<const float> b_q, b_k, b_v, b_o;
  std::span<const float> gamma, beta;
};

// A matrix inside the packed storage: `rows` x `cols`, rows `row_stride` floats apart.
struct MatrixView {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;
};

class MultiHeadWeights {
 public:
  // Packs `values`, whose shapes were validated into `dims` by InferMultiHeadDims.
  static std::shared_ptr<const MultiHeadWeights> Create(const MultiHeadDims& dims,
                                                        const WeightValues& values);

  const MultiHeadDims& dims() const { return dims_; }
  // True when W_q, W_k and W_v are one [d_model, query_width + key_value_width] matrix.
  bool fused_qkv() const { return dims_.d_ctx == dims_.d_model; }
  MatrixView qkv() const;        // only when fused_qkv()
  MatrixView query() const;      // [d_model, H*D]
  MatrixView key_value() const;  // [d_ctx, Hkv*D + Hkv*Dv]: K columns, then V columns
  const float* qkv_bias() const { return bias_.data(); }  // [H*D + Hkv*D + Hkv*Dv], zeros if absent
  const float* query_bias() const { return bias_.data(); }
  const float* key_value_bias() const { return bias_.data() + dims_.query_width(); }
  MatrixView output_projection() const;  // [H*Dv, d_out]; only when has_output_projection
  const float* output_bias() const { return output_bias_.data(); }  // [d_out], zeros if absent
  const float* gamma() const { return gamma_.data(); }
  const float* beta() const { return beta_.data(); }
  // Bytes held.
  int64_t bytes() const;

 private:
  explicit MultiHeadWeights(const MultiHeadDims& dims) : dims_(dims) {}

  MultiHeadDims dims_;
  std::vector<float> projection_;  // fused [d_model, N], or [d_model, H*D] then [d_ctx, Nkv]
  std::vector<float> bias_;
  std::vector<float> output_projection_;
  std::vector<float> output_bias_;
  std::vector<float> gamma_, beta_;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_LAYER_MULTI_HEAD_WEIGHTS_H_
