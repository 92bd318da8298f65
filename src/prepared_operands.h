// The operands of one AttentionEngine::Run as its matmuls read them, prepared once per call.
//
// K is either copied transposed, per (batch, KV head) as tiles of `tile_keys` keys (the last one
// narrower when Sk is not a multiple), each a dense K_t^T [D, width] -- oneDNN 2.6 runs Q K^T on
// its brgemm kernels only when the weights are dense row-major; transposed or strided weights
// go to gemm:jit, in f32 about half as fast, in bf16 over 10x slower -- or, for units of few
// query rows (decode), read in place (f32 only): the engine then computes S^T = K Q^T with a
// transposed copy of the few Q rows instead, which spares a whole pass over K. For bf16
// compute, Q and V are dense bf16 copies too; for f32 they are read in place. Plain data; not
// thread-safe to fill, read-only after.
#ifndef ATTNSERVE_SRC_PREPARED_OPERANDS_H_
#define ATTNSERVE_SRC_PREPARED_OPERANDS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "dnnl.hpp"
#include "src/attention_types.h"
#include "src/primitive_cache.h"

namespace attn {

struct PreparedOperands {
  int64_t tile_keys = 0;        // keys per K tile: the key tile, or Sk when shorter
  bool keys_transposed = true;  // K as K^T tiles; false: K rows as given (S^T = K Q^T)
  std::unique_ptr<float[]> key_t;          // f32 compute, keys_transposed
  std::unique_ptr<uint16_t[]> key_t_bf16;  // bf16 compute, keys_transposed
  std::vector<uint16_t> query;             // bf16 compute: scale * Q (the scale folded in)
  std::vector<uint16_t> value;             // bf16 compute
};

// Fills `prepared` (whose tile_keys and keys_transposed are set) from `in`, K seen through
// `key_strides` (resolved: never all zero). UNIMPLEMENTED for bf16 compute with a strided Q or V;
// INTERNAL for bf16 compute with K not transposed, or when oneDNN fails.
absl::Status PrepareOperands(const AttentionInputs& in, const OperandStrides& key_strides,
                             PrimitiveCache& cache, const dnnl::engine& engine,
                             PreparedOperands& prepared);

}  // namespace attn

#endif  // ATTNSERVE_SRC_PREPARED_OPERANDS_H_
