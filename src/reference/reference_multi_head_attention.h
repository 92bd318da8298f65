// A plain double-precision multi-head attention layer (projections, per-head attention, concat,
// W_o, Add & Norm), written from the weights as given (not the packed form the engine uses): the
// oracle for MultiHeadAttention's tests and `attn-client mha --verify`. Pure; thread-safe.
#ifndef ATTNSERVE_SRC_REFERENCE_REFERENCE_MULTI_HEAD_ATTENTION_H_
#define ATTNSERVE_SRC_REFERENCE_REFERENCE_MULTI_HEAD_ATTENTION_H_

#include <cstdint>
#include <vector>

#include "src/engine/attention_types.h"
#include "src/layer/multi_head_weights.h"

namespace attn {

struct ReferenceMultiHeadResult {
  std::vector<double> output;         // [B,Sq,d_out]
  std::vector<double> probabilities;  // [B,H,Sq,Sk], or [B,Sq,Sk] when averaged over heads
  std::vector<double> scores;         // same shape; -inf where forbidden
};

// input [B,Sq,d_model]; context [B,Sk,d_ctx] or nullptr (self-attention).
ReferenceMultiHeadResult ReferenceMultiHeadAttention(const MultiHeadDims& dims,
                                                     const WeightValues& weights, int64_t batch,
                                                     int64_t q_len, int64_t kv_len,
                                                     const float* input, const float* context,
                                                     double scale, const MaskSpec& mask,
                                                     bool average_heads);

}  // namespace attn

#endif  // ATTNSERVE_SRC_REFERENCE_REFERENCE_MULTI_HEAD_ATTENTION_H_
