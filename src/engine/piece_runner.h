// The engine's inner loop. A call's query rows are cut into pieces of work: one (batch, unit,
// block of at most 128 rows), units as in attention_layout.h. A piece goes tile of keys by tile
// of keys with an online softmax, skipping tiles no row of the piece can see (causal,
// key_lengths); with maps it keeps its tiles and writes its map rows once at the end. A piece
// that alone reads its KV head makes that head's operand copies first (prepared_operands.h).
// Pieces run in parallel on the calling thread's OpenMP threads, each thread with its own
// runner (scratch, stream, bound primitives, copies); with fewer pieces than threads they run
// in turn and each primitive uses every thread. Thread-safe as AttentionEngine::Run is.
#ifndef ATTNSERVE_SRC_ENGINE_PIECE_RUNNER_H_
#define ATTNSERVE_SRC_ENGINE_PIECE_RUNNER_H_

#include "absl/status/status.h"
#include "dnnl.hpp"
#include "src/engine/attention_layout.h"
#include "src/engine/attention_types.h"
#include "src/engine/prepared_operands.h"
#include "src/runtime/primitive_cache.h"

namespace attn {

// Query rows per piece, at most.
constexpr int64_t kBlockRows = 128;

// Computes `out` from `in`, laid out as `layout`, reading K^T (and in bf16 Q and V) from
// `prepared`, or made by each piece through it, or, with K not transposed, every operand in
// place (in f32, or bf16 inputs in bf16). `stop` (when set) is asked before each piece: a
// non-OK answer skips the rest and is returned. Otherwise errors only when oneDNN fails.
absl::Status RunPieces(const AttentionInputs& in, const AttentionOutputs& out,
                       const Layout& layout, const PreparedOperands& prepared,
                       PrimitiveCache& cache, const dnnl::engine& engine, const StopCheck& stop);

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_PIECE_RUNNER_H_
