// Copies of attention operands in the layouts the engine's matmuls read: one head's K^T in
// oneDNN's blocked weights layout (f32 or bf16, from f32 or bf16 keys), rows of Q or V as dense
// bfloat16 (times a scale; from f32 or bf16), and bf16 rows widened to f32. They replace
// per-head oneDNN reorders, whose fixed cost per call (a few microseconds) outweighed the
// copying itself on small heads. And rows rounded to bfloat16 but kept as f32, for bf16 compute
// on CPUs without native bf16 matmuls (f32 matmuls of bf16-rounded operands). Four kernels, by
// the CPU tier (cpu_tier.h): AVX-512 with AVX512_BF16, AVX-512 without it, AVX2 + FMA, and
// portable scalar code (the blocked K^T, which only the AVX-512 tiers' matmuls read, has
// AVX-512 and scalar code only). bfloat16 is rounded to nearest even, NaN kept a quiet NaN; the
// results are identical except for denormal inputs, which AVX512_BF16's conversion (like
// oneDNN's own on such CPUs) turns into zero of their sign in ConvertRowsToBf16 and the others
// round. Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_ENGINE_KERNELS_OPERAND_COPIES_H_
#define ATTNSERVE_SRC_ENGINE_KERNELS_OPERAND_COPIES_H_

#include <cstdint>

namespace attn {

// Keys per block of the K^T layout: runs of keys read in place start at multiples of it.
constexpr int64_t kKeyBlock = 64;

enum class CopyKernel { kScalar, kAvx2, kAvx512, kAvx512Bf16 };

// The fastest kernel of the CPU tier in use (ActiveCpuTier()).
CopyKernel BestCopyKernel();

// Where each element of one head's K^T [D, Sk] lives in the blocked layout (BA16a64b; bf16
// BA16a64b2a), as oneDNN's memory desc of it says. Row d (of D) and key k sit in the block of
// 64 keys k / 64 and of 16 rows d / 16 (bf16: 32 rows, d / 32); inside it, f32 is
// [16 rows][64 keys] and bf16 [16 pairs of rows][64 keys][2], a pair's two rows side by side.
// Padding (rows past D, keys past Sk) is zero.
struct KeyTransposedLayout {
  int64_t padded_rows = 0;       // D rounded up to whole blocks of rows
  int64_t padded_keys = 0;       // Sk rounded up to whole blocks of 64 keys
  int64_t row_block_stride = 0;  // elements from one block of rows to the next
  int64_t key_block_stride = 0;  // elements from one block of 64 keys to the next
};

// key_t = K^T, padding included, of the `keys` x `dim` matrix at `key` (rows `row_stride`
// apart), in f32 (each value rounded to bfloat16 when round_to_bf16) or in bf16.
void TransposeKeys(const float* key, int64_t keys, int64_t dim, int64_t row_stride,
                   const KeyTransposedLayout& layout, float* key_t, CopyKernel kernel,
                   bool round_to_bf16 = false);
void TransposeKeys(const float* key, int64_t keys, int64_t dim, int64_t row_stride,
                   const KeyTransposedLayout& layout, uint16_t* key_t, CopyKernel kernel);
// The same from bfloat16 keys.
void TransposeKeys(const uint16_t* key, int64_t keys, int64_t dim, int64_t row_stride,
                   const KeyTransposedLayout& layout, uint16_t* key_t, CopyKernel kernel);

// out = bfloat16(scale * x) for the `rows` x `cols` matrix x at `in` (rows `in_stride` apart),
// rows `out_stride` apart.
void ConvertRowsToBf16(const float* in, int64_t rows, int64_t cols, int64_t in_stride,
                       float scale, uint16_t* out, int64_t out_stride, CopyKernel kernel);
// The same from a bfloat16 x (an exact copy when scale is 1).
void ConvertRowsToBf16(const uint16_t* in, int64_t rows, int64_t cols, int64_t in_stride,
                       float scale, uint16_t* out, int64_t out_stride, CopyKernel kernel);

// out = float(bfloat16(scale * x)), in f32, for the `rows` x `cols` matrix x at `in` (rows
// `in_stride` apart), rows `out_stride` apart. Every kernel rounds alike (denormals too).
void RoundRowsToBf16(const float* in, int64_t rows, int64_t cols, int64_t in_stride, float scale,
                     float* out, int64_t out_stride, CopyKernel kernel);

// out = the f32 values of the `rows` x `cols` bfloat16 matrix at `in` (rows `in_stride` apart),
// dense (exact).
void ConvertRowsToF32(const uint16_t* in, int64_t rows, int64_t cols, int64_t in_stride,
                      float* out);

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_KERNELS_OPERAND_COPIES_H_
