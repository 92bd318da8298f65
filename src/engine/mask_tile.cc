// Dense additive mask tiles for blocks of score rows (see mask_tile.h).
#include "src/engine/mask_tile.h"

#include <algorithm>
#include <limits>

namespace attn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Keys [0, limit) of this row survive the causal mask and key_lengths; the rest are forbidden.
int64_t VisibleKeyLimit(const MaskSpec& mask, const AttentionDims& dims, int64_t batch,
                        int64_t query) {
  int64_t limit = dims.kv_len;
  if (!mask.key_lengths.empty()) limit = std::min<int64_t>(limit, mask.key_lengths[batch]);
  switch (mask.causal) {
    case CausalKind::kNone:
      break;
    case CausalKind::kUpperLeft:
      limit = std::min(limit, query + 1);
      break;
    case CausalKind::kLowerRight:
      limit = std::min(limit, query + 1 + dims.kv_len - dims.q_len);
      break;
  }
  return std::max<int64_t>(limit, 0);
}

// Keys of the tile [first_key, first_key + keys) that the causal mask and key_lengths leave
// query `query`: the tile's first ones, this many.
int64_t VisibleKeysInTile(const MaskSpec& mask, const AttentionDims& dims, int64_t batch,
                          int64_t query, int64_t first_key, int64_t keys) {
  return std::clamp<int64_t>(VisibleKeyLimit(mask, dims, batch, query) - first_key, 0, keys);
}

}  // namespace

void VisibleKeysOfRows(const MaskSpec& mask, const AttentionDims& dims, int64_t batch,
                       int64_t first_row, int64_t rows, int64_t first_key, int64_t keys,
                       int64_t* row_keys) {
  for (int64_t r = 0; r < rows; ++r) {
    row_keys[r] =
        VisibleKeysInTile(mask, dims, batch, (first_row + r) % dims.q_len, first_key, keys);
  }
}

int64_t VisibleKeysOfBlock(const MaskSpec& mask, const AttentionDims& dims, int64_t batch,
                           int64_t first_row, int64_t rows) {
  int64_t visible = 0;
  for (int64_t r = 0; r < rows && visible < dims.kv_len; ++r) {
    visible = std::max(visible, VisibleKeyLimit(mask, dims, batch, (first_row + r) % dims.q_len));
  }
  return visible;
}

int64_t KeysVisibleToAllRowsOfBlock(const MaskSpec& mask, const AttentionDims& dims,
                                    int64_t batch, int64_t first_row, int64_t rows) {
  int64_t visible = dims.kv_len;
  for (int64_t r = 0; r < rows && visible > 0; ++r) {
    visible = std::min(visible, VisibleKeyLimit(mask, dims, batch, (first_row + r) % dims.q_len));
  }
  return visible;
}

void FillMaskTile(const MaskSpec& mask, const AttentionDims& dims, int64_t batch,
                  int64_t first_row, int64_t rows, int64_t first_key, int64_t keys, float* tile) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t head = (first_row + r) / dims.q_len;
    const int64_t query = (first_row + r) % dims.q_len;
    // Tile columns [0, limit) are keys the causal mask and key_lengths leave visible.
    const int64_t limit = VisibleKeysInTile(mask, dims, batch, query, first_key, keys);
    float* row = tile + r * keys;
    const float* bias = nullptr;
    const uint8_t* allowed = nullptr;
    if (mask.bias != nullptr) {
      const BroadcastStrides& s = mask.bias_strides;
      bias = mask.bias + batch * s[0] + head * s[1] + query * s[2] + first_key * s[3];
    }
    if (mask.allowed != nullptr) {
      const BroadcastStrides& s = mask.allowed_strides;
      allowed = mask.allowed + batch * s[0] + head * s[1] + query * s[2] + first_key * s[3];
    }
    for (int64_t j = 0; j < limit; ++j) {
      float value = bias != nullptr ? bias[j * mask.bias_strides[3]] : 0.0f;
      if (allowed != nullptr && allowed[j * mask.allowed_strides[3]] == 0) value = kNegInf;
      row[j] = value;
    }
    std::fill(row + limit, row + keys, kNegInf);
  }
}

}  // namespace attn
