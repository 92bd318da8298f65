// Tests of src/engine/kernels/page_products: every implementation this CPU runs against a
// double-precision loop, for f32 and bf16 pages, row counts around the kernels' blocks (1..9,
// 32), dims with and without a vector tail, query rows strided, and values accumulated into or
// overwriting the output (whose padding columns must stay untouched). Tolerance: 1e-5 relative
// to the sum of |terms| (f32 accumulation over at most 128 terms).
#include "src/engine/kernels/page_products.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/runtime/dtype.h"

namespace attn {
namespace {

struct Page {
  std::vector<float> f32;      // the values as the kernels see them
  std::vector<uint16_t> bf16;  // their bits, for bf16 pages
  const void* data(bool as_bf16) const {
    return as_bf16 ? static_cast<const void*>(bf16.data()) : f32.data();
  }
};

Page RandomPage(int64_t count, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  Page page;
  for (int64_t i = 0; i < count; ++i) {
    const uint16_t bits = FloatToBFloat16(normal(rng));
    page.bf16.push_back(bits);
    page.f32.push_back(BFloat16ToFloat(bits));  // exact in both dtypes
  }
  return page;
}

TEST(PageProductsTest, EveryKernelMatchesDoubleLoops) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (const PageProductKernels& kernels : PageProductKernelsOfThisCpu()) {
    for (int64_t rows : {1, 3, 4, 5, 8, 9, 32}) {
      for (int64_t dim : {7, 16, 40, 128}) {
        for (int64_t width : {1, 64, 128}) {
          for (bool bf16 : {false, true}) {
            SCOPED_TRACE(std::string(kernels.name) + " rows=" + std::to_string(rows) +
                         " dim=" + std::to_string(dim) + " width=" + std::to_string(width) +
                         " bf16=" + std::to_string(bf16));
            const int64_t q_stride = dim + 3;
            std::vector<float> query(rows * q_stride);
            for (float& x : query) x = normal(rng);
            const Page keys = RandomPage(width * dim, rng);
            const Page values = RandomPage(width * dim, rng);
            const float scale = 0.3f;
            std::vector<float> scores(rows * width);
            kernels.scores(query.data(), q_stride, rows, keys.data(bf16), bf16, width, dim, scale,
                           scores.data());
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t j = 0; j < width; ++j) {
                double want = 0, magnitude = 0;
                for (int64_t c = 0; c < dim; ++c) {
                  const double term = double(query[r * q_stride + c]) * keys.f32[j * dim + c];
                  want += term;
                  magnitude += std::abs(term);
                }
                ASSERT_NEAR(scores[r * width + j], scale * want, 1e-5 * scale * magnitude + 1e-7);
              }
            }
            // p [rows x width] (stride width + 1); out padded by 2 columns holding a marker.
            std::vector<float> p(rows * (width + 1));
            for (float& x : p) x = std::abs(normal(rng));
            const int64_t out_stride = dim + 2;
            for (bool accumulate : {false, true}) {
              std::vector<float> out(rows * out_stride, 0.5f);
              kernels.values(p.data(), width + 1, rows, values.data(bf16), bf16, width, dim,
                             out.data(), out_stride, accumulate);
              for (int64_t r = 0; r < rows; ++r) {
                for (int64_t c = 0; c < out_stride; ++c) {
                  if (c >= dim) {
                    ASSERT_EQ(out[r * out_stride + c], 0.5f) << "padding written";
                    continue;
                  }
                  double want = accumulate ? 0.5 : 0.0, magnitude = 0.5;
                  for (int64_t j = 0; j < width; ++j) {
                    const double term = double(p[r * (width + 1) + j]) * values.f32[j * dim + c];
                    want += term;
                    magnitude += std::abs(term);
                  }
                  ASSERT_NEAR(out[r * out_stride + c], want, 1e-5 * magnitude);
                }
              }
            }
          }
        }
      }
    }
  }
}

TEST(PageProductsTest, TheTierInUseHasItsKernels) {
  const std::vector<PageProductKernels> kernels = PageProductKernelsOfThisCpu();
  ASSERT_FALSE(kernels.empty());
  EXPECT_STREQ(kernels.front().name, "scalar");
  EXPECT_STREQ(BestPageProductKernels().name, kernels.back().name);
}

}  // namespace
}  // namespace attn
