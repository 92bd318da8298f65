// Tests of src/dtype: exact bit patterns of the bf16/f16 conversions (round to nearest even,
// NaN, infinities, overflow, f16 subnormals) and the bulk little-endian codecs.
#include "src/runtime/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace attn {
namespace {

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(DTypeTest, SizesAndNames) {
  EXPECT_EQ(DTypeSize(DType::kFloat32), 4);
  EXPECT_EQ(DTypeSize(DType::kBFloat16), 2);
  EXPECT_EQ(DTypeSize(DType::kFloat16), 2);
  EXPECT_EQ(DTypeSize(DType::kBool), 1);
  EXPECT_EQ(DTypeName(DType::kBFloat16), "BFLOAT16");
}

TEST(DTypeTest, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3F80);
  // Halfway cases: 0x3F808000 lies between 0x3F80 and 0x3F81 -> even 0x3F80;
  // 0x3F818000 between 0x3F81 and 0x3F82 -> even 0x3F82.
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3F808000u)), 0x3F80);
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3F818000u)), 0x3F82);
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3F808001u)), 0x3F81);  // just above halfway
  EXPECT_EQ(FloatToBFloat16(FromBits(0x3F807FFFu)), 0x3F80);  // just below
  EXPECT_EQ(FloatToBFloat16(-2.0f), 0xC000);
}

TEST(DTypeTest, BFloat16SpecialValues) {
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(FloatToBFloat16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::max()), 0x7F80);  // overflows to inf
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(std::nanf("")))));
  // A NaN whose payload sits only in the dropped bits must stay NaN, not become inf.
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(FromBits(0x7F800001u)))));
}

TEST(DTypeTest, EveryBFloat16RoundTrips) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const float f = BFloat16ToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToBFloat16(f), bits) << std::hex << bits;
  }
}

TEST(DTypeTest, Float16KnownValues) {
  EXPECT_EQ(FloatToFloat16(1.0f), 0x3C00);
  EXPECT_EQ(FloatToFloat16(-2.0f), 0xC000);
  EXPECT_EQ(FloatToFloat16(65504.0f), 0x7BFF);               // largest finite
  EXPECT_EQ(FloatToFloat16(65519.0f), 0x7BFF);               // rounds down to it
  EXPECT_EQ(FloatToFloat16(65520.0f), 0x7C00);               // halfway: ties to even = inf
  EXPECT_EQ(FloatToFloat16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(FloatToFloat16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToFloat16(std::ldexp(1.0f, -25)), 0x0000);  // half of it: ties to even = 0
  EXPECT_EQ(FloatToFloat16(std::ldexp(1.5f, -25)), 0x0001);  // above half: rounds up
  EXPECT_EQ(FloatToFloat16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 subnormal units -> even 2
  EXPECT_EQ(FloatToFloat16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(FloatToFloat16(-std::ldexp(1.0f, -30)), 0x8000);
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even = 1.
  EXPECT_EQ(FloatToFloat16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(FloatToFloat16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(Float16ToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(Float16ToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(Float16ToFloat(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Float16ToFloat(FloatToFloat16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(Float16ToFloat(FloatToFloat16(FromBits(0x7F800001u)))));
}

TEST(DTypeTest, EveryFloat16RoundTrips) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const float f = Float16ToFloat(static_cast<uint16_t>(bits));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToFloat16(f), bits) << std::hex << bits;
  }
}

// Against an independent definition: the nearest f16 by exhaustive search over neighbours.
TEST(DTypeTest, Float16IsNearestForRandomFloats) {
  uint32_t state = 12345;
  for (int n = 0; n < 200000; ++n) {
    state = state * 1664525u + 1013904223u;
    const float x = std::ldexp(static_cast<float>(state >> 8) / (1 << 24), (n % 40) - 30);
    const uint16_t got = FloatToFloat16(x);
    const double error = std::abs(double(Float16ToFloat(got)) - x);
    for (int delta : {-1, 1}) {
      const uint16_t other = static_cast<uint16_t>(got + delta);
      if (std::isinf(Float16ToFloat(other)) || (got == 0 && delta < 0)) continue;
      ASSERT_LE(error, std::abs(double(Float16ToFloat(other)) - x)) << x;
    }
  }
}

TEST(DTypeTest, BulkCodecsAreLittleEndianAndUnaligned) {
  const std::vector<float> src = {1.0f, -0.5f, 3.25f};
  std::vector<unsigned char> buffer(1 + 3 * 2);
  EncodeFromFloat(src.data(), 3, DType::kBFloat16, buffer.data() + 1);
  EXPECT_EQ(buffer[1], 0x80);  // 1.0 = 0x3F80, low byte first
  EXPECT_EQ(buffer[2], 0x3F);
  std::vector<float> back(3);
  DecodeToFloat(DType::kBFloat16, buffer.data() + 1, 3, back.data());
  EXPECT_EQ(back, src);
  EncodeFromFloat(src.data(), 3, DType::kFloat16, buffer.data() + 1);
  DecodeToFloat(DType::kFloat16, buffer.data() + 1, 3, back.data());
  EXPECT_EQ(back, src);
}

}  // namespace
}  // namespace attn
