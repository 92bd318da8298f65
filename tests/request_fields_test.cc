// Tests of server/request_fields' saturating arithmetic, which sizes memory estimates from
// request fields that may hold any int64: products and sums saturate at INT64_MAX and count
// negative terms as 0, never overflowing.
#include "server/request_fields.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace attn {
namespace {

TEST(SaturatingArithmeticTest, ProductSaturatesAndCountsNegativesAsZero) {
  EXPECT_EQ(SaturatingProduct({}), 1);
  EXPECT_EQ(SaturatingProduct({3, 4, 5}), 60);
  EXPECT_EQ(SaturatingProduct({INT64_MAX, 2}), INT64_MAX);
  EXPECT_EQ(SaturatingProduct({int64_t{1} << 32, int64_t{1} << 32}), INT64_MAX);
  EXPECT_EQ(SaturatingProduct({INT64_MAX, 0}), 0);
  EXPECT_EQ(SaturatingProduct({7, -1}), 0);
  EXPECT_EQ(SaturatingProduct({INT64_MIN, INT64_MAX}), 0);
}

TEST(SaturatingArithmeticTest, SumSaturatesAndCountsNegativesAsZero) {
  EXPECT_EQ(SaturatingSum(2, 3), 5);
  EXPECT_EQ(SaturatingSum(INT64_MAX, 1), INT64_MAX);
  EXPECT_EQ(SaturatingSum(INT64_MAX - 1, 1), INT64_MAX);
  EXPECT_EQ(SaturatingSum(INT64_MAX, INT64_MAX), INT64_MAX);
  EXPECT_EQ(SaturatingSum(5, -1), 5);
  EXPECT_EQ(SaturatingSum(INT64_MAX, -1), INT64_MAX);
  EXPECT_EQ(SaturatingSum(INT64_MIN, 4), 4);
  EXPECT_EQ(SaturatingSum(INT64_MIN, INT64_MIN), 0);
}

}  // namespace
}  // namespace attn
