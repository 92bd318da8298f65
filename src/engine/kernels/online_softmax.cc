// Online softmax steps, scalar, AVX2 and AVX-512 (see online_softmax.h).
#include "src/engine/kernels/online_softmax.h"

// GCC 12's AVX-512 headers start reductions and max/roundscale from _mm512_undefined_ps(), which
// -Wmaybe-uninitialized (or, once inlined, -Wuninitialized) reports as used uninitialised (a
// false positive of those headers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "src/engine/kernels/bf16_avx512.h"
#include "src/runtime/cpu_tier.h"

namespace attn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// How far scores may pass a row's reference before it is raised: 8 ln 2, so p <= 256.
constexpr float kMaxLag = 5.5451774f;

// bfloat16 of a finite float, rounded to nearest even.
uint16_t ToBf16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

// Row r's running state after a step that took its p against `ref`: row_max = ref, and when
// ref rose from the old reference, l and acc multiplied by exp(old - ref) (0 when the old one
// was -inf) before l += tile_sum. (Always inlined, so the AVX-512 steps vectorise the acc
// rescaling too: left out of line, it alone took a fifth of a step.)
[[gnu::always_inline]] inline void UpdateRow(const OnlineSoftmaxState& state, int64_t r,
                                             float ref, float tile_sum) {
  const float old_ref = state.row_max[r];
  state.row_max[r] = ref;
  const float alpha = ref == old_ref ? 1.0f : old_ref == kNegInf ? 0.0f : std::exp(old_ref - ref);
  state.row_sum[r] = state.row_sum[r] * alpha + tile_sum;
  if (alpha == 1.0f) return;
  float* acc = state.acc + r * state.acc_cols;
  for (int64_t c = 0; c < state.acc_cols; ++c) acc[c] *= alpha;
}

// p = 0 for a row's forbidden keys [keys, width), in f32 and (unless null) bf16.
void ZeroForbiddenKeys(float* p, uint16_t* p16, int64_t keys, int64_t width) {
  std::fill(p + keys, p + width, 0.0f);
  if (p16 != nullptr) std::fill(p16 + keys, p16 + width, uint16_t{0});
}

// 1 / sum, or 0 for a row that saw no key (sum 0): its output and probabilities are 0.
inline float InverseSum(float sum) { return sum > 0.0f ? 1.0f / sum : 0.0f; }

// exp(x) for x <= kMaxLag, 0 below -87.33654 (-inf included): Exp512's range reduction and
// polynomial in portable code, without calls, so that the loops calling it are vectorised (on
// any x86-64; this file is compiled with -fno-trapping-math so that the selects need no
// branches, and the loops' reductions are `omp simd`). With std::exp, a call per score, the
// portable whole-row softmax ran at 4.4 ns a score; now 2.8-3.0, against 1.8-1.9 for oneDNN's
// SSE4.1 softmax_v2 (build/softmax-bench, capped at the scalar tier).
inline float ExpPortable(float x) {
  const bool live = x >= -87.33654f;
  x = std::max(x, -87.33654f);
  // n = round(x log2 e): adding 1.5 * 2^23 rounds to an integer (|x log2 e| < 2^22).
  const float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;  // ln 2, high part
  r = r - n * -2.12194440e-4f;     // ln 2, low part
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^n, a normal float: n >= -126 for x >= -87.33654.
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return live ? p * two_n : 0.0f;
}

// The max of the `count` scores at s (-inf when count is 0), vectorised.
inline float MaxPortable(const float* s, int64_t count) {
  float max = kNegInf;
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < count; ++j) max = std::max(max, s[j]);
  return max;
}

// p[j] = exp(s[j] - shift) for j < count and 0 for j in [count, width) (0 for all when shift
// is -inf); returns the sum of the `width` p. The sum runs over the whole width, so that its
// order (vector lanes) does not depend on count: a row limited to its first keys sums exactly
// as the same row with -inf past them.
inline float ExpAndSumPortable(const float* s, int64_t count, int64_t width, float shift,
                               float* p) {
  if (shift == kNegInf) count = 0;
#pragma omp simd
  for (int64_t j = 0; j < count; ++j) p[j] = ExpPortable(s[j] - shift);
  std::fill(p + count, p + width, 0.0f);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < width; ++j) sum += p[j];
  return sum;
}

// exp(x) for x <= kMaxLag (x = score - the row's reference), 0 for -inf: with
// n = round(x log2 e) and r = x - n ln 2 in [-ln2/2, ln2/2], exp(x) = 2^n * exp(r), exp(r) by
// its degree-6 Taylor polynomial (relative error < 2.4e-7, the rounding of the result included:
// 2.31e-7 at worst over every float of the range). Below -87.3 the result underflows and
// is returned as 0, and never computed as a denormal: a scalef into the denormal range (every
// masked key of a causal tile) took a slow path that doubled the time of small causal calls.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512 Exp512(__m512 x) {
  const __m512 lowest = _mm512_set1_ps(-87.33654f);
  const __mmask16 live = _mm512_cmp_ps_mask(x, lowest, _CMP_GE_OQ);
  x = _mm512_max_ps(x, lowest);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // ln 2, high part
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);      // ln 2, low part
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_maskz_mov_ps(live, _mm512_scalef_ps(p, n));
}

// The max of the `count` scores at s (-inf when count is 0).
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline float Max512(const float* s,
                                                                          int64_t count) {
  const __m512 neg_inf = _mm512_set1_ps(kNegInf);
  __m512 vmax = neg_inf;
  int64_t j = 0;
  for (; j + 16 <= count; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(s + j));
  const __mmask16 tail = FirstLanes(count - j);
  if (tail != 0) vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(neg_inf, tail, s + j));
  return _mm512_reduce_max_ps(vmax);
}

// Lanes [0, min(count, 8)) of an AVX2 vector, all-ones int32 lanes (none when count <= 0).
__attribute__((target("avx2,fma"))) inline __m256i FirstLanes256(int64_t count) {
  const int n = static_cast<int>(std::clamp<int64_t>(count, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The first min(count, 8) floats at s, the lanes past them -inf (nothing read past them).
__attribute__((target("avx2,fma"))) inline __m256 LoadOrNegInf256(const float* s,
                                                                  int64_t count) {
  if (count >= 8) return _mm256_loadu_ps(s);
  const __m256i lanes = FirstLanes256(count);
  return _mm256_blendv_ps(_mm256_set1_ps(kNegInf), _mm256_maskload_ps(s, lanes),
                          _mm256_castsi256_ps(lanes));
}

// The first min(count, 8) floats at s, the lanes past them 0 (nothing read past them).
__attribute__((target("avx2,fma"))) inline __m256 LoadOrZero256(const float* s, int64_t count) {
  return count >= 8 ? _mm256_loadu_ps(s) : _mm256_maskload_ps(s, FirstLanes256(count));
}

// Stores the first min(count, 8) lanes of x to out (nothing written past them).
__attribute__((target("avx2,fma"))) inline void Store256(float* out, int64_t count, __m256 x) {
  if (count >= 8) {
    _mm256_storeu_ps(out, x);
  } else {
    _mm256_maskstore_ps(out, FirstLanes256(count), x);
  }
}

// The bfloat16 of the first min(count, 8) lanes of x, rounded to nearest even by integer
// arithmetic (NaN kept a quiet NaN of its sign), stored to out (nothing written past them).
__attribute__((target("avx2,fma"))) inline void StoreBf16Avx2(__m256 x, int64_t count,
                                                               uint16_t* out) {
  const __m256i bits = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  __m256i rounded = _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  rounded = _mm256_blendv_epi8(rounded, _mm256_or_si256(bits, _mm256_set1_epi32(0x00400000)),
                               nan);
  // The high halves fit 16 bits unsigned, so packus only narrows: words 0-3 land in quadword 0,
  // words 4-7 in quadword 2, which the permute brings together.
  const __m256i words =
      _mm256_packus_epi32(_mm256_srli_epi32(rounded, 16), _mm256_setzero_si256());
  const __m128i packed = _mm256_castsi256_si128(_mm256_permute4x64_epi64(words, 0x08));
  if (count >= 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), packed);
  } else if (count > 0) {
    alignas(16) uint16_t lanes[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), packed);
    std::memcpy(out, lanes, count * sizeof(uint16_t));
  }
}

// Exp512 on 8 lanes, bit for bit: the same range, polynomial and error, but 2^n made by adding
// n to the exponent bits of exp(r) (AVX2 has no scalef). That stays a normal float: n is -126
// only for x >= -87.33654 > ln 2^-126, where r > 0 and so exp(r) >= 1.
__attribute__((target("avx2,fma"))) inline __m256 Exp256(__m256 x) {
  const __m256 lowest = _mm256_set1_ps(-87.33654f);
  const __m256 live = _mm256_cmp_ps(x, lowest, _CMP_GE_OQ);
  x = _mm256_max_ps(x, lowest);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln 2, high part
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);      // ln 2, low part
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i scaled = _mm256_add_epi32(_mm256_castps_si256(p),
                                          _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23));
  return _mm256_and_ps(_mm256_castsi256_ps(scaled), live);
}

// The max of the 8 lanes of v.
__attribute__((target("avx2,fma"))) inline float ReduceMax256(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

// The sum of the 8 lanes of v.
__attribute__((target("avx2,fma"))) inline float ReduceAdd256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// The max of the `count` scores at s (-inf when count is 0), with AVX2.
__attribute__((target("avx2,fma"))) inline float Max256(const float* s, int64_t count) {
  __m256 vmax = _mm256_set1_ps(kNegInf);
  int64_t j = 0;
  for (; j + 8 <= count; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
  if (j < count) vmax = _mm256_max_ps(vmax, LoadOrNegInf256(s + j, count - j));
  return ReduceMax256(vmax);
}

// The AVX-512 step (F, BW, VL); kNativeBf16 needs AVX512_BF16 too. One pass per row: each
// vector of scores is checked against the reference plus kMaxLag as it is exponentiated. A
// score above that raises the reference -- the first time in a row that has none yet to the
// max of its vector, otherwise to the max of the row's scores from there on (which no later
// score can pass) -- and the p already written are multiplied by exp(old - new). Rows thus take
// a separate pass for their max only when their scores jump, not on every tile.
template <bool kNativeBf16>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void Avx512Step(
    float* scores, int64_t rows, int64_t width, const int64_t* row_keys,
    const OnlineSoftmaxState& state, uint16_t* probs_bf16) {
  const __m512 neg_inf = _mm512_set1_ps(kNegInf);
  for (int64_t r = 0; r < rows; ++r) {
    float* s = scores + r * width;
    uint16_t* p16 = probs_bf16 != nullptr ? probs_bf16 + r * width : nullptr;
    const int64_t keys = row_keys != nullptr ? row_keys[r] : width;  // the row's allowed keys
    float ref = state.row_max[r];
    __m512 shift = _mm512_set1_ps(ref);
    __m512 limit = _mm512_set1_ps(ref + kMaxLag);
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t j = 0; j < keys; j += 16) {
      const __mmask16 lanes = FirstLanes(keys - j);
      const __m512 x = _mm512_mask_loadu_ps(neg_inf, lanes, s + j);
      if (_mm512_cmp_ps_mask(x, limit, _CMP_GT_OQ) != 0) {
        // A score past the lag: raise the reference, and rescale the p of keys [0, j).
        const float new_ref = ref == kNegInf ? _mm512_reduce_max_ps(x) : Max512(s + j, keys - j);
        const __m512 factor = _mm512_set1_ps(ref == kNegInf ? 0.0f : std::exp(ref - new_ref));
        for (int64_t i = 0; i < j; i += 16) {
          const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(s + i), factor);
          _mm512_storeu_ps(s + i, p);
          if (p16 != nullptr) StoreBf16<kNativeBf16>(p, 0xFFFF, p16 + i);
        }
        vsum = _mm512_mul_ps(vsum, factor);
        ref = new_ref;
        shift = _mm512_set1_ps(ref);
        limit = _mm512_set1_ps(ref + kMaxLag);
      }
      // p = exp(s - ref), and 0 while every score so far is -inf (no reference yet).
      const __m512 p = ref == kNegInf ? _mm512_setzero_ps() : Exp512(_mm512_sub_ps(x, shift));
      _mm512_mask_storeu_ps(s + j, lanes, p);
      vsum = _mm512_add_ps(vsum, p);
      if (p16 != nullptr) StoreBf16<kNativeBf16>(p, lanes, p16 + j);
    }
    ZeroForbiddenKeys(s, p16, keys, width);
    UpdateRow(state, r, ref, _mm512_reduce_add_ps(vsum));
  }
}

// The AVX2 step: Avx512Step's algorithm (one pass per row, the reference raised only past the
// lag) on vectors of 8 scores.
__attribute__((target("avx2,fma"))) void Avx2Step(float* scores, int64_t rows, int64_t width,
                                                  const int64_t* row_keys,
                                                  const OnlineSoftmaxState& state,
                                                  uint16_t* probs_bf16) {
  for (int64_t r = 0; r < rows; ++r) {
    float* s = scores + r * width;
    uint16_t* p16 = probs_bf16 != nullptr ? probs_bf16 + r * width : nullptr;
    const int64_t keys = row_keys != nullptr ? row_keys[r] : width;  // the row's allowed keys
    float ref = state.row_max[r];
    __m256 shift = _mm256_set1_ps(ref);
    __m256 limit = _mm256_set1_ps(ref + kMaxLag);
    __m256 vsum = _mm256_setzero_ps();
    for (int64_t j = 0; j < keys; j += 8) {
      const __m256 x = LoadOrNegInf256(s + j, keys - j);
      if (_mm256_movemask_ps(_mm256_cmp_ps(x, limit, _CMP_GT_OQ)) != 0) {
        // A score past the lag: raise the reference, and rescale the p of keys [0, j).
        const float new_ref = ref == kNegInf ? ReduceMax256(x) : Max256(s + j, keys - j);
        const __m256 factor = _mm256_set1_ps(ref == kNegInf ? 0.0f : std::exp(ref - new_ref));
        for (int64_t i = 0; i < j; i += 8) {
          const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(s + i), factor);
          _mm256_storeu_ps(s + i, p);
          if (p16 != nullptr) StoreBf16Avx2(p, 8, p16 + i);
        }
        vsum = _mm256_mul_ps(vsum, factor);
        ref = new_ref;
        shift = _mm256_set1_ps(ref);
        limit = _mm256_set1_ps(ref + kMaxLag);
      }
      // p = exp(s - ref), and 0 while every score so far is -inf (no reference yet).
      const __m256 p = ref == kNegInf ? _mm256_setzero_ps() : Exp256(_mm256_sub_ps(x, shift));
      Store256(s + j, keys - j, p);
      vsum = _mm256_add_ps(vsum, p);
      if (p16 != nullptr) StoreBf16Avx2(p, keys - j, p16 + j);
    }
    ZeroForbiddenKeys(s, p16, keys, width);
    UpdateRow(state, r, ref, ReduceAdd256(vsum));
  }
}

// The portable step: per row a max pass, then exp against the (possibly raised) reference.
void ScalarStep(float* scores, int64_t rows, int64_t width, const int64_t* row_keys,
                const OnlineSoftmaxState& state, uint16_t* probs_bf16) {
  for (int64_t r = 0; r < rows; ++r) {
    float* s = scores + r * width;
    uint16_t* p16 = probs_bf16 != nullptr ? probs_bf16 + r * width : nullptr;
    const int64_t keys = row_keys != nullptr ? row_keys[r] : width;  // the row's allowed keys
    // The reference rises to the tile's max only when that is past the lag.
    const float tile_max = MaxPortable(s, keys);
    const float old_ref = state.row_max[r];
    const float ref = tile_max > old_ref + kMaxLag ? tile_max : old_ref;
    const float sum = ExpAndSumPortable(s, keys, width, ref, s);
    for (int64_t j = 0; p16 != nullptr && j < keys; ++j) p16[j] = ToBf16(s[j]);
    ZeroForbiddenKeys(s, p16, keys, width);
    UpdateRow(state, r, ref, sum);
  }
}

// OnlineSoftmaxWholeRowsFn, portable, with AVX-512 and with AVX2.
void ScalarWholeRows(float* scores, int64_t rows, int64_t width, const int64_t* row_keys,
                     float* out, int64_t out_stride, uint16_t* probs_bf16) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scores + r * width;
    float* p = out != nullptr ? out + r * out_stride : scores + r * width;
    uint16_t* p16 = probs_bf16 != nullptr ? probs_bf16 + r * width : nullptr;
    const int64_t keys = row_keys != nullptr ? row_keys[r] : width;  // the row's allowed keys
    const float max = MaxPortable(s, keys);
    const float inverse = InverseSum(ExpAndSumPortable(s, keys, width, max, p));
#pragma omp simd
    for (int64_t j = 0; j < keys; ++j) p[j] *= inverse;
    for (int64_t j = 0; p16 != nullptr && j < keys; ++j) p16[j] = ToBf16(p[j]);
    ZeroForbiddenKeys(p, p16, keys, width);
  }
}

// One row of at most 16 * kVectors keys held in registers: read once, P written once (lanes
// past the row's allowed keys, loaded as -inf, give 0).
template <bool kNativeBf16, int kVectors>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void Avx512RowInRegisters(
    const float* s, int64_t keys, int64_t width, float* p, uint16_t* p16) {
  const __m512 neg_inf = _mm512_set1_ps(kNegInf);
  __m512 x[kVectors];
  __m512 vmax = neg_inf;
  for (int i = 0; i < kVectors; ++i) {
    x[i] = _mm512_mask_loadu_ps(neg_inf, FirstLanes(keys - 16 * i), s + 16 * i);
    vmax = _mm512_max_ps(vmax, x[i]);
  }
  const float max = _mm512_reduce_max_ps(vmax);
  // p = exp(s - max), and 0 for a row with no allowed key (max -inf).
  const __m512 shift = _mm512_set1_ps(max);
  __m512 vsum = _mm512_setzero_ps();
  for (int i = 0; i < kVectors; ++i) {
    x[i] = max == kNegInf ? _mm512_setzero_ps() : Exp512(_mm512_sub_ps(x[i], shift));
    vsum = _mm512_add_ps(vsum, x[i]);
  }
  const __m512 inverse = _mm512_set1_ps(InverseSum(_mm512_reduce_add_ps(vsum)));
  for (int i = 0; i < kVectors; ++i) {
    const __mmask16 lanes = FirstLanes(width - 16 * i);
    const __m512 y = _mm512_mul_ps(x[i], inverse);
    if (p != nullptr) _mm512_mask_storeu_ps(p + 16 * i, lanes, y);
    if (p16 != nullptr) StoreBf16<kNativeBf16>(y, lanes, p16 + 16 * i);
  }
}

template <bool kNativeBf16>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void Avx512WholeRows(
    float* scores, int64_t rows, int64_t width, const int64_t* row_keys, float* out,
    int64_t out_stride, uint16_t* probs_bf16) {
  const __m512 neg_inf = _mm512_set1_ps(kNegInf);
  for (int64_t r = 0; r < rows; ++r) {
    if (width <= 128) {
      const float* s = scores + r * width;
      float* p = out != nullptr ? out + r * out_stride : nullptr;
      uint16_t* p16 = probs_bf16 != nullptr ? probs_bf16 + r * width : nullptr;
      const int64_t keys = row_keys != nullptr ? row_keys[r] : width;
      if (width <= 64) {
        Avx512RowInRegisters<kNativeBf16, 4>(s, keys, width, p, p16);
      } else {
        Avx512RowInRegisters<kNativeBf16, 8>(s, keys, width, p, p16);
      }
      continue;
    }
    const float* s = scores + r * width;
    float* p = out != nullptr ? out + r * out_stride : scores + r * width;
    uint16_t* p16 = probs_bf16 != nullptr ? probs_bf16 + r * width : nullptr;
    const int64_t keys = row_keys != nullptr ? row_keys[r] : width;  // the row's allowed keys
    const float max = Max512(s, keys);
    // p = exp(s - max), and 0 for a row with no allowed key (max -inf).
    const __m512 shift = _mm512_set1_ps(max);
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t j = 0; j < keys; j += 16) {
      const __mmask16 lanes = FirstLanes(keys - j);
      const __m512 x = _mm512_mask_loadu_ps(neg_inf, lanes, s + j);
      const __m512 e = max == kNegInf ? _mm512_setzero_ps() : Exp512(_mm512_sub_ps(x, shift));
      _mm512_mask_storeu_ps(p + j, lanes, e);
      vsum = _mm512_add_ps(vsum, e);
    }
    // P = p / sum, the row still in the L1 cache.
    const __m512 inverse = _mm512_set1_ps(InverseSum(_mm512_reduce_add_ps(vsum)));
    for (int64_t j = 0; j < keys; j += 16) {
      const __mmask16 lanes = FirstLanes(keys - j);
      const __m512 x = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, p + j), inverse);
      if (out != nullptr) _mm512_mask_storeu_ps(p + j, lanes, x);
      if (p16 != nullptr) StoreBf16<kNativeBf16>(x, lanes, p16 + j);
    }
    ZeroForbiddenKeys(p, p16, keys, width);
  }
}

// Avx512RowInRegisters with AVX2: one row of at most 8 * kVectors keys.
template <int kVectors>
__attribute__((target("avx2,fma"))) inline void Avx2RowInRegisters(const float* s, int64_t keys,
                                                                   int64_t width, float* p,
                                                                   uint16_t* p16) {
  __m256 x[kVectors];
  __m256 vmax = _mm256_set1_ps(kNegInf);
  for (int i = 0; i < kVectors; ++i) {
    x[i] = LoadOrNegInf256(s + 8 * i, keys - 8 * i);
    vmax = _mm256_max_ps(vmax, x[i]);
  }
  const float max = ReduceMax256(vmax);
  // p = exp(s - max), and 0 for a row with no allowed key (max -inf).
  const __m256 shift = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  for (int i = 0; i < kVectors; ++i) {
    x[i] = max == kNegInf ? _mm256_setzero_ps() : Exp256(_mm256_sub_ps(x[i], shift));
    vsum = _mm256_add_ps(vsum, x[i]);
  }
  const __m256 inverse = _mm256_set1_ps(InverseSum(ReduceAdd256(vsum)));
  for (int i = 0; i < kVectors; ++i) {
    const __m256 y = _mm256_mul_ps(x[i], inverse);
    if (p != nullptr) Store256(p + 8 * i, width - 8 * i, y);
    if (p16 != nullptr) StoreBf16Avx2(y, width - 8 * i, p16 + 8 * i);
  }
}

// Avx512WholeRows with AVX2: rows of up to 64 keys in registers, longer ones streamed.
__attribute__((target("avx2,fma"))) void Avx2WholeRows(float* scores, int64_t rows,
                                                       int64_t width, const int64_t* row_keys,
                                                       float* out, int64_t out_stride,
                                                       uint16_t* probs_bf16) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scores + r * width;
    uint16_t* p16 = probs_bf16 != nullptr ? probs_bf16 + r * width : nullptr;
    const int64_t keys = row_keys != nullptr ? row_keys[r] : width;  // the row's allowed keys
    if (width <= 64) {
      float* p = out != nullptr ? out + r * out_stride : nullptr;
      if (width <= 32) {
        Avx2RowInRegisters<4>(s, keys, width, p, p16);
      } else {
        Avx2RowInRegisters<8>(s, keys, width, p, p16);
      }
      continue;
    }
    float* p = out != nullptr ? out + r * out_stride : scores + r * width;
    const float max = Max256(s, keys);
    // p = exp(s - max), and 0 for a row with no allowed key (max -inf).
    const __m256 shift = _mm256_set1_ps(max);
    __m256 vsum = _mm256_setzero_ps();
    for (int64_t j = 0; j < keys; j += 8) {
      const __m256 x = LoadOrNegInf256(s + j, keys - j);
      const __m256 e = max == kNegInf ? _mm256_setzero_ps() : Exp256(_mm256_sub_ps(x, shift));
      Store256(p + j, keys - j, e);
      vsum = _mm256_add_ps(vsum, e);
    }
    // P = p / sum, the row still in the L1 cache.
    const __m256 inverse = _mm256_set1_ps(InverseSum(ReduceAdd256(vsum)));
    for (int64_t j = 0; j < keys; j += 8) {
      const __m256 x = _mm256_mul_ps(LoadOrZero256(p + j, keys - j), inverse);
      if (out != nullptr) Store256(p + j, keys - j, x);
      if (p16 != nullptr) StoreBf16Avx2(x, keys - j, p16 + j);
    }
    ZeroForbiddenKeys(p, p16, keys, width);
  }
}

// OnlineSoftmaxFinishFn, portable, with AVX-512 and with AVX2.
void ScalarFinish(const OnlineSoftmaxState& state, int64_t rows, float* out,
                  int64_t out_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* acc = state.acc + r * state.acc_cols;
    const float inverse = InverseSum(state.row_sum[r]);
    float* o = out + r * out_stride;
    for (int64_t c = 0; c < state.acc_cols; ++c) o[c] = acc[c] * inverse;
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void Avx512Finish(
    const OnlineSoftmaxState& state, int64_t rows, float* out, int64_t out_stride) {
  const int64_t cols = state.acc_cols;
  for (int64_t r = 0; r < rows; ++r) {
    const float* acc = state.acc + r * cols;
    const __m512 inverse = _mm512_set1_ps(InverseSum(state.row_sum[r]));
    float* o = out + r * out_stride;
    for (int64_t c = 0; c < cols; c += 16) {
      const __mmask16 lanes = FirstLanes(cols - c);
      _mm512_mask_storeu_ps(o + c, lanes,
                            _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, acc + c), inverse));
    }
  }
}

__attribute__((target("avx2,fma"))) void Avx2Finish(const OnlineSoftmaxState& state,
                                                    int64_t rows, float* out,
                                                    int64_t out_stride) {
  const int64_t cols = state.acc_cols;
  for (int64_t r = 0; r < rows; ++r) {
    const float* acc = state.acc + r * cols;
    const __m256 inverse = _mm256_set1_ps(InverseSum(state.row_sum[r]));
    float* o = out + r * out_stride;
    for (int64_t c = 0; c < cols; c += 8) {
      Store256(o + c, cols - c, _mm256_mul_ps(LoadOrZero256(acc + c, cols - c), inverse));
    }
  }
}

}  // namespace

std::vector<OnlineSoftmaxKernels> OnlineSoftmaxKernelsOfThisCpu() {
  const CpuTier tier = ActiveCpuTier();
  std::vector<OnlineSoftmaxKernels> kernels = {
      {"scalar", ScalarStep, ScalarWholeRows, ScalarFinish}};
  if (tier >= CpuTier::kAvx2) {
    kernels.push_back({"avx2", Avx2Step, Avx2WholeRows, Avx2Finish});
  }
  if (tier >= CpuTier::kAvx512) {
    kernels.push_back({"avx512", Avx512Step<false>, Avx512WholeRows<false>, Avx512Finish});
  }
  if (tier >= CpuTier::kAvx512Bf16) {
    kernels.push_back({"avx512_bf16", Avx512Step<true>, Avx512WholeRows<true>, Avx512Finish});
  }
  return kernels;
}

OnlineSoftmaxKernels BestOnlineSoftmaxKernels() {
  static const OnlineSoftmaxKernels best = OnlineSoftmaxKernelsOfThisCpu().back();
  return best;
}

}  // namespace attn
