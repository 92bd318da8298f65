// A Transformer attention layer from embeddings and weights, as MultiHeadAttend computes it:
// Q = input W_q + b_q, K = context W_k + b_k, V = context W_v + b_v (one fused GEMM for all
// three in self-attention), scaled dot-product attention per head on strided views of the
// projections (heads are never copied apart), heads concatenated, optional W_o + b_o, optional
// Add & Norm: LayerNorm(input + attention_output). Thread-safe; uses the calling thread's OpenMP
// thread count.
#ifndef ATTNSERVE_SRC_LAYER_MULTI_HEAD_ATTENTION_H_
#define ATTNSERVE_SRC_LAYER_MULTI_HEAD_ATTENTION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "src/engine/attention_engine.h"
#include "src/engine/attention_types.h"
#include "src/layer/dense_layers.h"
#include "src/layer/multi_head_weights.h"

namespace attn {

// input [B,Sq,d_model]; context [B,Sk,d_ctx] or nullptr for self-attention (Sk = Sq). The mask
// is over [B,H,Sq,Sk], as in Attend.
struct MultiHeadInputs {
  int64_t batch = 0;
  int64_t q_len = 0;
  int64_t kv_len = 0;
  const float* input = nullptr;
  const float* context = nullptr;
  const MultiHeadWeights* weights = nullptr;
  float scale = 1.0f;
  MaskSpec mask;
  bool bf16_compute = false;  // the attention's matmuls on bfloat16 operands (see AttentionInputs)
};

// output [B,Sq,d_out] is required. Maps (when set) are [B,H,Sq,Sk], or [B,Sq,Sk] averaged over
// heads when `average_heads`.
struct MultiHeadOutputs {
  float* output = nullptr;
  float* probabilities = nullptr;
  float* scores = nullptr;
  bool average_heads = false;
};

class MultiHeadAttention {
 public:
  // `engine` must outlive this object.
  MultiHeadAttention(const AttentionEngine& engine, size_t primitive_cache_capacity);

  // Computes `outputs`; shapes were validated by the caller. `stop` is asked between the
  // projections and inside the attention (see AttentionEngine::Run); its non-OK answer is
  // returned. Otherwise errors only when oneDNN fails.
  absl::Status Run(const MultiHeadInputs& inputs, const MultiHeadOutputs& outputs,
                   const StopCheck& stop = {}) const;

  // The pieces a decoding step on a KV-cache session runs around its attention, for
  // self-attention weights (d_ctx = d_model, which the caller checks): the projections of `rows`
  // embeddings `input` [rows, d_model] into dense token-major Q [rows, H*D], K [rows, Hkv*D] and
  // V [rows, Hkv*Dv]; and from the heads' outputs concatenated
  // [rows, H*Dv], the output [rows, d_out]: W_o + b_o and Add & Norm with `input` when the
  // weights have them (else the concatenation itself). Errors only when oneDNN fails.
  absl::Status Project(const float* input, int64_t rows, const MultiHeadWeights& weights,
                       float* q, float* k, float* v) const;
  absl::Status FinishHeads(const float* concat, const float* input, int64_t rows,
                           const MultiHeadWeights& weights, float* output) const;

  const DenseLayers& dense_layers() const { return dense_; }

 private:
  const AttentionEngine& engine_;
  DenseLayers dense_;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_LAYER_MULTI_HEAD_ATTENTION_H_
