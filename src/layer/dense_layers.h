// The dense (non-attention) layers of a Transformer block on oneDNN: a linear layer
// Y = X W + b (+ a residual), and layer normalization with scale and shift. Primitives come from
// a bounded cache keyed by shape, strides and thread count; scratchpads are the caller's, so
// concurrent calls never share one. Thread-safe.
#ifndef ATTNSERVE_SRC_LAYER_DENSE_LAYERS_H_
#define ATTNSERVE_SRC_LAYER_DENSE_LAYERS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "dnnl.hpp"
#include "src/layer/multi_head_weights.h"
#include "src/runtime/primitive_cache.h"

namespace attn {

// A writable rows x cols matrix, rows `row_stride` floats apart.
struct MutableMatrix {
  float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_stride = 0;
};

class DenseLayers {
 public:
  explicit DenseLayers(size_t primitive_cache_capacity);

  // y = x . w + bias [+ residual], with x [M,K], w [K,N], bias [N], residual (nullptr or dense
  // [M,N]) and y [M,N]. Errors only when oneDNN fails.
  absl::Status Linear(const MatrixView& x, const MatrixView& w, const float* bias,
                      const float* residual, const MutableMatrix& y) const;

  // y = (x - mean) / sqrt(variance + epsilon) * gamma + beta over each row of the dense [M,C]
  // matrix x; y may be x.
  absl::Status LayerNorm(const float* x, int64_t rows, int64_t cols, const float* gamma,
                         const float* beta, float epsilon, float* y) const;

  const PrimitiveCache& primitive_cache() const { return cache_; }

 private:
  mutable PrimitiveCache cache_;
  const dnnl::engine engine_;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_LAYER_DENSE_LAYERS_H_
