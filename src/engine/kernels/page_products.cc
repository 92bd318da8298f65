// Page products of paged attention, per CPU tier (see page_products.h).
//
// Scores go two keys at a time: the keys' rows are loaded once and the dot products of a block of
// 4 query rows with them are summed in vectors (8 independent FMA chains), then reduced. Values
// go two or four vectors of columns at a time: per block of query rows, their accumulators for
// those columns stay in registers while every key of the page adds p * v (the page, 64 KB in f32
// for 128 keys of 128 dims, stays in L2 between column blocks). bf16 pages are widened by pairs
// (LoadBf16Pairs below).
#include "src/engine/kernels/page_products.h"

#include <immintrin.h>

#include <algorithm>
#include <bit>

#include "src/engine/kernels/bf16_avx512.h"
#include "src/runtime/cpu_tier.h"

namespace attn {
namespace {

inline float Element(const void* page, bool bf16, int64_t at) {
  if (bf16) return std::bit_cast<float>(uint32_t{static_cast<const uint16_t*>(page)[at]} << 16);
  return static_cast<const float*>(page)[at];
}

// --- portable ---

void ScalarScores(const float* query, int64_t query_stride, int64_t rows, const void* keys,
                  bool bf16, int64_t width, int64_t dim, float scale, float* scores) {
  std::vector<float> key(dim);
  for (int64_t j = 0; j < width; ++j) {
    for (int64_t c = 0; c < dim; ++c) key[c] = Element(keys, bf16, j * dim + c);
    for (int64_t r = 0; r < rows; ++r) {
      const float* q = query + r * query_stride;
      float sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < dim; ++c) sum += q[c] * key[c];
      scores[r * width + j] = scale * sum;
    }
  }
}

void ScalarValues(const float* p, int64_t p_stride, int64_t rows, const void* values, bool bf16,
                  int64_t width, int64_t dim, float* out, int64_t out_stride, bool accumulate) {
  std::vector<float> value(dim);
  if (!accumulate) {
    for (int64_t r = 0; r < rows; ++r) std::fill_n(out + r * out_stride, dim, 0.0f);
  }
  for (int64_t j = 0; j < width; ++j) {
    for (int64_t c = 0; c < dim; ++c) value[c] = Element(values, bf16, j * dim + c);
    for (int64_t r = 0; r < rows; ++r) {
      const float weight = p[r * p_stride + j];
      float* o = out + r * out_stride;
      for (int64_t c = 0; c < dim; ++c) o[c] += weight * value[c];
    }
  }
}

// --- AVX-512 and AVX2 ---
//
// Each is a block of at most kRows query rows at a time, kRows a template parameter, so that
// the accumulators stay in registers (with a runtime row count they went to the stack and the
// kernels ran at a third of the speed).

#define ATTN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// 16 floats (the first `count`, the rest 0) from `at`.
ATTN_AVX512 inline __m512 Load512(const float* row, int64_t at, int64_t count) {
  return _mm512_maskz_loadu_ps(FirstLanes(count), row + at);
}

// The sum of v's lanes (GCC 12 warns of the undefined start values of _mm512_reduce_add_ps
// and _mm512_castps512_ps256).
ATTN_AVX512 inline float ReduceAdd512(__m512 v) {
  const __m512d pd = _mm512_castps_pd(v);
  const __m256 half = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, pd, 0)),
                                    _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, pd, 1)));
  const __m128 pair = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
  const __m128 two = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));
}

// Scores of kRows query rows (from `query`) against keys j .. j + kKeys - 1 of the page: kKeys x
// kRows independent FMA chains (with one key, 4 chains of 4-cycle FMAs left the FMA units idle
// half the time).
template <int kRows, int kKeys>
ATTN_AVX512 inline void Avx512ScoreKeys(const float* query, int64_t query_stride,
                                        const void* keys, int64_t j, int64_t width, int64_t dim,
                                        float scale, float* scores) {
  const float* key_rows = static_cast<const float*>(keys);
  __m512 sum[kKeys][kRows];
#pragma GCC unroll 8
  for (int b = 0; b < kRows; ++b) {
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) sum[k][b] = _mm512_setzero_ps();
  }
  for (int64_t c = 0; c < dim; c += 16) {
    const int64_t count = std::min<int64_t>(16, dim - c);
    __m512 key[kKeys];
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) key[k] = Load512(key_rows, (j + k) * dim + c, count);
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) {
      const __m512 q = Load512(query + b * query_stride, c, count);
#pragma GCC unroll 2
      for (int k = 0; k < kKeys; ++k) sum[k][b] = _mm512_fmadd_ps(q, key[k], sum[k][b]);
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < kRows; ++b) {
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) scores[b * width + j + k] = scale * ReduceAdd512(sum[k][b]);
  }
}

// Scores of kRows query rows against every key of the page, two keys at a time.
template <int kRows>
ATTN_AVX512 void Avx512ScoreRows(const float* query, int64_t query_stride, const void* keys,
                                 int64_t width, int64_t dim, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 2 <= width; j += 2) {
    Avx512ScoreKeys<kRows, 2>(query, query_stride, keys, j, width, dim, scale, scores);
  }
  if (j < width) {
    Avx512ScoreKeys<kRows, 1>(query, query_stride, keys, j, width, dim, scale, scores);
  }
}

// out rows (+)= p rows x the page's values, for kRows rows, two vectors of columns at a time
// (2 x kRows independent FMA chains; with one vector, kRows = 4 chains left the FMA units idle
// half the time).
template <int kRows>
ATTN_AVX512 void Avx512ValueRows(const float* p, int64_t p_stride, const void* values,
                                 int64_t width, int64_t dim, float* out, int64_t out_stride,
                                 bool accumulate) {
  const float* value_rows = static_cast<const float*>(values);
  constexpr int kCols = kRows <= 4 ? 4 : 2;
  for (int64_t c = 0; c < dim; c += 16 * kCols) {
    __mmask16 mask[kCols];
    __m512 acc[kCols][kRows];
#pragma GCC unroll 4
    for (int v = 0; v < kCols; ++v) {
      mask[v] = FirstLanes(dim - c - 16 * v);
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        acc[v][b] = accumulate ? _mm512_maskz_loadu_ps(mask[v], out + b * out_stride + c + 16 * v)
                               : _mm512_setzero_ps();
      }
    }
    for (int64_t j = 0; j < width; ++j) {
      __m512 value[kCols];
#pragma GCC unroll 4
      for (int v = 0; v < kCols; ++v) {
        value[v] = Load512(value_rows, j * dim + c + 16 * v, dim - c - 16 * v);
      }
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        const __m512 weight = _mm512_set1_ps(p[b * p_stride + j]);
#pragma GCC unroll 4
        for (int v = 0; v < kCols; ++v) acc[v][b] = _mm512_fmadd_ps(weight, value[v], acc[v][b]);
      }
    }
#pragma GCC unroll 4
    for (int v = 0; v < kCols; ++v) {
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        _mm512_mask_storeu_ps(out + b * out_stride + c + 16 * v, mask[v], acc[v][b]);
      }
    }
  }
}

// bf16 pages by pairs: a 64-byte load holds 32 bf16 elements, lane i of its 16 32-bit lanes
// elements 2i (low half) and 2i + 1 (high half). As f32, the even ones are the lanes shifted
// left 16 bits and the odd ones the lanes with the low half cleared: one instruction each, where
// widening 16 elements in order takes a cross-lane shuffle and a shift (the bf16 kernels were
// bound by those). Scores pair the query's columns the same way; values keep even and odd
// columns in separate accumulators and interleave them once per page.

// Lanes [0, min(count, 32)) of 32 (none when count <= 0).
ATTN_AVX512 inline __mmask32 FirstLanes32(int64_t count) {
  return count >= 32 ? 0xFFFFFFFFu : count <= 0 ? 0 : static_cast<__mmask32>((1u << count) - 1);
}

// Elements [at, at + 32) of a bf16 page row (the first `count`, the rest 0) as f32: the even
// ones and the odd ones.
ATTN_AVX512 inline void LoadBf16Pairs(const void* page, int64_t at, int64_t count, __m512* even,
                                      __m512* odd) {
  const __m512i bits =
      _mm512_maskz_loadu_epi16(FirstLanes32(count), static_cast<const uint16_t*>(page) + at);
  *even = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, bits, 16));
  *odd = _mm512_castsi512_ps(_mm512_and_si512(bits, _mm512_set1_epi32(-65536)));
}

// f32 columns [at, at + 32) of a row (the first `count`, the rest 0): the even ones and the odd.
ATTN_AVX512 inline void LoadF32Pairs(const float* row, int64_t at, int64_t count, __m512* even,
                                     __m512* odd) {
  const __m512 low = _mm512_maskz_loadu_ps(FirstLanes(count), row + at);
  const __m512 high = _mm512_maskz_loadu_ps(FirstLanes(count - 16), row + at + 16);
  const __m512i even_lanes = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24,
                                               26, 28, 30);
  *even = _mm512_permutex2var_ps(low, even_lanes, high);
  *odd = _mm512_permutex2var_ps(low, _mm512_add_epi32(even_lanes, _mm512_set1_epi32(1)), high);
}

// Columns [at, at + 32) of a row (the first `count`) from their even and odd ones.
ATTN_AVX512 inline void StoreF32Pairs(__m512 even, __m512 odd, int64_t at, int64_t count,
                                      float* row) {
  const __m512i low_lanes = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22,
                                              7, 23);
  _mm512_mask_storeu_ps(row + at, FirstLanes(count),
                        _mm512_permutex2var_ps(even, low_lanes, odd));
  _mm512_mask_storeu_ps(row + at + 16, FirstLanes(count - 16),
                        _mm512_permutex2var_ps(
                            even, _mm512_add_epi32(low_lanes, _mm512_set1_epi32(8)), odd));
}

// Scores of kRows query rows against keys j .. j + kKeys - 1 of a bf16 page, the query's columns
// already paired (`pairs`: per row, per 32 columns, the even then the odd 16).
template <int kRows, int kKeys>
ATTN_AVX512 inline void Avx512Bf16ScoreKeys(const float* pairs, int64_t chunks, const void* keys,
                                            int64_t j, int64_t width, int64_t dim, float scale,
                                            float* scores) {
  __m512 sum[kKeys][kRows];
#pragma GCC unroll 8
  for (int b = 0; b < kRows; ++b) {
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) sum[k][b] = _mm512_setzero_ps();
  }
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    __m512 even[kKeys], odd[kKeys];
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) {
      LoadBf16Pairs(keys, (j + k) * dim + 32 * chunk, dim - 32 * chunk, &even[k], &odd[k]);
    }
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) {
      const float* q = pairs + 32 * (b * chunks + chunk);
      const __m512 q_even = _mm512_loadu_ps(q), q_odd = _mm512_loadu_ps(q + 16);
#pragma GCC unroll 2
      for (int k = 0; k < kKeys; ++k) {
        sum[k][b] = _mm512_fmadd_ps(q_even, even[k], sum[k][b]);
        sum[k][b] = _mm512_fmadd_ps(q_odd, odd[k], sum[k][b]);
      }
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < kRows; ++b) {
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) scores[b * width + j + k] = scale * ReduceAdd512(sum[k][b]);
  }
}

// Scores of kRows query rows against every key of a bf16 page, two keys at a time.
template <int kRows>
ATTN_AVX512 void Avx512Bf16ScoreRows(const float* query, int64_t query_stride, const void* keys,
                                     int64_t width, int64_t dim, float scale, float* scores) {
  const int64_t chunks = (dim + 31) / 32;
  thread_local std::vector<float> pairs;
  pairs.resize(32 * kRows * chunks);
  for (int b = 0; b < kRows; ++b) {
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      __m512 even, odd;
      LoadF32Pairs(query + b * query_stride, 32 * chunk, dim - 32 * chunk, &even, &odd);
      _mm512_storeu_ps(pairs.data() + 32 * (b * chunks + chunk), even);
      _mm512_storeu_ps(pairs.data() + 32 * (b * chunks + chunk) + 16, odd);
    }
  }
  int64_t j = 0;
  for (; j + 2 <= width; j += 2) {
    Avx512Bf16ScoreKeys<kRows, 2>(pairs.data(), chunks, keys, j, width, dim, scale, scores);
  }
  if (j < width) {
    Avx512Bf16ScoreKeys<kRows, 1>(pairs.data(), chunks, keys, j, width, dim, scale, scores);
  }
}

// out rows (+)= p rows x a bf16 page's values, for kRows rows, 32 columns at a time (64 when
// kRows <= 4): their even and odd columns in separate accumulators.
template <int kRows>
ATTN_AVX512 void Avx512Bf16ValueRows(const float* p, int64_t p_stride, const void* values,
                                     int64_t width, int64_t dim, float* out, int64_t out_stride,
                                     bool accumulate) {
  constexpr int kChunks = kRows <= 4 ? 2 : 1;
  for (int64_t c = 0; c < dim; c += 32 * kChunks) {
    __m512 even[kChunks][kRows], odd[kChunks][kRows];
#pragma GCC unroll 2
    for (int h = 0; h < kChunks; ++h) {
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        if (accumulate) {
          LoadF32Pairs(out + b * out_stride, c + 32 * h, dim - c - 32 * h, &even[h][b],
                       &odd[h][b]);
        } else {
          even[h][b] = odd[h][b] = _mm512_setzero_ps();
        }
      }
    }
    for (int64_t j = 0; j < width; ++j) {
      __m512 value_even[kChunks], value_odd[kChunks];
#pragma GCC unroll 2
      for (int h = 0; h < kChunks; ++h) {
        LoadBf16Pairs(values, j * dim + c + 32 * h, dim - c - 32 * h, &value_even[h],
                      &value_odd[h]);
      }
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        const __m512 weight = _mm512_set1_ps(p[b * p_stride + j]);
#pragma GCC unroll 2
        for (int h = 0; h < kChunks; ++h) {
          even[h][b] = _mm512_fmadd_ps(weight, value_even[h], even[h][b]);
          odd[h][b] = _mm512_fmadd_ps(weight, value_odd[h], odd[h][b]);
        }
      }
    }
#pragma GCC unroll 2
    for (int h = 0; h < kChunks; ++h) {
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        StoreF32Pairs(even[h][b], odd[h][b], c + 32 * h, dim - c - 32 * h, out + b * out_stride);
      }
    }
  }
}

#define ATTN_AVX2 __attribute__((target("avx2,fma")))

ATTN_AVX2 inline __m256i FirstLanes256(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(count, 8))),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 floats (the first `count`, the rest 0) from `at`.
ATTN_AVX2 inline __m256 Load256(const float* row, int64_t at, int64_t count) {
  return count >= 8 ? _mm256_loadu_ps(row + at)
                    : _mm256_maskload_ps(row + at, FirstLanes256(count));
}

ATTN_AVX2 inline float ReduceAdd256(__m256 v) {
  const __m128 pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 two = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));
}

// Scores of kRows query rows against keys j .. j + kKeys - 1 of an f32 page (kKeys x kRows FMA
// chains, as Avx512ScoreKeys).
template <int kRows, int kKeys>
ATTN_AVX2 inline void Avx2ScoreKeys(const float* query, int64_t query_stride, const void* keys,
                                    int64_t j, int64_t width, int64_t dim, float scale,
                                    float* scores) {
  const float* key_rows = static_cast<const float*>(keys);
  __m256 sum[kKeys][kRows];
#pragma GCC unroll 8
  for (int b = 0; b < kRows; ++b) {
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) sum[k][b] = _mm256_setzero_ps();
  }
  for (int64_t c = 0; c < dim; c += 8) {
    const int64_t count = std::min<int64_t>(8, dim - c);
    __m256 key[kKeys];
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) key[k] = Load256(key_rows, (j + k) * dim + c, count);
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) {
      const __m256 q = Load256(query + b * query_stride, c, count);
#pragma GCC unroll 2
      for (int k = 0; k < kKeys; ++k) sum[k][b] = _mm256_fmadd_ps(q, key[k], sum[k][b]);
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < kRows; ++b) {
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) scores[b * width + j + k] = scale * ReduceAdd256(sum[k][b]);
  }
}

template <int kRows>
ATTN_AVX2 void Avx2ScoreRows(const float* query, int64_t query_stride, const void* keys,
                             int64_t width, int64_t dim, float scale, float* scores) {
  int64_t j = 0;
  for (; j + 2 <= width; j += 2) {
    Avx2ScoreKeys<kRows, 2>(query, query_stride, keys, j, width, dim, scale, scores);
  }
  if (j < width) Avx2ScoreKeys<kRows, 1>(query, query_stride, keys, j, width, dim, scale, scores);
}

// out rows (+)= p rows x an f32 page's values, two vectors of columns at a time when kRows <= 4
// (the accumulators of 8 rows fill the 16 registers with one).
template <int kRows>
ATTN_AVX2 void Avx2ValueRows(const float* p, int64_t p_stride, const void* values, int64_t width,
                             int64_t dim, float* out, int64_t out_stride, bool accumulate) {
  const float* value_rows = static_cast<const float*>(values);
  constexpr int kCols = kRows <= 4 ? 2 : 1;
  for (int64_t c = 0; c < dim; c += 8 * kCols) {
    __m256i lanes[kCols];
    __m256 acc[kCols][kRows];
#pragma GCC unroll 2
    for (int v = 0; v < kCols; ++v) {
      lanes[v] = FirstLanes256(dim - c - 8 * v);
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        acc[v][b] = accumulate ? _mm256_maskload_ps(out + b * out_stride + c + 8 * v, lanes[v])
                               : _mm256_setzero_ps();
      }
    }
    for (int64_t j = 0; j < width; ++j) {
      __m256 value[kCols];
#pragma GCC unroll 2
      for (int v = 0; v < kCols; ++v) {
        value[v] = Load256(value_rows, j * dim + c + 8 * v, dim - c - 8 * v);
      }
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        const __m256 weight = _mm256_set1_ps(p[b * p_stride + j]);
#pragma GCC unroll 2
        for (int v = 0; v < kCols; ++v) acc[v][b] = _mm256_fmadd_ps(weight, value[v], acc[v][b]);
      }
    }
#pragma GCC unroll 2
    for (int v = 0; v < kCols; ++v) {
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        _mm256_maskstore_ps(out + b * out_stride + c + 8 * v, lanes[v], acc[v][b]);
      }
    }
  }
}

// bf16 pages by pairs, as for AVX-512: a 32-byte load holds 16 bf16 elements, lane i elements
// 2i and 2i + 1.

// Elements [at, at + 16) of a bf16 page row (the first `count`, the rest 0) as f32: the even
// ones and the odd ones.
ATTN_AVX2 inline void LoadBf16Pairs256(const void* page, int64_t at, int64_t count,
                                       __m256* even, __m256* odd) {
  const uint16_t* x = static_cast<const uint16_t*>(page) + at;
  __m256i bits;
  if (count >= 16) {
    bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  } else {
    alignas(32) uint16_t tail[16] = {};
    std::copy_n(x, std::max<int64_t>(count, 0), tail);
    bits = _mm256_load_si256(reinterpret_cast<const __m256i*>(tail));
  }
  *even = _mm256_castsi256_ps(_mm256_slli_epi32(bits, 16));
  *odd = _mm256_castsi256_ps(_mm256_and_si256(bits, _mm256_set1_epi32(-65536)));
}

// f32 columns [at, at + 16) of a row (the first `count`, the rest 0): the even ones and the odd.
ATTN_AVX2 inline void LoadF32Pairs256(const float* row, int64_t at, int64_t count, __m256* even,
                                      __m256* odd) {
  const __m256 low = _mm256_maskload_ps(row + at, FirstLanes256(count));
  const __m256 high = _mm256_maskload_ps(row + at + 8, FirstLanes256(count - 8));
  // shuffle_ps pairs within 128-bit halves (0 2 8 10 | 4 6 12 14); the permute puts the 64-bit
  // quarters in order.
  *even = _mm256_castpd_ps(
      _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(low, high, 0x88)), 0xD8));
  *odd = _mm256_castpd_ps(
      _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(low, high, 0xDD)), 0xD8));
}

// Columns [at, at + 16) of a row (the first `count`) from their even and odd ones.
ATTN_AVX2 inline void StoreF32Pairs256(__m256 even, __m256 odd, int64_t at, int64_t count,
                                       float* row) {
  const __m256 low = _mm256_unpacklo_ps(even, odd);   // e0 o0 e1 o1 | e4 o4 e5 o5
  const __m256 high = _mm256_unpackhi_ps(even, odd);  // e2 o2 e3 o3 | e6 o6 e7 o7
  _mm256_maskstore_ps(row + at, FirstLanes256(count), _mm256_permute2f128_ps(low, high, 0x20));
  _mm256_maskstore_ps(row + at + 8, FirstLanes256(count - 8),
                      _mm256_permute2f128_ps(low, high, 0x31));
}

template <int kRows, int kKeys>
ATTN_AVX2 inline void Avx2Bf16ScoreKeys(const float* pairs, int64_t chunks, const void* keys,
                                        int64_t j, int64_t width, int64_t dim, float scale,
                                        float* scores) {
  __m256 sum[kKeys][kRows];
#pragma GCC unroll 8
  for (int b = 0; b < kRows; ++b) {
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) sum[k][b] = _mm256_setzero_ps();
  }
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    __m256 even[kKeys], odd[kKeys];
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) {
      LoadBf16Pairs256(keys, (j + k) * dim + 16 * chunk, dim - 16 * chunk, &even[k], &odd[k]);
    }
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) {
      const float* q = pairs + 16 * (b * chunks + chunk);
      const __m256 q_even = _mm256_loadu_ps(q), q_odd = _mm256_loadu_ps(q + 8);
#pragma GCC unroll 2
      for (int k = 0; k < kKeys; ++k) {
        sum[k][b] = _mm256_fmadd_ps(q_even, even[k], sum[k][b]);
        sum[k][b] = _mm256_fmadd_ps(q_odd, odd[k], sum[k][b]);
      }
    }
  }
#pragma GCC unroll 8
  for (int b = 0; b < kRows; ++b) {
#pragma GCC unroll 2
    for (int k = 0; k < kKeys; ++k) scores[b * width + j + k] = scale * ReduceAdd256(sum[k][b]);
  }
}

template <int kRows>
ATTN_AVX2 void Avx2Bf16ScoreRows(const float* query, int64_t query_stride, const void* keys,
                                 int64_t width, int64_t dim, float scale, float* scores) {
  const int64_t chunks = (dim + 15) / 16;
  thread_local std::vector<float> pairs;
  pairs.resize(16 * kRows * chunks);
  for (int b = 0; b < kRows; ++b) {
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      __m256 even, odd;
      LoadF32Pairs256(query + b * query_stride, 16 * chunk, dim - 16 * chunk, &even, &odd);
      _mm256_storeu_ps(pairs.data() + 16 * (b * chunks + chunk), even);
      _mm256_storeu_ps(pairs.data() + 16 * (b * chunks + chunk) + 8, odd);
    }
  }
  int64_t j = 0;
  for (; j + 2 <= width; j += 2) {
    Avx2Bf16ScoreKeys<kRows, 2>(pairs.data(), chunks, keys, j, width, dim, scale, scores);
  }
  if (j < width) {
    Avx2Bf16ScoreKeys<kRows, 1>(pairs.data(), chunks, keys, j, width, dim, scale, scores);
  }
}

// out rows (+)= p rows x a bf16 page's values, 16 columns at a time, their even and odd columns
// in separate accumulators; more than 4 rows go as two blocks (8 rows' accumulators would not
// fit the 16 registers).
template <int kRows>
ATTN_AVX2 void Avx2Bf16ValueRows(const float* p, int64_t p_stride, const void* values,
                                 int64_t width, int64_t dim, float* out, int64_t out_stride,
                                 bool accumulate) {
  if constexpr (kRows > 4) {
    Avx2Bf16ValueRows<4>(p, p_stride, values, width, dim, out, out_stride, accumulate);
    Avx2Bf16ValueRows<kRows - 4>(p + 4 * p_stride, p_stride, values, width, dim,
                                 out + 4 * out_stride, out_stride, accumulate);
  } else {
    for (int64_t c = 0; c < dim; c += 16) {
      __m256 even[kRows], odd[kRows];
#pragma GCC unroll 4
      for (int b = 0; b < kRows; ++b) {
        if (accumulate) {
          LoadF32Pairs256(out + b * out_stride, c, dim - c, &even[b], &odd[b]);
        } else {
          even[b] = odd[b] = _mm256_setzero_ps();
        }
      }
      for (int64_t j = 0; j < width; ++j) {
        __m256 value_even, value_odd;
        LoadBf16Pairs256(values, j * dim + c, dim - c, &value_even, &value_odd);
#pragma GCC unroll 4
        for (int b = 0; b < kRows; ++b) {
          const __m256 weight = _mm256_set1_ps(p[b * p_stride + j]);
          even[b] = _mm256_fmadd_ps(weight, value_even, even[b]);
          odd[b] = _mm256_fmadd_ps(weight, value_odd, odd[b]);
        }
      }
#pragma GCC unroll 4
      for (int b = 0; b < kRows; ++b) {
        StoreF32Pairs256(even[b], odd[b], c, dim - c, out + b * out_stride);
      }
    }
  }
}

// Query rows per block of the scores (four FMA chains per key) and of the values (their
// accumulators for one vector of columns in registers).
constexpr int kScoreRows = 4;
constexpr int kValueRows = 8;

// The row kernels of one ISA (the functions above), for the dispatchers below.
struct Avx512 {
  template <bool kBf16, int kRows>
  static void ScoreRows(const float* q, int64_t qs, const void* k, int64_t w, int64_t d,
                        float scale, float* s) {
    if constexpr (kBf16) {
      Avx512Bf16ScoreRows<kRows>(q, qs, k, w, d, scale, s);
    } else {
      Avx512ScoreRows<kRows>(q, qs, k, w, d, scale, s);
    }
  }
  template <bool kBf16, int kRows>
  static void ValueRows(const float* p, int64_t ps, const void* v, int64_t w, int64_t d,
                        float* o, int64_t os, bool accumulate) {
    if constexpr (kBf16) {
      Avx512Bf16ValueRows<kRows>(p, ps, v, w, d, o, os, accumulate);
    } else {
      Avx512ValueRows<kRows>(p, ps, v, w, d, o, os, accumulate);
    }
  }
};
struct Avx2 {
  template <bool kBf16, int kRows>
  static void ScoreRows(const float* q, int64_t qs, const void* k, int64_t w, int64_t d,
                        float scale, float* s) {
    if constexpr (kBf16) {
      Avx2Bf16ScoreRows<kRows>(q, qs, k, w, d, scale, s);
    } else {
      Avx2ScoreRows<kRows>(q, qs, k, w, d, scale, s);
    }
  }
  template <bool kBf16, int kRows>
  static void ValueRows(const float* p, int64_t ps, const void* v, int64_t w, int64_t d,
                        float* o, int64_t os, bool accumulate) {
    if constexpr (kBf16) {
      Avx2Bf16ValueRows<kRows>(p, ps, v, w, d, o, os, accumulate);
    } else {
      Avx2ValueRows<kRows>(p, ps, v, w, d, o, os, accumulate);
    }
  }
};

// Blocks of kScoreRows rows (the last one smaller), each by the instantiation for its size.
template <typename Isa, bool kBf16>
void ScoresByBlocks(const float* query, int64_t query_stride, int64_t rows, const void* keys,
                    int64_t width, int64_t dim, float scale, float* scores) {
  for (int64_t r0 = 0; r0 < rows; r0 += kScoreRows) {
    const float* q = query + r0 * query_stride;
    float* s = scores + r0 * width;
    switch (std::min<int64_t>(kScoreRows, rows - r0)) {
      case 4: Isa::template ScoreRows<kBf16, 4>(q, query_stride, keys, width, dim, scale, s); break;
      case 3: Isa::template ScoreRows<kBf16, 3>(q, query_stride, keys, width, dim, scale, s); break;
      case 2: Isa::template ScoreRows<kBf16, 2>(q, query_stride, keys, width, dim, scale, s); break;
      default: Isa::template ScoreRows<kBf16, 1>(q, query_stride, keys, width, dim, scale, s);
    }
  }
}

// Blocks of kValueRows rows likewise.
template <typename Isa, bool kBf16>
void ValuesByBlocks(const float* p, int64_t p_stride, int64_t rows, const void* values,
                    int64_t width, int64_t dim, float* out, int64_t out_stride, bool accumulate) {
  for (int64_t r0 = 0; r0 < rows; r0 += kValueRows) {
    const float* pr = p + r0 * p_stride;
    float* o = out + r0 * out_stride;
    auto rows_of = [&]<int kRows>() {
      Isa::template ValueRows<kBf16, kRows>(pr, p_stride, values, width, dim, o, out_stride,
                                            accumulate);
    };
    switch (std::min<int64_t>(kValueRows, rows - r0)) {
      case 8: rows_of.template operator()<8>(); break;
      case 7: rows_of.template operator()<7>(); break;
      case 6: rows_of.template operator()<6>(); break;
      case 5: rows_of.template operator()<5>(); break;
      case 4: rows_of.template operator()<4>(); break;
      case 3: rows_of.template operator()<3>(); break;
      case 2: rows_of.template operator()<2>(); break;
      default: rows_of.template operator()<1>();
    }
  }
}

template <typename Isa>
void ScoresOf(const float* query, int64_t query_stride, int64_t rows, const void* keys, bool bf16,
              int64_t width, int64_t dim, float scale, float* scores) {
  if (bf16) {
    ScoresByBlocks<Isa, true>(query, query_stride, rows, keys, width, dim, scale, scores);
  } else {
    ScoresByBlocks<Isa, false>(query, query_stride, rows, keys, width, dim, scale, scores);
  }
}

template <typename Isa>
void ValuesOf(const float* p, int64_t p_stride, int64_t rows, const void* values, bool bf16,
              int64_t width, int64_t dim, float* out, int64_t out_stride, bool accumulate) {
  if (bf16) {
    ValuesByBlocks<Isa, true>(p, p_stride, rows, values, width, dim, out, out_stride, accumulate);
  } else {
    ValuesByBlocks<Isa, false>(p, p_stride, rows, values, width, dim, out, out_stride,
                               accumulate);
  }
}

}  // namespace

std::vector<PageProductKernels> PageProductKernelsOfThisCpu() {
  const CpuTier tier = ActiveCpuTier();
  std::vector<PageProductKernels> kernels = {{"scalar", ScalarScores, ScalarValues}};
  if (tier >= CpuTier::kAvx2) kernels.push_back({"avx2", ScoresOf<Avx2>, ValuesOf<Avx2>});
  if (tier >= CpuTier::kAvx512) {
    kernels.push_back({"avx512", ScoresOf<Avx512>, ValuesOf<Avx512>});
  }
  return kernels;
}

PageProductKernels BestPageProductKernels() {
  static const PageProductKernels best = PageProductKernelsOfThisCpu().back();
  return best;
}

}  // namespace attn
