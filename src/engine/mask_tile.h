// Materialises the additive mask of one block of score rows as a dense f32 tile: the bias where
// a key may be attended, -inf where the causal mask, key_lengths or `allowed` forbid it. The
// tile is full-shape on purpose: oneDNN 2.6 falls back to its slow reference matmul when a
// binary post-op operand is broadcast. Pure function; thread-safe.
#ifndef ATTNSERVE_SRC_ENGINE_MASK_TILE_H_
#define ATTNSERVE_SRC_ENGINE_MASK_TILE_H_

#include <cstdint>

#include "src/engine/attention_types.h"

namespace attn {

// Score rows of batch item `batch` are numbered across heads: row q is head q / Sq, query
// q % Sq. Fills tile[r * keys + j] with the mask of row first_row + r and key first_key + j for
// r < rows, j < keys (first_key + keys <= Sk; keys past the last one any row may see need not be
// in the tile).
void FillMaskTile(const MaskSpec& mask, const AttentionDims& dims, int64_t batch,
                  int64_t first_row, int64_t rows, int64_t first_key, int64_t keys, float* tile);

// For rows [first_row, first_row + rows) (numbered as in FillMaskTile), how many leading keys of
// the tile [first_key, first_key + keys) the causal mask and key_lengths leave each row:
// row_keys[r] in [0, keys]. `allowed` and `bias` are not looked at.
void VisibleKeysOfRows(const MaskSpec& mask, const AttentionDims& dims, int64_t batch,
                       int64_t first_row, int64_t rows, int64_t first_key, int64_t keys,
                       int64_t* row_keys);

// How many leading keys the rows [first_row, first_row + rows) may see at all under the causal
// mask and key_lengths: keys from there on are forbidden for every one of those rows.
int64_t VisibleKeysOfBlock(const MaskSpec& mask, const AttentionDims& dims, int64_t batch,
                           int64_t first_row, int64_t rows);

// How many leading keys every one of the rows [first_row, first_row + rows) may see under the
// causal mask and key_lengths: a tile of keys before that needs no mask unless `allowed` or
// `bias` is set.
int64_t KeysVisibleToAllRowsOfBlock(const MaskSpec& mask, const AttentionDims& dims,
                                    int64_t batch, int64_t first_row, int64_t rows);

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_MASK_TILE_H_
