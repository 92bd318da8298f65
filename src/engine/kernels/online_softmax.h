// The online (running max / running sum) softmax of the engine's key-tiled path: attention over
// one block of query rows is computed tile of keys by tile of keys, so no row of scores is ever
// held whole. Per row, with m the reference (a running max allowed to lag), l the running sum and
// acc the unnormalised output:
//   m' = m, or a new reference >= max_j s_j when some s_j > m + 8 ln 2;  p_j = exp(s_j - m');
//   l = l * exp(m - m') + sum_j p_j;  acc = acc * exp(m - m') (then the caller adds P V);
//   finally O = acc / l (0 when l = 0).
// Any reference gives the same O; a lagging one spares a pass per tile for the max and the
// rescaling of acc, at the cost of p up to 256 instead of 1 (far from overflow in f32 and in
// bfloat16). A row whose keys so far are all -inf keeps m = -inf, l = 0, acc = 0 and gets p = 0.
// When a block's keys fit one tile its rows take a plain softmax instead (P V is then the output
// itself). Four implementations of that contract (they may pick different references), chosen
// by the CPU tier in use (cpu_tier.h): AVX-512 with AVX512_BF16, AVX-512 without it, AVX2 with
// FMA, and portable scalar code.
// Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_ENGINE_KERNELS_ONLINE_SOFTMAX_H_
#define ATTNSERVE_SRC_ENGINE_KERNELS_ONLINE_SOFTMAX_H_

#include <cstdint>
#include <vector>

namespace attn {

// Running state of `rows` rows: row_max (the reference m; start -inf), row_sum (start 0) and acc,
// rows x acc_cols row-major (start 0). One step consumes scores, rows x width row-major:
// they are replaced by p = exp(s - m') in place and, when probs_bf16 is not null, also written
// to it as bfloat16 (rows x width, round to nearest even). acc rows are rescaled by
// exp(m - m'). When row_keys is not null, row r's scores past its first row_keys[r] (0..width)
// are forbidden, as if -inf: they get p = 0 (how the engine applies a causal mask or
// key_lengths without a mask tile).
struct OnlineSoftmaxState {
  float* row_max;
  float* row_sum;
  float* acc = nullptr;
  int64_t acc_cols = 0;
};

using OnlineSoftmaxStepFn = void (*)(float* scores, int64_t rows, int64_t width,
                                     const int64_t* row_keys, const OnlineSoftmaxState& state,
                                     uint16_t* probs_bf16);

// Rows whose keys all fit one tile, in one go instead of a step: P = softmax(s) row by row (0 for
// a row with no allowed key), so that P V is the output. P goes to out (rows out_stride apart;
// may be the scores themselves, out_stride = width) unless out is null, and as bfloat16 to
// probs_bf16 (rows x width) unless that is null; the scores are overwritten either way.
// row_keys as for a step. Each row is done while it is in the L1 cache: its max, exp and sum,
// then the division.
using OnlineSoftmaxWholeRowsFn = void (*)(float* scores, int64_t rows, int64_t width,
                                          const int64_t* row_keys, float* out,
                                          int64_t out_stride, uint16_t* probs_bf16);

// out[r * out_stride + c] = acc[r * acc_cols + c] / row_sum[r], or 0 when row_sum[r] is 0.
using OnlineSoftmaxFinishFn = void (*)(const OnlineSoftmaxState& state, int64_t rows,
                                       float* out, int64_t out_stride);

// One implementation of the four. Divisions are products with 1 / the sum (within an ulp).
struct OnlineSoftmaxKernels {
  const char* name;  // "scalar", "avx2", "avx512" or "avx512_bf16"
  OnlineSoftmaxStepFn step;
  OnlineSoftmaxWholeRowsFn whole_rows;
  OnlineSoftmaxFinishFn finish;
};

// Every implementation the tier in use (ActiveCpuTier()) runs: the portable one first, the
// fastest last.
std::vector<OnlineSoftmaxKernels> OnlineSoftmaxKernelsOfThisCpu();

// The fastest of them (chosen at the first call).
OnlineSoftmaxKernels BestOnlineSoftmaxKernels();

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_KERNELS_ONLINE_SOFTMAX_H_
