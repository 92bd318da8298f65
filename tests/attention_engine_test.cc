// Tests of src/attention_engine against the double-precision reference over many shapes and
// every mask kind, with the one-tile and the key-tiled online-softmax paths. Tolerance: max
// |error| <= 1e-4 for output and probabilities, and <= 1e-4 * max(1, |s|) for scores (scores
// near 1e4 are only representable to ~1e-3 in f32); f32 accumulation over D <= 128 terms is
// far below that. Scores must be -inf exactly where the reference forbids, and nothing may be
// NaN.
#include "src/engine/attention_engine.h"

#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "src/engine/attention_shapes.h"
#include "src/reference/reference_attention.h"
#include "src/runtime/cpu_tier.h"
#include "src/runtime/dtype.h"
#include "tests/numeric_error.h"

namespace attn {
namespace {

constexpr double kTolerance = 1e-4;

enum MaskParts : unsigned {
  kCausalUpperLeft = 1,
  kCausalLowerRight = 2,
  kKeyLengths = 4,
  kAllowed2d = 8,
  kAllowed4d = 16,
  kBias2d = 32,
  kBias4d = 64,
};

struct Case {
  AttentionDims dims;
  unsigned mask = 0;
  float input_scale = 1.0f;  // multiplies Q and K: 100 makes scores of order 1e4
  bool custom_scale = false;
  // For the output and the probabilities, and for the scores relative to max(1, |score|).
  double tolerance = kTolerance;
};

std::string Describe(const Case& c) {
  const AttentionDims& d = c.dims;
  return "B=" + std::to_string(d.batch) + " H=" + std::to_string(d.heads) +
         " Hkv=" + std::to_string(d.kv_heads) + " Sq=" + std::to_string(d.q_len) +
         " Sk=" + std::to_string(d.kv_len) + " D=" + std::to_string(d.head_dim) +
         " Dv=" + std::to_string(d.value_dim) + " mask=" + std::to_string(c.mask);
}

// Owns a problem's buffers; Inputs() views them.
class Problem {
 public:
  Problem(const Case& c, uint32_t seed) : case_(c), rng_(seed) {
    const AttentionDims& d = c.dims;
    query_ = Normal(d.batch * d.heads * d.q_len * d.head_dim, c.input_scale);
    key_ = Normal(d.batch * d.kv_heads * d.kv_len * d.head_dim, c.input_scale);
    value_ = Normal(d.batch * d.kv_heads * d.kv_len * d.value_dim, 1.0f);
    const std::vector<int64_t> mask2d = {d.q_len, d.kv_len};
    const std::vector<int64_t> mask4d = {d.batch, 1, d.q_len, d.kv_len};  // broadcast over heads
    const std::vector<int64_t> bias4d = {1, d.heads, d.q_len, d.kv_len};  // broadcast over batch
    if (c.mask & (kAllowed2d | kAllowed4d)) {
      allowed_shape_ = (c.mask & kAllowed2d) ? mask2d : mask4d;
      std::bernoulli_distribution keep(0.8);
      allowed_.resize(Count(allowed_shape_));
      for (auto& a : allowed_) a = keep(rng_) ? 1 : 0;
    }
    if (c.mask & (kBias2d | kBias4d)) {
      bias_shape_ = (c.mask & kBias2d) ? mask2d : bias4d;
      bias_ = Normal(Count(bias_shape_), 1.0f);
      std::bernoulli_distribution forbid(0.05);
      for (float& b : bias_) {
        if (forbid(rng_)) b = -INFINITY;
      }
    }
    if (c.mask & kKeyLengths) {
      std::uniform_int_distribution<int32_t> length(0, static_cast<int32_t>(d.kv_len));
      for (int64_t b = 0; b < d.batch; ++b) key_lengths_.push_back(length(rng_));
      key_lengths_[0] = 0;  // at least one batch item with every key padded
    }
  }

  AttentionInputs Inputs() const {
    AttentionInputs in;
    in.dims = case_.dims;
    in.query = query_.data();
    in.key = key_.data();
    in.value = value_.data();
    in.scale = case_.custom_scale ? 0.3f : 1.0f / std::sqrt(float(case_.dims.head_dim));
    if (case_.mask & kCausalUpperLeft) in.mask.causal = CausalKind::kUpperLeft;
    if (case_.mask & kCausalLowerRight) in.mask.causal = CausalKind::kLowerRight;
    in.mask.key_lengths = key_lengths_;
    if (!allowed_.empty()) {
      in.mask.allowed = allowed_.data();
      in.mask.allowed_strides = BroadcastToScores("allowed", allowed_shape_, case_.dims).value();
    }
    if (!bias_.empty()) {
      in.mask.bias = bias_.data();
      in.mask.bias_strides = BroadcastToScores("bias", bias_shape_, case_.dims).value();
    }
    return in;
  }

 private:
  static int64_t Count(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  std::vector<float> Normal(int64_t n, float scale) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = scale * normal(rng_);
    return v;
  }

  Case case_;
  std::mt19937 rng_;
  std::vector<float> query_, key_, value_, bias_;
  std::vector<uint8_t> allowed_;
  std::vector<int64_t> allowed_shape_, bias_shape_;
  std::vector<int32_t> key_lengths_;
};

struct Outputs {
  std::vector<float> output, probabilities, scores;
  explicit Outputs(const AttentionDims& d)
      : output(d.batch * d.heads * d.q_len * d.value_dim, NAN),
        probabilities(d.batch * d.heads * d.q_len * d.kv_len, NAN),
        scores(d.batch * d.heads * d.q_len * d.kv_len, NAN) {}
  AttentionOutputs View(bool probs, bool scores_wanted) {
    AttentionOutputs view;
    view.output = output.data();
    view.probabilities = probs ? probabilities.data() : nullptr;
    view.scores = scores_wanted ? scores.data() : nullptr;
    return view;
  }
};

void ExpectClose(const std::vector<float>& got, const std::vector<double>& want,
                 const std::string& what, bool relative = false, double tolerance = kTolerance) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i])) {
      ASSERT_EQ(double(got[i]), want[i]) << what << " at " << i;
      continue;
    }
    ASSERT_FALSE(std::isnan(got[i])) << what << " at " << i;
    const double error =
        std::abs(double(got[i]) - want[i]) / (relative ? std::max(1.0, std::abs(want[i])) : 1.0);
    if (error > worst) {
      worst = error;
      worst_at = i;
    }
  }
  EXPECT_LE(worst, tolerance) << what << " worst at " << worst_at;
}

// Runs `c` with each combination of maps and compares everything with the reference.
void CheckCase(const AttentionEngine& engine, const Case& c, uint32_t seed) {
  SCOPED_TRACE(Describe(c));
  const Problem problem(c, seed);
  const AttentionInputs inputs = problem.Inputs();
  const ReferenceResult want = ReferenceAttention(inputs);
  for (int maps = 0; maps < 4; ++maps) {
    const bool probs = maps & 1, scores = maps & 2;
    Outputs got(c.dims);
    ASSERT_TRUE(engine.Run(inputs, got.View(probs, scores)).ok());
    ExpectClose(got.output, want.output, "output", false, c.tolerance);
    if (probs) {
      ExpectClose(got.probabilities, want.probabilities, "probabilities", false, c.tolerance);
    }
    if (scores) ExpectClose(got.scores, want.scores, "scores", /*relative=*/true, c.tolerance);
  }
}

AttentionDims Dims(int64_t b, int64_t h, int64_t hkv, int64_t sq, int64_t sk, int64_t d,
                   int64_t dv) {
  return {.batch = b, .heads = h, .kv_heads = hkv, .q_len = sq, .kv_len = sk, .head_dim = d,
          .value_dim = dv};
}

// Shapes that exercise: one and many query blocks (128 rows per block across the heads of a
// KV group), GQA/MQA, Dv != D, Sq != Sk both ways, dims of 1, sizes off multiples of 8/16, and
// blocks whose rows see one or several key tiles under causal masks, the last cut short at
// the 64-key block past their last visible key (Sk = 520: 128-row blocks see 128 to 520 keys).
// KV heads whose rows make one block of at most 128 (65, 128, 40; a group's 48 and 100) are one
// piece each, which makes its own operand copies; the others' copies are made for the whole
// call. Decode with a long KV takes wider key tiles by default (few rows per KV head: 2048 keys
// for a group of 4, two tiles of Sk = 2500; 8192 for one row, one tile of Sk = 1500).
const std::vector<AttentionDims>& Shapes() {
  static const std::vector<AttentionDims> shapes = {
      Dims(1, 1, 1, 1, 1, 1, 1),      Dims(2, 4, 4, 7, 13, 8, 8),     Dims(2, 8, 2, 100, 130, 16, 24),
      Dims(1, 4, 1, 33, 33, 17, 5),   Dims(3, 2, 2, 300, 129, 33, 7), Dims(1, 6, 3, 1, 257, 64, 64),
      Dims(2, 3, 3, 65, 1, 12, 12),   Dims(1, 2, 2, 129, 64, 128, 3), Dims(2, 12, 4, 16, 16, 1, 9),
      Dims(2, 2, 1, 260, 520, 16, 16), Dims(2, 3, 3, 128, 70, 20, 12),
      Dims(1, 2, 2, 40, 200, 16, 16), Dims(1, 4, 2, 50, 90, 16, 16),
      Dims(1, 8, 2, 1, 2500, 16, 16), Dims(2, 2, 2, 1, 1500, 8, 8),
  };
  return shapes;
}

// Parameters: the thread count of this test thread's OpenMP (1 = serial pieces, 2 = pieces in
// parallel) and the engine's key tile, with maps or not (0 = the default, 512 keys: one tile
// for most shapes here, P normalised before P V; 64, the finest = several tiles for most
// shapes, a narrower last one, tiles skipped under causal masks and key_lengths).
class AttentionEngineTest : public ::testing::TestWithParam<std::tuple<int, int64_t>> {
 protected:
  void SetUp() override { omp_set_num_threads(std::get<0>(GetParam())); }
  AttentionEngine engine_{
      {.primitive_cache_capacity = 64, .key_tile = std::get<1>(GetParam())}};
};

TEST_P(AttentionEngineTest, NoMask) {
  for (const AttentionDims& d : Shapes()) CheckCase(engine_, {.dims = d}, 1);
}

TEST_P(AttentionEngineTest, EachMaskAlone) {
  for (unsigned mask : {kCausalUpperLeft, kCausalLowerRight, kKeyLengths, kAllowed2d, kAllowed4d,
                        kBias2d, kBias4d}) {
    for (const AttentionDims& d : Shapes()) CheckCase(engine_, {.dims = d, .mask = mask}, mask);
  }
}

TEST_P(AttentionEngineTest, MasksCombined) {
  for (unsigned mask : {kCausalUpperLeft | kKeyLengths | kAllowed4d | kBias2d,
                        kCausalLowerRight | kKeyLengths | kAllowed2d | kBias4d,
                        kCausalLowerRight | kBias2d}) {
    for (const AttentionDims& d : Shapes()) CheckCase(engine_, {.dims = d, .mask = mask}, mask + 7);
  }
}

// Maps over 8 MiB (here 19 MB and 11.5 MB each) are written with streaming stores, from many
// tiles and from one (Sk = 300: P is then normalised in the scratch and copied).
TEST_P(AttentionEngineTest, LargeMaps) {
  CheckCase(engine_, {.dims = Dims(1, 4, 2, 1100, 1100, 8, 8), .mask = kCausalLowerRight}, 13);
  CheckCase(engine_, {.dims = Dims(4, 8, 2, 300, 300, 8, 8), .mask = kKeyLengths}, 17);
}

TEST_P(AttentionEngineTest, CustomScale) {
  CheckCase(engine_, {.dims = Dims(2, 4, 2, 20, 30, 16, 16), .mask = kCausalUpperLeft,
                      .custom_scale = true}, 3);
}

// Scores of order +-1e4 must not overflow the softmax.
// Scores of order 2500 are only as exact as f32 holds them: an ulp there is 2.4e-4, and a
// score off by d moves its probability by about d (relative), so the output and probabilities
// are held to 1e-3 (a few ulps of the scores; gemm:jit's summation order, at the AVX2 and
// scalar tiers, errs by 2.4e-4 where brgemm's happens to err less), and so are the scores (a
// small score is a sum of products of order 2500 that cancel: 1.4e-4 at the scalar tier).
TEST_P(AttentionEngineTest, LargeMagnitudeScoresAreStable) {
  for (unsigned mask : {0u, kCausalUpperLeft | kKeyLengths}) {
    CheckCase(engine_,
              {.dims = Dims(1, 2, 2, 40, 40, 8, 8), .mask = mask, .input_scale = 50.0f,
               .tolerance = 1e-3},
              11);
  }
}

// Copies dense [B,heads,S,C] into columns [offset, offset + heads*C) of a token-major
// [B,S,width] matrix (as a fused QKV projection lays out its output) and returns the strides
// that view it head by head.
OperandStrides PackTokenMajor(const float* dense, int64_t batch, int64_t heads, int64_t rows,
                              int64_t cols, int64_t width, int64_t offset,
                              std::vector<float>& packed) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          packed[(b * rows + r) * width + offset + h * cols + c] =
              dense[((b * heads + h) * rows + r) * cols + c];
  return {.batch = rows * width, .head = cols, .row = width};
}

// Q, K and V as views into one packed [B,S,width] matrix and O written as [B,Sq,H*Dv] give the
// answers of the dense layout (what MultiHeadAttend relies on to avoid copying heads apart).
TEST_P(AttentionEngineTest, TokenMajorStridedViewsMatchReference) {
  for (const AttentionDims& d : {Dims(2, 4, 2, 9, 9, 8, 8), Dims(1, 6, 3, 130, 130, 16, 24),
                                 Dims(2, 2, 2, 5, 5, 1, 3)}) {
    const Case c{.dims = d, .mask = kCausalUpperLeft | kKeyLengths | kBias4d};
    SCOPED_TRACE(Describe(c));
    const Problem problem(c, 21);
    const AttentionInputs dense = problem.Inputs();
    const ReferenceResult want = ReferenceAttention(dense);
    const int64_t width = d.heads * d.head_dim + d.kv_heads * (d.head_dim + d.value_dim) + 3;
    std::vector<float> packed(d.batch * d.q_len * width, NAN);
    AttentionInputs in = dense;
    in.query = in.key = in.value = packed.data();
    in.query_strides = PackTokenMajor(dense.query, d.batch, d.heads, d.q_len, d.head_dim, width,
                                      0, packed);
    const int64_t k_offset = d.heads * d.head_dim, v_offset = k_offset + d.kv_heads * d.head_dim;
    in.key_strides = PackTokenMajor(dense.key, d.batch, d.kv_heads, d.kv_len, d.head_dim, width,
                                    k_offset, packed);
    in.value_strides = PackTokenMajor(dense.value, d.batch, d.kv_heads, d.kv_len, d.value_dim,
                                      width, v_offset, packed);
    in.key += k_offset;
    in.value += v_offset;
    Outputs got(d);
    AttentionOutputs out = got.View(true, false);
    out.output_strides = {.batch = d.q_len * d.heads * d.value_dim, .head = d.value_dim,
                          .row = d.heads * d.value_dim};
    ASSERT_TRUE(engine_.Run(in, out).ok());
    std::vector<float> output_dense(got.output.size());
    for (int64_t b = 0; b < d.batch; ++b)
      for (int64_t h = 0; h < d.heads; ++h)
        for (int64_t i = 0; i < d.q_len; ++i)
          for (int64_t c2 = 0; c2 < d.value_dim; ++c2)
            output_dense[((b * d.heads + h) * d.q_len + i) * d.value_dim + c2] =
                got.output[(b * d.q_len + i) * d.heads * d.value_dim + h * d.value_dim + c2];
    ExpectClose(output_dense, want.output, "output");
    ExpectClose(got.probabilities, want.probabilities, "probabilities");
  }
}

INSTANTIATE_TEST_SUITE_P(
    ThreadsAndKeyTile, AttentionEngineTest,
    ::testing::Combine(::testing::Values(1, 2), ::testing::Values(int64_t{0}, int64_t{64})),
    [](const ::testing::TestParamInfo<std::tuple<int, int64_t>>& info) {
      return "threads" + std::to_string(std::get<0>(info.param)) + "_key_tile" +
             std::to_string(std::get<1>(info.param));
    });

// Rows where every key is forbidden by a -inf bias alone: P = 0 and output = 0.
TEST(AttentionEngineEdgeTest, RowForbiddenOnlyByBiasIsZero) {
  const AttentionDims d = Dims(1, 1, 1, 2, 3, 4, 4);
  const std::vector<float> q(8, 1.0f), k(12, 1.0f), v(12, 2.0f);
  const std::vector<float> bias = {-INFINITY, -INFINITY, -INFINITY, 0, 0, 0};  // [Sq,Sk]
  AttentionInputs in;
  in.dims = d;
  in.query = q.data();
  in.key = k.data();
  in.value = v.data();
  in.scale = 0.5f;
  in.mask.bias = bias.data();
  in.mask.bias_strides = {0, 0, 3, 1};
  Outputs got(d);
  AttentionEngine engine({});
  ASSERT_TRUE(engine.Run(in, got.View(true, true)).ok());
  for (int j = 0; j < 3; ++j) EXPECT_EQ(got.probabilities[j], 0.0f);
  for (int c = 0; c < 4; ++c) EXPECT_EQ(got.output[c], 0.0f);
  for (int c = 4; c < 8; ++c) EXPECT_NEAR(got.output[c], 2.0f, 1e-6);
}

// Several threads running the same shapes at once (as the server's workers do) get exactly the
// answers of a single thread.
TEST(AttentionEngineConcurrencyTest, ConcurrentRunsMatchSerialRuns) {
  AttentionEngine engine({.primitive_cache_capacity = 16});
  const Case c{.dims = Dims(2, 8, 2, 100, 130, 16, 24), .mask = kCausalLowerRight | kKeyLengths};
  const Problem problem(c, 5);
  const AttentionInputs inputs = problem.Inputs();
  Outputs serial(c.dims);
  omp_set_num_threads(1);
  ASSERT_TRUE(engine.Run(inputs, serial.View(true, false)).ok());
  std::vector<Outputs> results(4, Outputs(c.dims));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      omp_set_num_threads(2);
      for (int repeat = 0; repeat < 3; ++repeat) {
        EXPECT_TRUE(engine.Run(inputs, results[t].View(true, false)).ok());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const Outputs& r : results) {
    EXPECT_EQ(r.output, serial.output);
    EXPECT_EQ(r.probabilities, serial.probabilities);
  }
}

// A stop check that turns non-OK ends the run between pieces with its status; an OK one changes
// nothing.
TEST(AttentionEngineStopTest, StopsBetweenPiecesWithTheCheckStatus) {
  AttentionEngine engine({.primitive_cache_capacity = 16});
  const Case c{.dims = Dims(4, 8, 8, 256, 64, 16, 16)};  // 4 * 8 * 2 = 64 pieces
  const Problem problem(c, 9);
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    std::atomic<int> asked{0};
    Outputs got(c.dims);
    const absl::Status status =
        engine.Run(problem.Inputs(), got.View(false, false), [&asked]() -> absl::Status {
          return ++asked > 3 ? absl::CancelledError("stop here") : absl::OkStatus();
        });
    EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
    EXPECT_EQ(status.message(), "stop here");
    EXPECT_LT(asked.load(), 64);  // the remaining pieces were skipped, not asked one by one
    Outputs all(c.dims);
    ASSERT_TRUE(engine.Run(problem.Inputs(), all.View(false, false),
                           [] { return absl::OkStatus(); }).ok());
    ExpectClose(all.output, ReferenceAttention(problem.Inputs()).output, "output");
  }
}

// bf16 compute (bf16 operands, f32 accumulation and softmax) against the double reference:
// normwise error max|got - want| / max|want| <= 1e-2 for output and probabilities, with masks,
// GQA and fully masked rows (which stay exactly 0).
TEST_P(AttentionEngineTest, Bf16ComputeIsWithinOnePercent) {
  for (const AttentionDims& d : Shapes()) {
    for (unsigned mask : {0u, kCausalLowerRight | kKeyLengths | kBias4d}) {
      const Case c{.dims = d, .mask = mask};
      SCOPED_TRACE(Describe(c));
      const Problem problem(c, 31);
      AttentionInputs in = problem.Inputs();
      const ReferenceResult want = ReferenceAttention(in);
      in.bf16_compute = true;
      for (bool maps : {false, true}) {
        Outputs got(d);
        ASSERT_TRUE(engine_.Run(in, got.View(maps, false)).ok());
        // Zeros (fully padded rows) are checked below.
        const bool skip_zeros = mask & kKeyLengths;
        EXPECT_LE(NormwiseError(got.output, want.output, skip_zeros), 1e-2) << "output";
        if (maps) {
          EXPECT_LE(NormwiseError(got.probabilities, want.probabilities, skip_zeros), 1e-2)
              << "probabilities";
        }
        // Batch item 0 has every key padded: its output stays exactly 0.
        if (mask & kKeyLengths) {
          for (int64_t e = 0; e < d.heads * d.q_len * d.value_dim; ++e) {
            ASSERT_EQ(got.output[e], 0.0f);
          }
        }
      }
    }
  }
}

// `values` [batch x heads x rows x cols] rounded to bfloat16 in place, and their bf16 bits laid
// out with 3 unused elements after each row (garbage in them); returns the strides of that.
OperandStrides RoundToPaddedBf16(std::vector<float>& values, int64_t heads, int64_t rows,
                                 int64_t cols, std::vector<uint16_t>& padded) {
  const int64_t row = cols + 3;
  padded.assign(values.size() / cols * row, FloatToBFloat16(NAN));
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t bits = FloatToBFloat16(values[i]);
    values[i] = BFloat16ToFloat(bits);
    padded[i / cols * row + i % cols] = bits;
  }
  return {.batch = heads * rows * row, .head = rows * row, .row = row};
}

// bf16 inputs (strided, rows padded) give exactly the answers of the same values in f32, both
// computed in bf16 (read as they are) and in f32 (widened first), with maps, masks and GQA.
// Decode-sized units (at most 32 rows per KV head) compute bf16 inputs in bf16, read in place,
// but f32 ones in f32: there the two agree within 1e-2 of the largest value (normwise).
TEST_P(AttentionEngineTest, Bf16InputsMatchTheSameValuesInF32) {
  for (const AttentionDims& d : Shapes()) {
    const Case c{.dims = d, .mask = kCausalLowerRight | kKeyLengths | kBias4d};
    SCOPED_TRACE(Describe(c));
    const Problem problem(c, 41);
    AttentionInputs f32 = problem.Inputs();
    std::vector<float> q(f32.query, f32.query + d.batch * d.heads * d.q_len * d.head_dim);
    std::vector<float> k(f32.key, f32.key + d.batch * d.kv_heads * d.kv_len * d.head_dim);
    std::vector<float> v(f32.value, f32.value + d.batch * d.kv_heads * d.kv_len * d.value_dim);
    std::vector<uint16_t> q16, k16, v16;
    AttentionInputs bf16 = f32;
    bf16.query = bf16.key = bf16.value = nullptr;
    bf16.query_strides = RoundToPaddedBf16(q, d.heads, d.q_len, d.head_dim, q16);
    bf16.key_strides = RoundToPaddedBf16(k, d.kv_heads, d.kv_len, d.head_dim, k16);
    bf16.value_strides = RoundToPaddedBf16(v, d.kv_heads, d.kv_len, d.value_dim, v16);
    bf16.query_bf16 = q16.data();
    bf16.key_bf16 = k16.data();
    bf16.value_bf16 = v16.data();
    f32.query = q.data();
    f32.key = k.data();
    f32.value = v.data();
    for (bool compute_bf16 : {false, true}) {
      f32.bf16_compute = bf16.bf16_compute = compute_bf16;
      Outputs want(d), got(d);
      ASSERT_TRUE(engine_.Run(f32, want.View(true, true)).ok());
      ASSERT_TRUE(engine_.Run(bf16, got.View(true, true)).ok());
      // Compared as bits: NaN would fail, and -0 or +0 must match too.
      auto bits = [](const std::vector<float>& x) {
        std::vector<uint32_t> b(x.size());
        std::memcpy(b.data(), x.data(), x.size() * sizeof(float));
        return b;
      };
      ASSERT_FALSE(std::isnan(got.output[0]));
      if (compute_bf16 && d.group_size() * d.q_len <= 32) {
        EXPECT_LE(NormwiseError(got.output, want.output), 1e-2) << "output";
        EXPECT_LE(NormwiseError(got.probabilities, want.probabilities), 1e-2) << "probabilities";
        continue;
      }
      EXPECT_EQ(bits(got.output), bits(want.output)) << "compute bf16 " << compute_bf16;
      EXPECT_EQ(bits(got.probabilities), bits(want.probabilities));
      EXPECT_EQ(bits(got.scores), bits(want.scores));
    }
  }
}

// Where bf16 matmuls are not native (bf16_matmuls.h), bf16 compute is emulated in f32 and must
// be exactly the f32 computation of the bf16-rounded operands: Q times the scale, K and V each
// rounded to bf16 (to nearest even), the scale then 1. Bit for bit, for every shape (units of
// at most 32 rows compute in f32 and are compared with the unrounded f32 call), masks and maps.
TEST_P(AttentionEngineTest, EmulatedBf16IsF32OfRoundedOperands) {
  if (engine_.bf16_matmuls() == Bf16Matmuls::kNative) {
    GTEST_SKIP() << "bf16 matmuls are native here (CPU tier " << CpuTierName(engine_.tier())
                 << ")";
  }
  auto rounded = [](const float* x, size_t n, float scale) {
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = BFloat16ToFloat(FloatToBFloat16(scale * x[i]));
    return out;
  };
  auto bits = [](const std::vector<float>& x) {
    std::vector<uint32_t> b(x.size());
    std::memcpy(b.data(), x.data(), x.size() * sizeof(float));
    return b;
  };
  for (const AttentionDims& d : Shapes()) {
    for (unsigned mask : {0u, kCausalLowerRight | kKeyLengths | kBias4d}) {
      const Case c{.dims = d, .mask = mask, .custom_scale = true};
      SCOPED_TRACE(Describe(c));
      const Problem problem(c, 37);
      AttentionInputs bf16 = problem.Inputs();
      bf16.bf16_compute = true;
      AttentionInputs f32 = problem.Inputs();
      const bool few_rows = d.group_size() * d.q_len <= 32;
      std::vector<float> q, k, v;
      if (!few_rows) {
        q = rounded(f32.query, d.batch * d.heads * d.q_len * d.head_dim, f32.scale);
        k = rounded(f32.key, d.batch * d.kv_heads * d.kv_len * d.head_dim, 1.0f);
        v = rounded(f32.value, d.batch * d.kv_heads * d.kv_len * d.value_dim, 1.0f);
        f32.query = q.data();
        f32.key = k.data();
        f32.value = v.data();
        f32.scale = 1.0f;
      }
      Outputs want(d), got(d);
      ASSERT_TRUE(engine_.Run(f32, want.View(true, true)).ok());
      ASSERT_TRUE(engine_.Run(bf16, got.View(true, true)).ok());
      EXPECT_EQ(bits(got.output), bits(want.output));
      EXPECT_EQ(bits(got.probabilities), bits(want.probabilities));
      EXPECT_EQ(bits(got.scores), bits(want.scores));
    }
  }
}

TEST(AttentionEngineInfoTest, ReportsOneDnn) {
  EXPECT_EQ(AttentionEngine::OneDnnVersion().substr(0, 2), "2.");
  EXPECT_FALSE(AttentionEngine::OneDnnIsa().empty());
}

}  // namespace
}  // namespace attn
