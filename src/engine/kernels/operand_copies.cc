// K^T in the blocked layout and bf16 rows, scalar, AVX2 and AVX-512 (see operand_copies.h).
#include "src/engine/kernels/operand_copies.h"

// GCC 12's AVX-512 headers start some intrinsics from _mm512_undefined_ps(), which
// -Wmaybe-uninitialized reports as used uninitialised (a false positive of those headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <vector>

#include "src/engine/kernels/bf16_avx512.h"
#include "src/runtime/cpu_tier.h"
#include "src/runtime/dtype.h"

namespace attn {
namespace {

// Where 32-bit units go: both layouts are [16 unit rows][64 keys] blocks of 32-bit units once
// a bf16 pair of rows counts as one unit.
struct UnitLayout {
  static constexpr int64_t rows_per_block = 16;
  int64_t padded_rows;
  int64_t row_block_stride;  // in units
  int64_t key_block_stride;  // in units

  int64_t Offset(int64_t row, int64_t key) const {
    return key / kKeyBlock * key_block_stride + row / rows_per_block * row_block_stride +
           row % rows_per_block * kKeyBlock + key % kKeyBlock;
  }
};

// dst (from key block `first_key` / 64 on, keys [first_key, first_key + keys_to_write)) =
// the transpose of the `keys` x `rows` units at src (rows `stride` apart; row i is key
// first_key + i), zero past `keys` and past `rows` up to the layout's padded rows.
// With kRound each unit, an f32, is rounded to bfloat16 (kept as f32) on the way.
template <bool kRound>
void TransposeUnitsScalar(const uint32_t* src, int64_t keys, int64_t rows, int64_t stride,
                          int64_t first_key, int64_t keys_to_write, const UnitLayout& layout,
                          uint32_t* dst) {
  for (int64_t r = 0; r < layout.padded_rows; ++r) {
    for (int64_t i = 0; i < keys_to_write; ++i) {
      const uint32_t unit = i < keys && r < rows ? src[i * stride + r] : 0;
      dst[layout.Offset(r, first_key + i)] =
          kRound ? static_cast<uint32_t>(FloatToBFloat16(std::bit_cast<float>(unit))) << 16
                 : unit;
    }
  }
}

// The f32 values of 16 units rounded to bfloat16 (to nearest even, NaN kept a quiet NaN), kept
// as f32.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512i RoundToBf16Avx512(
    __m512i bits) {
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  const __mmask16 nan =
      _mm512_cmp_ps_mask(_mm512_castsi512_ps(bits), _mm512_castsi512_ps(bits), _CMP_UNORD_Q);
  rounded = _mm512_mask_or_epi32(rounded, nan, bits, _mm512_set1_epi32(0x00400000));
  return _mm512_and_si512(rounded, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)));
}

// The same for 8 units, with AVX2.
__attribute__((target("avx2,fma"))) inline __m256i RoundToBf16Avx2(__m256i bits) {
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  const __m256i rounded =
      _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)));
  const __m256 as_float = _mm256_castsi256_ps(bits);
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(as_float, as_float, _CMP_UNORD_Q));
  const __m256i quiet = _mm256_or_si256(bits, _mm256_set1_epi32(0x00400000));
  return _mm256_and_si256(_mm256_blendv_epi8(rounded, quiet, nan),
                          _mm256_set1_epi32(static_cast<int>(0xFFFF0000u)));
}

// The transpose of 16 x 16 32-bit units in place: rows[i] lane j becomes rows[j] lane i.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void Transpose16x16(__m512i* rows) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(rows[i], rows[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(rows[i], rows[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    rows[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    rows[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    rows[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    rows[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  // Each 128-bit lane now holds a 4 x 4 block transposed; move the blocks.
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(rows[i], rows[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(rows[i], rows[i + 4], 0xDD);
    t[i + 8] = _mm512_shuffle_i32x4(rows[i + 8], rows[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(rows[i + 8], rows[i + 12], 0xDD);
  }
  for (int i = 0; i < 8; ++i) {
    rows[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    rows[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xDD);
  }
}

// TransposeUnitsScalar, 16 keys by 16 unit rows at a time (keys_to_write a multiple of 16).
template <bool kRound>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void TransposeUnitsAvx512(
    const uint32_t* src, int64_t keys, int64_t rows, int64_t stride, int64_t first_key,
    int64_t keys_to_write, const UnitLayout& layout, uint32_t* dst) {
  __m512i block[16];
  for (int64_t k0 = 0; k0 < keys_to_write; k0 += 16) {
    for (int64_t r0 = 0; r0 < layout.padded_rows; r0 += 16) {
      const __mmask16 lanes = FirstLanes(rows - r0);  // the rows that exist
      for (int64_t i = 0; i < 16; ++i) {
        block[i] = k0 + i < keys ? _mm512_maskz_loadu_epi32(lanes, src + (k0 + i) * stride + r0)
                                 : _mm512_setzero_si512();
        if constexpr (kRound) block[i] = RoundToBf16Avx512(block[i]);
      }
      Transpose16x16(block);
      const int64_t out_rows = std::min<int64_t>(16, layout.padded_rows - r0);
      for (int64_t j = 0; j < out_rows; ++j) {
        _mm512_storeu_si512(dst + layout.Offset(r0 + j, first_key + k0), block[j]);
      }
    }
  }
}

// Only the AVX-512 tiers' matmuls read the blocked layout: below them the scalar code serves.
template <bool kRound = false>
void TransposeUnits(const uint32_t* src, int64_t keys, int64_t rows, int64_t stride,
                    int64_t first_key, int64_t keys_to_write, const UnitLayout& layout,
                    uint32_t* dst, CopyKernel kernel) {
  if (kernel == CopyKernel::kScalar || kernel == CopyKernel::kAvx2) {
    TransposeUnitsScalar<kRound>(src, keys, rows, stride, first_key, keys_to_write, layout, dst);
  } else {
    TransposeUnitsAvx512<kRound>(src, keys, rows, stride, first_key, keys_to_write, layout, dst);
  }
}

// 16 floats (lanes of `lanes`, 0 elsewhere) from f32 or from bf16 (exactly: bf16 is the high
// half of a float).
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 Load16(const float* x,
                                                                          __mmask16 lanes) {
  return _mm512_maskz_loadu_ps(lanes, x);
}
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 Load16(const uint16_t* x,
                                                                          __mmask16 lanes) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(lanes, x));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

inline float ToFloat(float x) { return x; }
inline float ToFloat(uint16_t x) { return BFloat16ToFloat(x); }

template <bool kNativeBf16, typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void ConvertRowsAvx512(
    const T* in, int64_t rows, int64_t cols, int64_t in_stride, float scale, uint16_t* out,
    int64_t out_stride) {
  const __m512 factor = _mm512_set1_ps(scale);
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = in + r * in_stride;
    uint16_t* y = out + r * out_stride;
    for (int64_t c = 0; c < cols; c += 16) {
      const __mmask16 lanes = FirstLanes(cols - c);
      StoreBf16<kNativeBf16>(_mm512_mul_ps(Load16(x + c, lanes), factor), lanes, y + c);
    }
  }
}

// 8 floats from f32 or bf16 (exactly), columns [c, c + 8) of a row of `cols`, 0 past its end.
__attribute__((target("avx2,fma"))) inline __m256 Load8(const float* x, int64_t c, int64_t cols) {
  if (c + 8 <= cols) return _mm256_loadu_ps(x + c);
  const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols - c)),
                                           _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_maskload_ps(x + c, lanes);
}
__attribute__((target("avx2,fma"))) inline __m256 Load8(const uint16_t* x, int64_t c,
                                                        int64_t cols) {
  __m128i halves;
  if (c + 8 <= cols) {
    halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + c));
  } else {
    alignas(16) uint16_t tail[8] = {};
    std::copy(x + c, x + cols, tail);
    halves = _mm_load_si128(reinterpret_cast<const __m128i*>(tail));
  }
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
}

// bfloat16(scale * x) with AVX2: rounded as f32 bits, then the high halves packed.
template <typename T>
__attribute__((target("avx2,fma"))) void ConvertRowsAvx2(const T* in, int64_t rows,
                                                         int64_t cols, int64_t in_stride,
                                                         float scale, uint16_t* out,
                                                         int64_t out_stride) {
  const __m256 factor = _mm256_set1_ps(scale);
  for (int64_t r = 0; r < rows; ++r) {
    const T* x = in + r * in_stride;
    uint16_t* y = out + r * out_stride;
    for (int64_t c = 0; c < cols; c += 8) {
      const __m256i rounded = _mm256_srli_epi32(
          RoundToBf16Avx2(_mm256_castps_si256(_mm256_mul_ps(Load8(x, c, cols), factor))), 16);
      // packus works within 128-bit lanes: units 0-3 and 4-7 end up in 64-bit parts 0 and 2.
      const __m256i packed =
          _mm256_permute4x64_epi64(_mm256_packus_epi32(rounded, rounded), 0x08);
      const __m128i eight = _mm256_castsi256_si128(packed);
      if (c + 8 <= cols) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + c), eight);
      } else {
        alignas(16) uint16_t tail[8];
        _mm_store_si128(reinterpret_cast<__m128i*>(tail), eight);
        std::copy(tail, tail + (cols - c), y + c);
      }
    }
  }
}

template <typename T>
void ConvertRows(const T* in, int64_t rows, int64_t cols, int64_t in_stride, float scale,
                 uint16_t* out, int64_t out_stride, CopyKernel kernel) {
  switch (kernel) {
    case CopyKernel::kAvx2:
      ConvertRowsAvx2(in, rows, cols, in_stride, scale, out, out_stride);
      return;
    case CopyKernel::kAvx512Bf16:
      ConvertRowsAvx512<true>(in, rows, cols, in_stride, scale, out, out_stride);
      return;
    case CopyKernel::kAvx512:
      ConvertRowsAvx512<false>(in, rows, cols, in_stride, scale, out, out_stride);
      return;
    case CopyKernel::kScalar:
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          out[r * out_stride + c] = FloatToBFloat16(scale * ToFloat(in[r * in_stride + c]));
        }
      }
      return;
  }
}

// K^T in bf16 from f32 or bf16 keys: per block of 64 keys, its rows in bf16, two adjacent rows
// of D forming one 32-bit unit (an odd D's last unit padded with a zero), then those units
// transposed.
template <typename T>
void TransposeKeysToBf16(const T* key, int64_t keys, int64_t dim, int64_t row_stride,
                         const KeyTransposedLayout& layout, uint16_t* key_t, CopyKernel kernel) {
  const int64_t pairs = (dim + 1) / 2;
  const UnitLayout units = {.padded_rows = layout.padded_rows / 2,
                            .row_block_stride = layout.row_block_stride / 2,
                            .key_block_stride = layout.key_block_stride / 2};
  // One staging block per thread, kept from call to call (heads are prepared by many threads).
  thread_local std::vector<uint32_t> staged;
  staged.resize(kKeyBlock * pairs);
  auto* staged_bf16 = reinterpret_cast<uint16_t*>(staged.data());
  if (dim % 2 != 0) {
    for (int64_t k = 0; k < kKeyBlock; ++k) staged_bf16[k * 2 * pairs + dim] = 0;
  }
  for (int64_t first = 0; first < layout.padded_keys; first += kKeyBlock) {
    const int64_t block_keys = std::clamp<int64_t>(keys - first, 0, kKeyBlock);
    ConvertRows(key + first * row_stride, block_keys, dim, row_stride, 1.0f, staged_bf16,
                2 * pairs, kernel);
    TransposeUnits(staged.data(), block_keys, pairs, pairs, first, kKeyBlock, units,
                   reinterpret_cast<uint32_t*>(key_t), kernel);
  }
}

// float(bfloat16(scale * x)) rows, with AVX-512 and with AVX2.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void RoundRowsAvx512(
    const float* in, int64_t rows, int64_t cols, int64_t in_stride, float scale, float* out,
    int64_t out_stride) {
  const __m512 factor = _mm512_set1_ps(scale);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * in_stride;
    float* y = out + r * out_stride;
    for (int64_t c = 0; c < cols; c += 16) {
      const __mmask16 lanes = FirstLanes(cols - c);
      const __m512i bits = _mm512_castps_si512(_mm512_mul_ps(Load16(x + c, lanes), factor));
      _mm512_mask_storeu_ps(y + c, lanes, _mm512_castsi512_ps(RoundToBf16Avx512(bits)));
    }
  }
}

__attribute__((target("avx2,fma"))) void RoundRowsAvx2(const float* in, int64_t rows,
                                                       int64_t cols, int64_t in_stride,
                                                       float scale, float* out,
                                                       int64_t out_stride) {
  const __m256 factor = _mm256_set1_ps(scale);
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * in_stride;
    float* y = out + r * out_stride;
    for (int64_t c = 0; c < cols; c += 8) {
      const __m256i bits = _mm256_castps_si256(_mm256_mul_ps(Load8(x, c, cols), factor));
      const __m256 rounded = _mm256_castsi256_ps(RoundToBf16Avx2(bits));
      if (c + 8 <= cols) {
        _mm256_storeu_ps(y + c, rounded);
      } else {
        _mm256_maskstore_ps(
            y + c, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols - c)), index),
            rounded);
      }
    }
  }
}

}  // namespace

CopyKernel BestCopyKernel() {
  switch (ActiveCpuTier()) {
    case CpuTier::kScalar:
      return CopyKernel::kScalar;
    case CpuTier::kAvx2:
      return CopyKernel::kAvx2;
    case CpuTier::kAvx512:
      return CopyKernel::kAvx512;
    case CpuTier::kAvx512Bf16:
    case CpuTier::kAmx:
      break;
  }
  return CopyKernel::kAvx512Bf16;
}

void TransposeKeys(const float* key, int64_t keys, int64_t dim, int64_t row_stride,
                   const KeyTransposedLayout& layout, float* key_t, CopyKernel kernel,
                   bool round_to_bf16) {
  static_assert(sizeof(float) == sizeof(uint32_t));
  const UnitLayout units = {.padded_rows = layout.padded_rows,
                            .row_block_stride = layout.row_block_stride,
                            .key_block_stride = layout.key_block_stride};
  // Floats copied as their bits: the same 32 bits either way, NaN payloads included.
  const auto* src = reinterpret_cast<const uint32_t*>(key);
  auto* dst = reinterpret_cast<uint32_t*>(key_t);
  if (round_to_bf16) {
    TransposeUnits<true>(src, keys, dim, row_stride, 0, layout.padded_keys, units, dst, kernel);
  } else {
    TransposeUnits(src, keys, dim, row_stride, 0, layout.padded_keys, units, dst, kernel);
  }
}

void TransposeKeys(const float* key, int64_t keys, int64_t dim, int64_t row_stride,
                   const KeyTransposedLayout& layout, uint16_t* key_t, CopyKernel kernel) {
  TransposeKeysToBf16(key, keys, dim, row_stride, layout, key_t, kernel);
}

void TransposeKeys(const uint16_t* key, int64_t keys, int64_t dim, int64_t row_stride,
                   const KeyTransposedLayout& layout, uint16_t* key_t, CopyKernel kernel) {
  TransposeKeysToBf16(key, keys, dim, row_stride, layout, key_t, kernel);
}

void ConvertRowsToBf16(const float* in, int64_t rows, int64_t cols, int64_t in_stride,
                       float scale, uint16_t* out, int64_t out_stride, CopyKernel kernel) {
  ConvertRows(in, rows, cols, in_stride, scale, out, out_stride, kernel);
}

void ConvertRowsToBf16(const uint16_t* in, int64_t rows, int64_t cols, int64_t in_stride,
                       float scale, uint16_t* out, int64_t out_stride, CopyKernel kernel) {
  ConvertRows(in, rows, cols, in_stride, scale, out, out_stride, kernel);
}

void RoundRowsToBf16(const float* in, int64_t rows, int64_t cols, int64_t in_stride, float scale,
                     float* out, int64_t out_stride, CopyKernel kernel) {
  switch (kernel) {
    case CopyKernel::kAvx512:
    case CopyKernel::kAvx512Bf16:
      RoundRowsAvx512(in, rows, cols, in_stride, scale, out, out_stride);
      return;
    case CopyKernel::kAvx2:
      RoundRowsAvx2(in, rows, cols, in_stride, scale, out, out_stride);
      return;
    case CopyKernel::kScalar:
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          out[r * out_stride + c] =
              BFloat16ToFloat(FloatToBFloat16(scale * in[r * in_stride + c]));
        }
      }
      return;
  }
}

void ConvertRowsToF32(const uint16_t* in, int64_t rows, int64_t cols, int64_t in_stride,
                      float* out) {
  // bf16 is the high half of a float: a shift the compiler vectorises (a call per element to
  // BFloat16ToFloat made decode of bf16 inputs 3x slower than of f32 ones).
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* x = in + r * in_stride;
    float* y = out + r * cols;
    for (int64_t c = 0; c < cols; ++c) y[c] = std::bit_cast<float>(uint32_t{x[c]} << 16);
  }
}

}  // namespace attn
