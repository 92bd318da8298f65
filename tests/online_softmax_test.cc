// Tests of src/online_softmax, every implementation the CPU tier in use runs (scalar, AVX2,
// AVX-512, AVX-512 with AVX512_BF16; ATTN_MAX_CPU_ISA caps it), against a double-precision
// softmax(s) V computed in one pass over whole rows: steps then finish, and whole rows in one go.
// Rows are fed in tiles of uneven widths (tails off multiples of 8 and 16), with -inf keys,
// tiles that are all -inf, rows that are all -inf and a row whose scores climb steadily (its
// reference must keep rising, within a tile too, rescaling the p already written). Tolerance:
// max |error| <= 1e-5 for the output (values of order 1; float exp and sums over <= 300 keys);
// after every step each p is exp(s - the row's reference) within 1e-6 relative and at most 256;
// bf16 probabilities exactly p rounded to nearest even.
#include "src/engine/kernels/online_softmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/runtime/cpu_tier.h"

namespace attn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

using Kernel = OnlineSoftmaxKernels;

std::vector<Kernel> Kernels() { return OnlineSoftmaxKernelsOfThisCpu(); }

// Past the end of every buffer a kernel writes, kGuard elements that must stay as they were:
// -1 in f32 and 0xFFFF (a NaN) in bf16, values no kernel writes.
constexpr int64_t kGuard = 8;
constexpr float kGuardF32 = -1.0f;
constexpr uint16_t kGuardBf16 = 0xFFFF;

// Whether the last kGuard elements of `buffer` are still `guard`.
template <typename T>
bool GuardIntact(const std::vector<T>& buffer, T guard) {
  return std::all_of(buffer.end() - kGuard, buffer.end(), [&](T x) { return x == guard; });
}

// The bfloat16 of a finite p, rounded to nearest even.
uint16_t Bf16(float p) {
  uint32_t bits;
  std::memcpy(&bits, &p, sizeof(bits));
  return static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

// Scores [rows x keys] with -inf here and there; row 1 entirely -inf; row 2 -inf over its
// first 40 keys (whole first tiles), row 3 with scores near -80 next to ones near +30, row 4
// climbing by 0.25 a key.
std::vector<float> Scores(int64_t rows, int64_t keys, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::bernoulli_distribution forbid(0.1);
  std::vector<float> s(rows * keys);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < keys; ++j) {
      float& x = s[r * keys + j];
      x = forbid(rng) ? kNegInf : normal(rng);
      if (r == 1 || (r == 2 && j < 40)) x = kNegInf;
      if (r == 3) x = j % 2 == 0 ? -80.0f + normal(rng) : 30.0f + normal(rng);
      if (r == 4) x = 0.25f * j;
    }
  }
  return s;
}

// V [keys x cols], standard normal.
std::vector<float> Values(int64_t keys, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(keys * cols);
  for (float& x : v) x = normal(rng);
  return v;
}

// softmax(s) V per row in double; rows with every key -inf give 0.
std::vector<double> Reference(const std::vector<float>& s, const std::vector<float>& v,
                              int64_t rows, int64_t keys, int64_t cols) {
  std::vector<double> out(rows * cols, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = &s[r * keys];
    const double max = *std::max_element(row, row + keys);
    if (max == -INFINITY) continue;
    double sum = 0;
    for (int64_t j = 0; j < keys; ++j) sum += std::exp(double(row[j]) - max);
    for (int64_t j = 0; j < keys; ++j) {
      const double p = std::exp(double(row[j]) - max) / sum;
      for (int64_t c = 0; c < cols; ++c) out[r * cols + c] += p * v[j * cols + c];
    }
  }
  return out;
}

// Runs the online softmax over `tiles` (widths summing to keys), doing acc += P_t V_t in
// double as the engine's matmul would, and returns the finished output (finished into rows
// of a longer stride, whose gaps must stay untouched, as must what follows the tile and its
// bf16).
std::vector<float> Online(const Kernel& kernel, const std::vector<float>& s,
                          const std::vector<float>& v, int64_t rows, int64_t keys, int64_t cols,
                          const std::vector<int64_t>& tiles) {
  std::vector<float> row_max(rows, kNegInf), row_sum(rows, 0.0f), acc(rows * cols, 0.0f);
  const OnlineSoftmaxState state{row_max.data(), row_sum.data(), acc.data(), cols};
  int64_t first = 0;
  for (const int64_t width : tiles) {
    std::vector<float> tile(rows * width + kGuard, kGuardF32);
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(&s[r * keys + first], width, &tile[r * width]);
    }
    std::vector<uint16_t> bf16(rows * width + kGuard, kGuardBf16);
    kernel.step(tile.data(), rows, width, nullptr, state, bf16.data());
    EXPECT_TRUE(GuardIntact(tile, kGuardF32)) << "tile of " << width;
    EXPECT_TRUE(GuardIntact(bf16, kGuardBf16)) << "tile of " << width;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < width; ++j) {
        const float p = tile[r * width + j];
        EXPECT_FALSE(std::isnan(p));
        const double want =
            row_max[r] == kNegInf ? 0.0 : std::exp(double(s[r * keys + first + j]) - row_max[r]);
        EXPECT_NEAR(p, want, 1e-6 * want + 1e-37) << "row " << r << " key " << first + j;
        EXPECT_LE(p, 256.0f) << "row " << r << " key " << first + j;
        EXPECT_EQ(bf16[r * width + j], Bf16(p)) << "row " << r << " key " << first + j;
        for (int64_t c = 0; c < cols; ++c) {
          acc[r * cols + c] =
              static_cast<float>(acc[r * cols + c] + double(p) * v[(first + j) * cols + c]);
        }
      }
    }
    first += width;
  }
  EXPECT_EQ(first, keys);
  const int64_t stride = cols + 2;
  std::vector<float> strided(rows * stride, kGuardF32);
  kernel.finish(state, rows, strided.data(), stride);
  std::vector<float> out(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(&strided[r * stride], cols, &out[r * cols]);
    for (int64_t c = cols; c < stride; ++c) EXPECT_EQ(strided[r * stride + c], kGuardF32);
  }
  return out;
}

TEST(OnlineSoftmaxTest, TiledMatchesWholeRowSoftmaxTimesV) {
  constexpr int64_t kRows = 6, kKeys = 300, kCols = 7;
  std::mt19937 rng(3);
  const std::vector<float> s = Scores(kRows, kKeys, rng);
  const std::vector<float> v = Values(kKeys, kCols, rng);
  const std::vector<double> want = Reference(s, v, kRows, kKeys, kCols);
  const std::vector<std::vector<int64_t>> tilings = {
      {300}, {16, 16, 16, 252}, {37, 5, 64, 1, 193}, {128, 128, 44}, {40, 260},
      {7, 9, 33, 65, 130, 56}};
  for (const Kernel& kernel : Kernels()) {
    for (const auto& tiles : tilings) {
      SCOPED_TRACE(std::string(kernel.name) + ", first tile " + std::to_string(tiles[0]));
      const std::vector<float> got = Online(kernel, s, v, kRows, kKeys, kCols, tiles);
      for (int64_t i = 0; i < kRows * kCols; ++i) {
        ASSERT_NEAR(got[i], want[i], 1e-5) << "at " << i;
      }
      for (int64_t c = 0; c < kCols; ++c) EXPECT_EQ(got[1 * kCols + c], 0.0f);  // all -inf
    }
  }
}

// exp over the range the engine feeds it (x = score - running max <= 0): relative error
// <= 1e-6 against double exp, exactly 0 for -inf, 0 or denormal-small below float's range
// (never denormal but with the scalar kernel's std::exp). Steps of 0.1 from 0 to -100, then
// steps of 1e-5 across the cut at -87.33654 (where 2^n reaches 2^-126).
TEST(OnlineSoftmaxTest, ExpIsAccurateOverItsRange) {
  constexpr int64_t kCoarse = 1000, kWidth = kCoarse + 2001;
  std::vector<float> s(kWidth);
  for (int64_t j = 0; j < kCoarse; ++j) s[j] = -100.0f * j / (kCoarse - 1);  // 0 .. -100
  for (int64_t j = kCoarse; j < kWidth; ++j) s[j] = -87.32654f - 1e-5f * (j - kCoarse);
  s[7] = kNegInf;
  for (const Kernel& kernel : Kernels()) {
    SCOPED_TRACE(kernel.name);
    std::vector<float> p = s;
    float row_max = kNegInf, row_sum = 0, acc = 0;
    kernel.step(p.data(), 1, kWidth, nullptr, {&row_max, &row_sum, &acc, 1}, nullptr);
    EXPECT_EQ(row_max, 0.0f);
    EXPECT_EQ(p[7], 0.0f);
    double sum = 0;
    for (int64_t j = 0; j < kWidth; ++j) {
      if (j == 7) continue;
      const double want = std::exp(double(s[j]));
      if (s[j] < -87.33654f) {
        EXPECT_LE(p[j], 1.2e-38f) << "x = " << s[j];
      } else {
        EXPECT_LE(std::abs(p[j] - want), 1e-6 * want) << "x = " << s[j];
      }
      if (std::string(kernel.name) != "scalar") {
        EXPECT_TRUE(p[j] == 0.0f || std::isnormal(p[j])) << "x = " << s[j];
      }
      sum += p[j];
    }
    EXPECT_NEAR(row_sum, sum, 1e-6 * sum);
  }
}

// The reference stays while a later tile's scores pass it by at most 8 ln 2 (p then up to 256,
// nothing rescaled) and rises past that, rescaling the running sum and acc by
// exp(old reference - new).
TEST(OnlineSoftmaxTest, ReferenceRisesOnlyPastTheLag) {
  for (const Kernel& kernel : Kernels()) {
    SCOPED_TRACE(kernel.name);
    float row_max = kNegInf, row_sum = 0;
    float acc[2] = {0, 0};
    const OnlineSoftmaxState state{&row_max, &row_sum, acc, 2};
    float first[1] = {1.0f};
    kernel.step(first, 1, 1, nullptr, state, nullptr);
    EXPECT_EQ(row_max, 1.0f);
    EXPECT_EQ(first[0], 1.0f);
    acc[0] = 10.0f;  // as if P V added 10 * V row
    acc[1] = -4.0f;
    float within[1] = {6.5f};  // 5.5 above the reference: within the lag (5.545)
    kernel.step(within, 1, 1, nullptr, state, nullptr);
    EXPECT_EQ(row_max, 1.0f);
    EXPECT_NEAR(within[0], std::exp(5.5f), 1e-6 * std::exp(5.5f));
    EXPECT_NEAR(row_sum, 1.0f + std::exp(5.5f), 1e-6 * row_sum);
    EXPECT_EQ(acc[0], 10.0f);
    EXPECT_EQ(acc[1], -4.0f);
    const float sum_before = row_sum;
    float past[1] = {6.6f};  // 5.6 above: the reference rises to it
    kernel.step(past, 1, 1, nullptr, state, nullptr);
    EXPECT_EQ(row_max, 6.6f);
    EXPECT_EQ(past[0], 1.0f);
    const float alpha = std::exp(1.0f - 6.6f);
    EXPECT_NEAR(row_sum, sum_before * alpha + 1.0f, 1e-6 * row_sum);
    EXPECT_NEAR(acc[0], 10.0f * alpha, 1e-6);
    EXPECT_NEAR(acc[1], -4.0f * alpha, 1e-6);
  }
}

// Per-row key counts act as -inf past each row's count: two steps (so rows with no allowed key in
// the second tile keep what the first gave them) with row_keys against the same steps on tiles
// holding -inf there; the probabilities (f32 and bf16) and the state agree.
TEST(OnlineSoftmaxTest, RowKeysForbidLikeMinusInfinity) {
  constexpr int64_t kRows = 11, kWidth = 45, kCols = 3;
  const std::vector<int64_t> row_keys = {0, 1, 7, 8, 9, 15, 16, 17, 33, 44, 45};
  std::mt19937 rng(5);
  for (const Kernel& kernel : Kernels()) {
    SCOPED_TRACE(kernel.name);
    std::vector<float> max_a(kRows, kNegInf), sum_a(kRows, 0), acc_a(kRows * kCols, 1.0f);
    std::vector<float> max_b = max_a, sum_b = sum_a, acc_b = acc_a;
    const OnlineSoftmaxState a{max_a.data(), sum_a.data(), acc_a.data(), kCols};
    const OnlineSoftmaxState b{max_b.data(), sum_b.data(), acc_b.data(), kCols};
    for (int step = 0; step < 2; ++step) {
      std::vector<float> limited = Scores(kRows, kWidth, rng);
      std::vector<float> filled = limited;
      for (int64_t r = 0; r < kRows; ++r) {
        std::fill(&filled[r * kWidth + row_keys[r]], &filled[(r + 1) * kWidth], kNegInf);
      }
      std::vector<uint16_t> bf16_a(kRows * kWidth), bf16_b(kRows * kWidth);
      kernel.step(limited.data(), kRows, kWidth, row_keys.data(), a, bf16_a.data());
      kernel.step(filled.data(), kRows, kWidth, nullptr, b, bf16_b.data());
      EXPECT_EQ(limited, filled) << "step " << step;
      EXPECT_EQ(bf16_a, bf16_b) << "step " << step;
      EXPECT_EQ(max_a, max_b) << "step " << step;
      for (int64_t r = 0; r < kRows; ++r) EXPECT_NEAR(sum_a[r], sum_b[r], 1e-6 * sum_b[r]);
      for (int64_t i = 0; i < kRows * kCols; ++i) EXPECT_NEAR(acc_a[i], acc_b[i], 1e-6);
    }
  }
}

// Whole rows in one go: P = softmax(s) row by row (within 1e-6 of the double reference, relative,
// plus the float rounding of s - max; 0 for the all -inf row), the same in bf16 rounded to
// nearest even, and P V equal to the whole-row reference within 1e-5. P written to another matrix
// with a longer row stride (leaving the gaps alone) is the same as P in place with no bf16 asked
// for, and the bf16 the same with no f32 P asked for; nothing written past P or its bf16. Widths
// of up to 64 and 128 keys (AVX-512: rows held in registers; AVX2: up to 32 and 64) and more
// (rows in memory), with tails off multiples of 8 and 16.
TEST(OnlineSoftmaxTest, WholeRowsIsTheSoftmax) {
  constexpr int64_t kRows = 6, kCols = 5;
  for (const int64_t keys : {1, 7, 9, 31, 33, 45, 64, 65, 100, 128, 130, 300}) {
    std::mt19937 rng(7);
    const std::vector<float> s = Scores(kRows, keys, rng);
    const std::vector<float> v = Values(keys, kCols, rng);
    const std::vector<double> want_out = Reference(s, v, kRows, keys, kCols);
    for (const Kernel& kernel : Kernels()) {
      SCOPED_TRACE(absl::StrCat(kernel.name, " keys ", keys));
      const int64_t stride = keys + 5;
      std::vector<float> strided(kRows * stride, -1.0f);
      std::vector<uint16_t> bf16(kRows * keys + kGuard, kGuardBf16), bf16_only = bf16;
      std::vector<float> scores = s;
      kernel.whole_rows(scores.data(), kRows, keys, nullptr, strided.data(), stride,
                        bf16.data());
      std::vector<float> p = s;
      p.resize(kRows * keys + kGuard, kGuardF32);
      kernel.whole_rows(p.data(), kRows, keys, nullptr, p.data(), keys, nullptr);
      scores = s;
      kernel.whole_rows(scores.data(), kRows, keys, nullptr, nullptr, 0, bf16_only.data());
      EXPECT_EQ(bf16_only, bf16);
      EXPECT_TRUE(GuardIntact(bf16, kGuardBf16));
      EXPECT_TRUE(GuardIntact(p, kGuardF32));
      for (int64_t r = 0; r < kRows; ++r) {
        const std::vector<float> row(&strided[r * stride], &strided[r * stride + keys]);
        EXPECT_EQ(row, std::vector<float>(&p[r * keys], &p[(r + 1) * keys])) << "row " << r;
        for (int64_t j = keys; j < stride; ++j) EXPECT_EQ(strided[r * stride + j], -1.0f);
      }
      for (int64_t r = 0; r < kRows; ++r) {
        const float* row = &s[r * keys];
        const double max = *std::max_element(row, row + keys);
        double sum = 0;
        for (int64_t j = 0; j < keys; ++j) sum += std::exp(double(row[j]) - max);
        for (int64_t j = 0; j < keys; ++j) {
          const int64_t i = r * keys + j;
          const double want = max == -INFINITY ? 0.0 : std::exp(double(row[j]) - max) / sum;
          // Relative 1e-6, plus the rounding of s - max in float (half an ulp of it).
          const double relative = want > 0 ? 1e-6 + std::abs(double(row[j]) - max) * 0x1p-24 : 0;
          EXPECT_NEAR(p[i], want, relative * want + 1e-37) << "row " << r << " key " << j;
          EXPECT_EQ(bf16[i], Bf16(p[i])) << "row " << r << " key " << j;
        }
        for (int64_t c = 0; c < kCols; ++c) {
          double out = 0;
          for (int64_t j = 0; j < keys; ++j) out += double(p[r * keys + j]) * v[j * kCols + c];
          EXPECT_NEAR(out, want_out[r * kCols + c], 1e-5) << "row " << r << " col " << c;
        }
      }
      for (int64_t j = 0; j < keys; ++j) EXPECT_EQ(p[1 * keys + j], 0.0f);  // all -inf
    }
  }
}

// bf16 probabilities round to nearest even, ties too: 2^20 p of a step and of whole rows (scores
// 0 down to -8 by 2^-17), among them ties to even both up and down, against integer rounding of
// the f32 p.
TEST(OnlineSoftmaxTest, Bf16RoundsTiesToEven) {
  constexpr int64_t kWidth = int64_t{1} << 20;
  std::vector<float> s(kWidth);
  for (int64_t j = 0; j < kWidth; ++j) s[j] = -0x1p-17f * j;
  for (const Kernel& kernel : Kernels()) {
    for (const bool whole : {false, true}) {
      SCOPED_TRACE(absl::StrCat(kernel.name, whole ? " whole rows" : " step"));
      std::vector<float> p = s;
      std::vector<uint16_t> bf16(kWidth);
      float row_max = kNegInf, row_sum = 0, acc = 0;
      if (whole) {
        kernel.whole_rows(p.data(), 1, kWidth, nullptr, p.data(), kWidth, bf16.data());
      } else {
        kernel.step(p.data(), 1, kWidth, nullptr, {&row_max, &row_sum, &acc, 1}, bf16.data());
      }
      int64_t wrong = 0, ties[2] = {0, 0};  // by the truncation's parity: even down, odd up
      for (int64_t j = 0; j < kWidth; ++j) {
        uint32_t bits;
        std::memcpy(&bits, &p[j], sizeof(bits));
        if ((bits & 0xFFFF) == 0x8000) ++ties[(bits >> 16) & 1];
        wrong += bf16[j] != Bf16(p[j]);
      }
      EXPECT_EQ(wrong, 0);
      EXPECT_GT(ties[0], 0);
      EXPECT_GT(ties[1], 0);
    }
  }
}

// Whole rows with row_keys give what the same rows with -inf past each row's count give, f32
// and bf16 (a row with no allowed key: all 0).
TEST(OnlineSoftmaxTest, WholeRowsRowKeysForbidLikeMinusInfinity) {
  constexpr int64_t kRows = 10;
  std::mt19937 rng(9);
  for (const int64_t width : {9, 33, 45, 65, 100, 300}) {
    std::vector<int64_t> row_keys = {0, 1, 7, 8, 9, 15, 16, 17, width - 1, width};
    for (int64_t& keys : row_keys) keys = std::min(keys, width);
    for (const Kernel& kernel : Kernels()) {
      SCOPED_TRACE(absl::StrCat(kernel.name, " width ", width));
      std::vector<float> limited = Scores(kRows, width, rng);
      std::vector<float> filled = limited;
      for (int64_t r = 0; r < kRows; ++r) {
        std::fill(&filled[r * width + row_keys[r]], &filled[(r + 1) * width], kNegInf);
      }
      std::vector<uint16_t> bf16_a(kRows * width), bf16_b(kRows * width);
      kernel.whole_rows(limited.data(), kRows, width, row_keys.data(), limited.data(), width,
                        bf16_a.data());
      kernel.whole_rows(filled.data(), kRows, width, nullptr, filled.data(), width,
                        bf16_b.data());
      EXPECT_EQ(limited, filled);
      EXPECT_EQ(bf16_a, bf16_b);
      for (int64_t j = 0; j < width; ++j) EXPECT_EQ(limited[j], 0.0f);  // row_keys 0
    }
  }
}

// The kernels follow the tier in use: one more per tier up to avx512_bf16 (AMX adds none), the
// best the last.
TEST(OnlineSoftmaxTest, KernelsMatchTheCpuTier) {
  const CpuTier tier = ActiveCpuTier();
  const char* want = tier >= CpuTier::kAvx512Bf16 ? "avx512_bf16"
                     : tier >= CpuTier::kAvx512   ? "avx512"
                     : tier >= CpuTier::kAvx2     ? "avx2"
                                                  : "scalar";
  EXPECT_STREQ(BestOnlineSoftmaxKernels().name, want);
  std::vector<std::string> names;
  for (const Kernel& kernel : Kernels()) names.push_back(kernel.name);
  const std::vector<std::string> all = {"scalar", "avx2", "avx512", "avx512_bf16"};
  ASSERT_LE(names.size(), all.size());
  EXPECT_EQ(names, std::vector<std::string>(all.begin(), all.begin() + names.size()));
  EXPECT_EQ(names.back(), want);
}

}  // namespace
}  // namespace attn
