// The two products of attention over one page of a paged KV cache, for units of a few query rows
// (decode): the scores of `rows` query rows against the page's keys, and the page's values
// weighted by the rows' probabilities. A page holds `width` keys (or values) as dense rows of
// `dim` elements, f32 or bfloat16 -- bf16 pages are read as they are and widened in registers,
// so decode reads half the bytes; everything is computed in f32. Hand-written because oneDNN's
// per-call cost, paid twice a page and head, is larger than the work on a 128-key page. Three
// implementations chosen by the CPU tier in use (cpu_tier.h): AVX-512, AVX2 with FMA, and
// portable code. Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_ENGINE_KERNELS_PAGE_PRODUCTS_H_
#define ATTNSERVE_SRC_ENGINE_KERNELS_PAGE_PRODUCTS_H_

#include <cstdint>
#include <vector>

namespace attn {

// scores[r * width + j] = scale * sum_c query[r * query_stride + c] * keys[j * dim + c], for
// r < rows, j < width.
using PageScoresFn = void (*)(const float* query, int64_t query_stride, int64_t rows,
                              const void* keys, bool bf16, int64_t width, int64_t dim,
                              float scale, float* scores);

// out[r * out_stride + c] (+)= sum_j p[r * p_stride + j] * values[j * dim + c], for r < rows,
// c < dim; `accumulate` false overwrites out.
using PageValuesFn = void (*)(const float* p, int64_t p_stride, int64_t rows, const void* values,
                              bool bf16, int64_t width, int64_t dim, float* out,
                              int64_t out_stride, bool accumulate);

struct PageProductKernels {
  const char* name;  // "scalar", "avx2" or "avx512"
  PageScoresFn scores;
  PageValuesFn values;
};

// Every implementation the tier in use runs: the portable one first, the fastest last.
std::vector<PageProductKernels> PageProductKernelsOfThisCpu();

// The fastest of them (chosen at the first call).
PageProductKernels BestPageProductKernels();

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_KERNELS_PAGE_PRODUCTS_H_
