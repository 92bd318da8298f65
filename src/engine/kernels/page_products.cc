// Page products of paged attention, per CPU tier (see page_products.h).
//
// Scores go key by key: the key's row is loaded once (widened from bf16 in registers) and the
// dot products of a block of 4 query rows with it are summed in vectors, then reduced. Values go
// a vector of columns at a time: per block of at most 8 query rows, their accumulators for those
// columns stay in registers while every key of the page adds p * v (the page, 64 KB in f32 for
// 128 keys of 128 dims, stays in L2 between column vectors).
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
// Each is a block of at most kRows query rows at a time, kRows and the page dtype template
// parameters, so that the accumulators stay in registers (with a runtime row count they went to
// the stack and the kernels ran at a third of the speed).

#define ATTN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// 16 elements (the first `count`, the rest 0) of a page row from `at`, as f32.
template <bool kBf16>
ATTN_AVX512 inline __m512 Load512(const void* page, int64_t at, int64_t count) {
  const __mmask16 mask = FirstLanes(count);
  if constexpr (kBf16) {
    // (The maskz forms: GCC 12 warns of the plain ones' undefined start values.)
    const __m256i bits =
        _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(page) + at);
    const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xFFFF, bits);
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, wide, 16));
  } else {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(page) + at);
  }
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

// Scores of kRows query rows (from `query`) against every key of the page.
template <bool kBf16, int kRows>
ATTN_AVX512 void Avx512ScoreRows(const float* query, int64_t query_stride, const void* keys,
                                 int64_t width, int64_t dim, float scale, float* scores) {
  for (int64_t j = 0; j < width; ++j) {
    __m512 sum[kRows];
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) sum[b] = _mm512_setzero_ps();
    for (int64_t c = 0; c < dim; c += 16) {
      const int64_t count = std::min<int64_t>(16, dim - c);
      const __m512 k = Load512<kBf16>(keys, j * dim + c, count);
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        sum[b] = _mm512_fmadd_ps(Load512<false>(query + b * query_stride, c, count), k, sum[b]);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) scores[b * width + j] = scale * ReduceAdd512(sum[b]);
  }
}

// out rows (+)= p rows x the page's values, for kRows rows.
template <bool kBf16, int kRows>
ATTN_AVX512 void Avx512ValueRows(const float* p, int64_t p_stride, const void* values,
                                 int64_t width, int64_t dim, float* out, int64_t out_stride,
                                 bool accumulate) {
  for (int64_t c = 0; c < dim; c += 16) {
    const __mmask16 mask = FirstLanes(dim - c);
    __m512 acc[kRows];
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) {
      acc[b] = accumulate ? _mm512_maskz_loadu_ps(mask, out + b * out_stride + c)
                          : _mm512_setzero_ps();
    }
    for (int64_t j = 0; j < width; ++j) {
      const __m512 v = Load512<kBf16>(values, j * dim + c, dim - c);
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        acc[b] = _mm512_fmadd_ps(_mm512_set1_ps(p[b * p_stride + j]), v, acc[b]);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) _mm512_mask_storeu_ps(out + b * out_stride + c, mask, acc[b]);
  }
}

#define ATTN_AVX2 __attribute__((target("avx2,fma")))

ATTN_AVX2 inline __m256i FirstLanes256(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<int64_t>(count, 8))),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 elements (the first `count`, the rest 0) of a page row from `at`, as f32.
template <bool kBf16>
ATTN_AVX2 inline __m256 Load256(const void* page, int64_t at, int64_t count) {
  if constexpr (kBf16) {
    const uint16_t* x = static_cast<const uint16_t*>(page) + at;
    __m128i bits;
    if (count >= 8) {
      bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x));
    } else {
      alignas(16) uint16_t tail[8] = {};
      std::copy_n(x, count, tail);
      bits = _mm_load_si128(reinterpret_cast<const __m128i*>(tail));
    }
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  } else {
    const float* x = static_cast<const float*>(page) + at;
    return count >= 8 ? _mm256_loadu_ps(x) : _mm256_maskload_ps(x, FirstLanes256(count));
  }
}

ATTN_AVX2 inline float ReduceAdd256(__m256 v) {
  const __m128 pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 two = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
  return _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps(two, two, 1)));
}

template <bool kBf16, int kRows>
ATTN_AVX2 void Avx2ScoreRows(const float* query, int64_t query_stride, const void* keys,
                             int64_t width, int64_t dim, float scale, float* scores) {
  for (int64_t j = 0; j < width; ++j) {
    __m256 sum[kRows];
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) sum[b] = _mm256_setzero_ps();
    for (int64_t c = 0; c < dim; c += 8) {
      const int64_t count = std::min<int64_t>(8, dim - c);
      const __m256 k = Load256<kBf16>(keys, j * dim + c, count);
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        sum[b] = _mm256_fmadd_ps(Load256<false>(query + b * query_stride, c, count), k, sum[b]);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) scores[b * width + j] = scale * ReduceAdd256(sum[b]);
  }
}

template <bool kBf16, int kRows>
ATTN_AVX2 void Avx2ValueRows(const float* p, int64_t p_stride, const void* values, int64_t width,
                             int64_t dim, float* out, int64_t out_stride, bool accumulate) {
  for (int64_t c = 0; c < dim; c += 8) {
    const __m256i lanes = FirstLanes256(dim - c);
    __m256 acc[kRows];
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) {
      acc[b] = accumulate ? _mm256_maskload_ps(out + b * out_stride + c, lanes)
                          : _mm256_setzero_ps();
    }
    for (int64_t j = 0; j < width; ++j) {
      const __m256 v = Load256<kBf16>(values, j * dim + c, dim - c);
#pragma GCC unroll 8
      for (int b = 0; b < kRows; ++b) {
        acc[b] = _mm256_fmadd_ps(_mm256_set1_ps(p[b * p_stride + j]), v, acc[b]);
      }
    }
#pragma GCC unroll 8
    for (int b = 0; b < kRows; ++b) _mm256_maskstore_ps(out + b * out_stride + c, lanes, acc[b]);
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
    Avx512ScoreRows<kBf16, kRows>(q, qs, k, w, d, scale, s);
  }
  template <bool kBf16, int kRows>
  static void ValueRows(const float* p, int64_t ps, const void* v, int64_t w, int64_t d,
                        float* o, int64_t os, bool accumulate) {
    Avx512ValueRows<kBf16, kRows>(p, ps, v, w, d, o, os, accumulate);
  }
};
struct Avx2 {
  template <bool kBf16, int kRows>
  static void ScoreRows(const float* q, int64_t qs, const void* k, int64_t w, int64_t d,
                        float scale, float* s) {
    Avx2ScoreRows<kBf16, kRows>(q, qs, k, w, d, scale, s);
  }
  template <bool kBf16, int kRows>
  static void ValueRows(const float* p, int64_t ps, const void* v, int64_t w, int64_t d,
                        float* o, int64_t os, bool accumulate) {
    Avx2ValueRows<kBf16, kRows>(p, ps, v, w, d, o, os, accumulate);
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
