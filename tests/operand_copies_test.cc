// Tests of src/operand_copies, every kernel the CPU tier in use runs (scalar, AVX2, AVX-512,
// AVX-512 with AVX512_BF16; ctest runs the binary once per tier): K^T in the blocked layout
// must be bit for bit what oneDNN's own reorder writes for the same desc (f32, f32 rounded to
// bf16, and bf16, padding included), for key counts and head dims off the block sizes and
// strided rows; bf16 rows must be FloatToBFloat16(scale * x) exactly, and rounded f32 rows its
// f32 value, for ties, infinities, NaN and column counts off multiples of 8 and 16 (a
// denormal: zero of its sign with AVX512_BF16's conversion).
#include "src/engine/kernels/operand_copies.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "dnnl.hpp"
#include "gtest/gtest.h"
#include "src/engine/prepared_operands.h"
#include "src/runtime/cpu_tier.h"
#include "src/runtime/dtype.h"

namespace attn {
namespace {

std::vector<std::pair<std::string, CopyKernel>> Kernels() {
  const CpuTier tier = ActiveCpuTier();
  std::vector<std::pair<std::string, CopyKernel>> kernels = {{"scalar", CopyKernel::kScalar}};
  if (tier >= CpuTier::kAvx2) kernels.push_back({"avx2", CopyKernel::kAvx2});
  if (tier >= CpuTier::kAvx512) kernels.push_back({"avx512", CopyKernel::kAvx512});
  if (tier >= CpuTier::kAvx512Bf16) kernels.push_back({"avx512_bf16", CopyKernel::kAvx512Bf16});
  return kernels;
}

struct KeysCase {
  int64_t keys, dim, row_stride;
};

// What oneDNN's reorder writes for K [keys, dim] (rows row_stride apart) into one head's K^T
// in the blocked layout; `layout` is filled from the same desc.
std::vector<uint8_t> OneDnnKeyTranspose(const std::vector<float>& key, const KeysCase& c,
                                        bool bf16, KeyTransposedLayout& layout) {
  using dnnl::memory;
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  const memory::desc from({c.dim, c.keys}, memory::data_type::f32, memory::dims{1, c.row_stride});
  const memory::desc to({c.dim, c.keys}, bf16 ? memory::data_type::bf16 : memory::data_type::f32,
                        KeyTransposedTag(bf16));
  layout = KeyTransposedLayoutOf(to);
  std::vector<uint8_t> out(to.get_size(), 0xAB);
  memory src(from, engine, const_cast<float*>(key.data()));
  memory dst(to, engine, out.data());
  dnnl::stream stream(engine);
  dnnl::reorder(src, dst).execute(stream, src, dst);
  stream.wait();
  return out;
}

TEST(OperandCopiesTest, KeyTransposeMatchesOneDnnReorder) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  const KeysCase cases[] = {{1, 1, 1},     {5, 3, 3},     {64, 64, 64},  {65, 64, 70},
                            {130, 17, 17}, {200, 33, 40}, {128, 128, 384}, {7, 80, 96}};
  for (const KeysCase& c : cases) {
    std::vector<float> key(c.keys * c.row_stride);
    for (float& x : key) x = normal(rng);
    for (bool bf16 : {false, true}) {
      KeyTransposedLayout layout;
      const std::vector<uint8_t> expected = OneDnnKeyTranspose(key, c, bf16, layout);
      for (const auto& [name, kernel] : Kernels()) {
        SCOPED_TRACE(name + (bf16 ? " bf16" : " f32") + " keys=" + std::to_string(c.keys) +
                     " dim=" + std::to_string(c.dim) + " stride=" + std::to_string(c.row_stride));
        std::vector<uint8_t> got(expected.size(), 0xCD);
        if (bf16) {
          TransposeKeys(key.data(), c.keys, c.dim, c.row_stride, layout,
                        reinterpret_cast<uint16_t*>(got.data()), kernel);
        } else {
          TransposeKeys(key.data(), c.keys, c.dim, c.row_stride, layout,
                        reinterpret_cast<float*>(got.data()), kernel);
        }
        EXPECT_EQ(got, expected);
      }
    }
  }
}

// K^T rounded to bf16 in f32 (bf16 compute emulated in f32) is oneDNN's f32 reorder of the
// keys' bf16 values.
TEST(OperandCopiesTest, RoundedKeyTransposeMatchesReorderOfRoundedKeys) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (const KeysCase& c : {KeysCase{5, 3, 3}, KeysCase{65, 64, 70}, KeysCase{130, 17, 17}}) {
    std::vector<float> key(c.keys * c.row_stride), rounded(key.size());
    for (size_t i = 0; i < key.size(); ++i) {
      key[i] = normal(rng);
      rounded[i] = BFloat16ToFloat(FloatToBFloat16(key[i]));
    }
    ASSERT_NE(key, rounded);
    KeyTransposedLayout layout;
    const std::vector<uint8_t> expected = OneDnnKeyTranspose(rounded, c, false, layout);
    for (const auto& [name, kernel] : Kernels()) {
      SCOPED_TRACE(name + " keys=" + std::to_string(c.keys) + " dim=" + std::to_string(c.dim));
      std::vector<uint8_t> got(expected.size(), 0xCD);
      TransposeKeys(key.data(), c.keys, c.dim, c.row_stride, layout,
                    reinterpret_cast<float*>(got.data()), kernel, /*round_to_bf16=*/true);
      EXPECT_EQ(got, expected);
    }
  }
}

float FromBits(uint32_t bits) {
  float x;
  std::memcpy(&x, &bits, sizeof(x));
  return x;
}

// `rows` rows of `cols` values, rows `stride` apart: uniform in [-100, 100] with, every other
// element from the first, the specials: ties that round down and up to even, a value just past
// a tie, infinities, the largest float, NaN, -0 and a denormal.
std::vector<float> RowsWithSpecials(int64_t rows, int64_t stride, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-100.0f, 100.0f);
  const float special[] = {FromBits(0x3F808000u),  // a tie: rounds down to even
                           FromBits(0x3F818000u),  // a tie: rounds up to even
                           FromBits(0x3F808001u),
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::max(),
                           std::nanf(""),
                           -0.0f,
                           -1e-39f};  // denormal
  std::vector<float> in(rows * stride);
  for (float& x : in) x = uniform(rng);
  for (size_t i = 0; i < std::size(special) && i * 2 < in.size(); ++i) in[i * 2] = special[i];
  return in;
}

TEST(OperandCopiesTest, Bf16RowsRoundToNearestEvenWithScale) {
  std::mt19937 rng(11);
  for (int64_t cols : {1, 7, 9, 15, 16, 17, 40, 64}) {
    const int64_t rows = 5, in_stride = cols + 3, out_stride = cols + 2;
    const std::vector<float> in = RowsWithSpecials(rows, in_stride, rng);
    for (float scale : {1.0f, 0.125f}) {
      for (const auto& [name, kernel] : Kernels()) {
        SCOPED_TRACE(name + " cols=" + std::to_string(cols) + " scale=" + std::to_string(scale));
        std::vector<uint16_t> out(rows * out_stride, 0x1234);
        ConvertRowsToBf16(in.data(), rows, cols, in_stride, scale, out.data(), out_stride,
                          kernel);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < out_stride; ++c) {
            const float x = scale * in[r * in_stride + c];
            // AVX512_BF16's conversion turns a denormal into zero of its sign.
            const bool flushed = kernel == CopyKernel::kAvx512Bf16 &&
                                 std::fpclassify(x) == FP_SUBNORMAL;
            const uint16_t expected = c >= cols   ? uint16_t{0x1234}
                                      : flushed ? static_cast<uint16_t>(std::signbit(x) ? 0x8000 : 0)
                                                : FloatToBFloat16(x);
            ASSERT_EQ(out[r * out_stride + c], expected) << "row " << r << " col " << c;
          }
        }
      }
    }
  }
}

// bf16 sources (K for K^T, rows for bf16 rows times a scale, rows widened to f32) give exactly
// what the same values in f32 give: random values, specials (NaN, infinities, -0, a bf16
// denormal), strided rows and column counts off multiples of 16.
TEST(OperandCopiesTest, Bf16SourcesMatchTheirF32Values) {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  const uint16_t special[] = {0x7FC0, 0x7F80, 0xFF80, 0x8000, 0x0001, 0x3F81};
  for (const KeysCase& c : {KeysCase{5, 3, 3}, KeysCase{65, 64, 70}, KeysCase{130, 17, 19}}) {
    std::vector<uint16_t> bits(c.keys * c.row_stride);
    for (uint16_t& b : bits) b = FloatToBFloat16(normal(rng));
    for (size_t i = 0; i < std::size(special); ++i) bits[i * 3 % bits.size()] = special[i];
    std::vector<float> values(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) values[i] = BFloat16ToFloat(bits[i]);
    KeyTransposedLayout layout;
    const std::vector<uint8_t> reorder = OneDnnKeyTranspose(values, c, true, layout);
    for (const auto& [name, kernel] : Kernels()) {
      SCOPED_TRACE(name + " keys=" + std::to_string(c.keys) + " dim=" + std::to_string(c.dim));
      std::vector<uint16_t> from_bf16(reorder.size() / 2, 0xCDCD), from_f32 = from_bf16;
      TransposeKeys(bits.data(), c.keys, c.dim, c.row_stride, layout, from_bf16.data(), kernel);
      TransposeKeys(values.data(), c.keys, c.dim, c.row_stride, layout, from_f32.data(), kernel);
      EXPECT_EQ(from_bf16, from_f32);
      for (float scale : {1.0f, 0.3f}) {
        std::vector<uint16_t> rows_bf16(c.keys * (c.dim + 1), 0x1234), rows_f32 = rows_bf16;
        ConvertRowsToBf16(bits.data(), c.keys, c.dim, c.row_stride, scale, rows_bf16.data(),
                          c.dim + 1, kernel);
        ConvertRowsToBf16(values.data(), c.keys, c.dim, c.row_stride, scale, rows_f32.data(),
                          c.dim + 1, kernel);
        EXPECT_EQ(rows_bf16, rows_f32) << "scale " << scale;
      }
    }
    std::vector<float> widened(c.keys * c.dim);
    ConvertRowsToF32(bits.data(), c.keys, c.dim, c.row_stride, widened.data());
    for (int64_t r = 0; r < c.keys; ++r) {
      for (int64_t d = 0; d < c.dim; ++d) {
        const float want = values[r * c.row_stride + d], got = widened[r * c.dim + d];
        ASSERT_EQ(std::memcmp(&got, &want, sizeof(float)), 0) << "row " << r << " col " << d;
      }
    }
  }
}

// Rows rounded to bf16 and kept in f32 are, bit for bit, the f32 value of FloatToBFloat16(scale
// * x), denormals included (rounded, not flushed, by every kernel); columns past the rows are
// left alone.
TEST(OperandCopiesTest, RoundedRowsAreTheirBf16ValuesInF32) {
  std::mt19937 rng(17);
  for (int64_t cols : {1, 7, 8, 9, 16, 17, 40, 64}) {
    const int64_t rows = 5, in_stride = cols + 3, out_stride = cols + 2;
    const std::vector<float> in = RowsWithSpecials(rows, in_stride, rng);
    for (float scale : {1.0f, 0.125f}) {
      for (const auto& [name, kernel] : Kernels()) {
        SCOPED_TRACE(name + " cols=" + std::to_string(cols) + " scale=" + std::to_string(scale));
        std::vector<float> out(rows * out_stride, 42.0f);
        RoundRowsToBf16(in.data(), rows, cols, in_stride, scale, out.data(), out_stride, kernel);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < out_stride; ++c) {
            const float expected =
                c >= cols ? 42.0f : BFloat16ToFloat(FloatToBFloat16(scale * in[r * in_stride + c]));
            const float got = out[r * out_stride + c];
            ASSERT_EQ(std::memcmp(&got, &expected, sizeof(float)), 0)
                << "row " << r << " col " << c << ": " << got << " vs " << expected;
          }
        }
      }
    }
  }
}

TEST(OperandCopiesTest, BestKernelFollowsTheTier) {
  switch (ActiveCpuTier()) {
    case CpuTier::kScalar:
      EXPECT_EQ(BestCopyKernel(), CopyKernel::kScalar);
      break;
    case CpuTier::kAvx2:
      EXPECT_EQ(BestCopyKernel(), CopyKernel::kAvx2);
      break;
    case CpuTier::kAvx512:
      EXPECT_EQ(BestCopyKernel(), CopyKernel::kAvx512);
      break;
    case CpuTier::kAvx512Bf16:
    case CpuTier::kAmx:
      EXPECT_EQ(BestCopyKernel(), CopyKernel::kAvx512Bf16);
      break;
  }
}

}  // namespace
}  // namespace attn
