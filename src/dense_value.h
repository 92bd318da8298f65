// A dense copy of a strided V for the attention engine's K^T path. oneDNN 2.6's brgemm matmul
// reads only dense matrices: a strided V (a projection's [B,S,H*D] output seen head by head, as
// MultiHeadAttention passes it) as P V's weights runs gemm:jit at about half speed, and every
// block of query rows reads all of its head's V, so one copy per call (a pass over V) costs far
// less. (A strided Q is copied a block of rows at a time instead: each is read once.) Plain
// functions; thread-safe.
#ifndef ATTNSERVE_SRC_DENSE_VALUE_H_
#define ATTNSERVE_SRC_DENSE_VALUE_H_

#include <memory>

#include "absl/status/status.h"
#include "dnnl.hpp"
#include "src/attention_types.h"
#include "src/primitive_cache.h"

namespace attn {

// When V of `in` has strided rows, copies it into `copy` as a dense [B,Hkv,Sk,Dv] (with the
// calling thread's OpenMP threads) and points `in` at it; else leaves both alone. INTERNAL when
// oneDNN fails.
absl::Status MakeValueDense(AttentionInputs& in, PrimitiveCache& cache,
                            const dnnl::engine& engine, std::unique_ptr<float[]>& copy);

}  // namespace attn

#endif  // ATTNSERVE_SRC_DENSE_VALUE_H_
