// The engine's vocabulary: attention dimensions, mask description, and the input/output buffers
// of one scaled dot-product attention call. Plain structs; no ownership of tensor memory.
#ifndef ATTNSERVE_SRC_ENGINE_ATTENTION_TYPES_H_
#define ATTNSERVE_SRC_ENGINE_ATTENTION_TYPES_H_

#include <array>
#include <cstdint>
#include <functional>
#include <span>

#include "absl/status/status.h"

namespace attn {

// B batch, H query heads, Hkv key/value heads (H % Hkv == 0), Sq queries, Sk keys,
// D query/key head size, Dv value head size.
struct AttentionDims {
  int64_t batch = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t q_len = 0;
  int64_t kv_len = 0;
  int64_t head_dim = 0;
  int64_t value_dim = 0;

  int64_t group_size() const { return heads / kv_heads; }
};

enum class CausalKind {
  kNone,
  kUpperLeft,   // key j visible to query i when j <= i
  kLowerRight,  // key j visible to query i when j <= i + (Sk - Sq)
};

// Element strides of a mask operand over the [B,H,Sq,Sk] index space; 0 on broadcast dims.
using BroadcastStrides = std::array<int64_t, 4>;

// Everything that forbids or biases a score. All parts combine.
struct MaskSpec {
  CausalKind causal = CausalKind::kNone;
  std::span<const int32_t> key_lengths;  // empty, or one per batch item in [0, Sk]
  const uint8_t* allowed = nullptr;      // nonzero = may attend; nullptr = everything allowed
  BroadcastStrides allowed_strides{};
  const float* bias = nullptr;  // added to the scaled scores; -inf forbids; nullptr = none
  BroadcastStrides bias_strides{};

  bool empty() const {
    return causal == CausalKind::kNone && key_lengths.empty() && allowed == nullptr &&
           bias == nullptr;
  }
};

// Element strides of a [batch, head, row, column] operand whose columns are contiguous. All zero
// means dense row-major [B,H,S,C]. A projection output [B,S,H*C] viewed head by head (no copy)
// has row = H*C, head = C, batch = S*H*C.
struct OperandStrides {
  int64_t batch = 0;
  int64_t head = 0;
  int64_t row = 0;

  bool dense() const { return batch == 0 && head == 0 && row == 0; }
  // These strides, or when all zero those of dense row-major [B, heads, rows, cols].
  OperandStrides Resolved(int64_t heads, int64_t rows, int64_t cols) const {
    if (!dense()) return *this;
    return {.batch = heads * rows * cols, .head = rows * cols, .row = cols};
  }
  bool operator==(const OperandStrides&) const = default;
};

// Keys and values held in pages (a KV cache) instead of dense tensors: for batch item b and KV
// head g, page p holds keys [p * page_tokens, (p + 1) * page_tokens) as dense rows, K's
// [page_tokens, D] at key_pages[(b * Hkv + g) * pages_per_head + p] and V's [page_tokens, Dv]
// at the same index of value_pages (the last page may be partly filled: only Sk keys are read).
// f32, or bfloat16 when `bf16`.
struct KvPages {
  int64_t page_tokens = 0;  // a multiple of 64
  int64_t pages_per_head = 0;
  bool bf16 = false;
  const void* const* key_pages = nullptr;
  const void* const* value_pages = nullptr;
};

// Inputs query [B,H,Sq,D], key [B,Hkv,Sk,D], value [B,Hkv,Sk,Dv], dense row-major unless
// their strides say otherwise: f32, or bfloat16 (the *_bf16 pointers set instead, all three).
// bf16 inputs are read as they are when computed in bf16; otherwise the engine widens them to
// f32 first.
struct AttentionInputs {
  AttentionDims dims;
  const float* query = nullptr;
  const float* key = nullptr;
  const float* value = nullptr;
  const uint16_t* query_bf16 = nullptr;
  const uint16_t* key_bf16 = nullptr;
  const uint16_t* value_bf16 = nullptr;
  OperandStrides query_strides;
  OperandStrides key_strides;
  OperandStrides value_strides;
  float scale = 1.0f;
  MaskSpec mask;
  // Compute Q K^T and P V with bfloat16 operands (f32 accumulation, f32 scores and softmax).
  // Otherwise everything is f32.
  bool bf16_compute = false;
  // Set by the engine instead of bf16_compute where the CPU tier has no native bf16 matmuls:
  // the same contract in f32 matmuls -- Q (times the scale), K and V rounded to bfloat16 and
  // kept as f32 (a product of two bf16 values is exact in f32, so the f32 matmul computes what
  // a bf16 one with f32 accumulation does); P stays f32 (no rounding: a little more accurate).
  bool bf16_in_f32 = false;
  // When set, K and V are read from these pages (key, value and their bf16 pointers unused);
  // the query is f32. Only for units of few query rows (AttentionEngine::kFewRows).
  const KvPages* pages = nullptr;

  bool bf16_inputs() const { return query_bf16 != nullptr; }
};

// f32 outputs. `output` [B,H,Sq,Dv] (dense unless `output_strides` say otherwise) is required;
// each map [B,H,Sq,Sk] (always dense) is written only when its pointer is set. Rows whose keys
// are all forbidden get probabilities 0 and output 0.
struct AttentionOutputs {
  float* output = nullptr;
  float* probabilities = nullptr;
  float* scores = nullptr;  // scaled + bias, -inf where forbidden
  OperandStrides output_strides = {};
};

// Asked between chunks of a long computation: OK to go on, anything else to stop with that status.
// Must be thread-safe (several OpenMP threads may ask at once).
using StopCheck = std::function<absl::Status()>;

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_ATTENTION_TYPES_H_
