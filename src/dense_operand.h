// Dense copies of strided operands for the attention engine's f32 K^T path. oneDNN 2.6's
// brgemm matmul reads only dense matrices: a strided V (a projection's [B,S,H*D] output seen
// head by head, as MultiHeadAttention passes it) as P V's weights runs gemm:jit at about half
// speed, and every block of query rows reads all of its head's V, so one copy per call (a pass
// over V) costs far less. (A strided Q is copied a block of rows at a time instead: each is
// read once. In bf16 the bf16 copies of Q and V are made from any strides.) Plain functions;
// thread-safe.
#ifndef ATTNSERVE_SRC_DENSE_OPERAND_H_
#define ATTNSERVE_SRC_DENSE_OPERAND_H_

#include <memory>

#include "absl/status/status.h"
#include "dnnl.hpp"
#include "src/attention_types.h"
#include "src/primitive_cache.h"

namespace attn {

// When [batch, heads, rows, cols] at `data` seen through `strides` is not dense row-major,
// copies it into `copy` as a dense one (with the calling thread's OpenMP threads), points `data`
// at the copy and clears `strides`; else leaves all three alone. INTERNAL when oneDNN fails.
absl::Status MakeDense(int64_t batch, int64_t heads, int64_t rows, int64_t cols,
                       const float*& data, OperandStrides& strides, PrimitiveCache& cache,
                       const dnnl::engine& engine, std::unique_ptr<float[]>& copy);

}  // namespace attn

#endif  // ATTNSERVE_SRC_DENSE_OPERAND_H_
