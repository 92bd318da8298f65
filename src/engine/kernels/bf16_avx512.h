// AVX-512 pieces shared by the kernels that write bf16 operands (online_softmax,
// operand_copies): the mask of a vector's first lanes, and storing 16 floats as bfloat16. Only
// for code compiled for AVX-512 F, BW and VL (the functions carry that target); the native
// bf16 store needs AVX512_BF16 too.
#ifndef ATTNSERVE_SRC_ENGINE_KERNELS_BF16_AVX512_H_
#define ATTNSERVE_SRC_ENGINE_KERNELS_BF16_AVX512_H_

#include <immintrin.h>

#include <cstdint>

namespace attn {

// Lanes [0, min(count, 16)) of a vector (none when count <= 0).
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __mmask16 FirstLanes(
    int64_t count) {
  return count >= 16 ? 0xFFFF : count <= 0 ? 0 : static_cast<__mmask16>((1u << count) - 1);
}

// The bfloat16 of 16 floats, rounded to nearest even, stored to out (lanes of `lanes`): with
// AVX512_BF16's conversion instruction when kNativeBf16 (written as assembly, so that only that
// instantiation may use it), else by integer rounding, NaN kept a quiet NaN of its sign.
template <bool kNativeBf16>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void StoreBf16(__m512 x,
                                                                           __mmask16 lanes,
                                                                           uint16_t* out) {
  if constexpr (kNativeBf16) {
    __m256i bf16;
    asm("vcvtneps2bf16 %1, %0" : "=v"(bf16) : "v"(x));
    _mm256_mask_storeu_epi16(out, lanes, bf16);
  } else {
    __m512i bits = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i rounded = _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    rounded = _mm512_mask_or_epi32(rounded, nan, bits, _mm512_set1_epi32(0x00400000));
    _mm512_mask_cvtepi32_storeu_epi16(out, lanes, _mm512_srli_epi32(rounded, 16));
  }
}

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_KERNELS_BF16_AVX512_H_
