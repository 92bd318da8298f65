// Scaled dot-product attention on oneDNN (f32 or bf16 compute): per (batch, head, block of query
// rows), tile of keys by tile of keys, a matmul QK^T with the scale (its output scales; in bf16
// already in the Q copy) and, where the tile needs one, an additive mask tile (binary post-op)
// fused in, an online softmax step (online_softmax.h; it applies a causal mask and key_lengths
// alone by each row's visible keys), then a matmul adding P V (a block whose keys fit one tile
// divides P by l first and writes P V straight to the output). Tiles no row may see are skipped,
// so without maps memory is O(block rows x key tile), not O(block rows x Sk); with maps a block
// keeps its tiles and writes the maps once at the end. K is copied transposed once per call
// (prepared_operands.h), except for units of few query rows (decode), which read K in place
// (bound by memory bandwidth, they compute in f32 unless their inputs are bf16) in wider tiles.
// Where bf16 matmuls are not native or not the faster (bf16_matmuls.h), bf16 compute is emulated
// in f32 (AttentionInputs::bf16_in_f32); below AVX-512, K^T is a view of K (prepared_operands.h).
// Primitives come from a bounded cache keyed by shape. Thread-safe: Run may be called from
// several threads at once; each call uses the calling thread's OpenMP thread count.
#ifndef ATTNSERVE_SRC_ENGINE_ATTENTION_ENGINE_H_
#define ATTNSERVE_SRC_ENGINE_ATTENTION_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "src/engine/attention_types.h"
#include "src/engine/bf16_matmuls.h"
#include "src/runtime/cpu_tier.h"
#include "src/runtime/primitive_cache.h"

namespace attn {

class AttentionEngine {
 public:
  struct Options {
    size_t primitive_cache_capacity = 256;
    // Keys per tile of the online-softmax path, rounded up to a multiple of 64 (kKeyBlock);
    // 0 = kDefaultKeyTile (units of few rows: wider, see attention_engine.cc). (A tile past a
    // block's last visible key is cut short, so causal blocks need no finer tiles.)
    int64_t key_tile = 0;
  };

  // Chosen by measurement (docs/performance.md).
  static constexpr int64_t kDefaultKeyTile = 512;

  // Units of at most this many query rows (decode: Sq = 1 times the group size) read K as it is
  // and compute S^T = K Q^T: transposing K would cost more than their whole attention. Paged K
  // and V (AttentionInputs::pages) are read only by such units, a page per tile.
  static constexpr int64_t kFewRows = 32;

  explicit AttentionEngine(Options options);

  // Computes `outputs` from `inputs`, whose shapes and mask were already validated
  // (attention_shapes.h). `stop` (when set) is asked before each piece of work (at most 128
  // query rows of one head group): a non-OK answer skips the rest and is returned (e.g. the call
  // was cancelled or its deadline passed); the outputs are then incomplete. Otherwise errors
  // only when oneDNN fails; INVALID_ARGUMENT for paged inputs in units of more than kFewRows
  // rows or pages whose size is not a multiple of 64 keys.
  absl::Status Run(const AttentionInputs& inputs, const AttentionOutputs& outputs,
                   const StopCheck& stop = {}) const;

  const PrimitiveCache& primitive_cache() const { return cache_; }

  // The CPU tier the engine computes at (ActiveCpuTier(), fixed at construction), and how it
  // computes bf16 (ActiveBf16Matmuls()).
  CpuTier tier() const { return tier_; }
  Bf16Matmuls bf16_matmuls() const { return bf16_matmuls_; }

  // oneDNN's version ("2.6.3") and the ISA its kernels dispatch to on this CPU.
  static std::string OneDnnVersion();
  static std::string OneDnnIsa();

 private:
  // Run for paged K and V (AttentionInputs::pages).
  absl::Status RunPaged(const AttentionInputs& inputs, const AttentionOutputs& outputs,
                        const StopCheck& stop) const;

  const int64_t key_tile_;  // 0 = by mask (see Options)
  const CpuTier tier_;      // chosen (and oneDNN capped) before engine_ exists
  const Bf16Matmuls bf16_matmuls_;
  mutable PrimitiveCache cache_;
  const dnnl::engine engine_;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_ATTENTION_ENGINE_H_
