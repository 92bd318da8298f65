// A plain double-precision implementation of masked scaled dot-product attention, written for
// clarity, not speed: the oracle of the tests and of `attn-client attend --verify`.
// Pure function; thread-safe.
#ifndef ATTNSERVE_SRC_REFERENCE_REFERENCE_ATTENTION_H_
#define ATTNSERVE_SRC_REFERENCE_REFERENCE_ATTENTION_H_

#include <vector>

#include "src/engine/attention_types.h"

namespace attn {

struct ReferenceResult {
  std::vector<double> output;         // [B,H,Sq,Dv]
  std::vector<double> probabilities;  // [B,H,Sq,Sk]; 0 where forbidden and on fully masked rows
  std::vector<double> scores;         // [B,H,Sq,Sk]; scale*QK^T + bias, -inf where forbidden
};

// Computes every output of API.md's math for `inputs` in double precision.
// Dense inputs only (strides are ignored).
ReferenceResult ReferenceAttention(const AttentionInputs& inputs);

// The same over dense double inputs (for references that build Q, K, V in double themselves).
ReferenceResult ReferenceAttention(const AttentionDims& dims, const double* query,
                                   const double* key, const double* value, double scale,
                                   const MaskSpec& mask);

}  // namespace attn

#endif  // ATTNSERVE_SRC_REFERENCE_REFERENCE_ATTENTION_H_
