// Tests of src/multi_head_attention against the double-precision reference layer
// (src/reference_multi_head_attention), over self- and cross-attention, fused and separate
// projections, GQA, Dv != D, with and without biases, W_o and Add & Norm, masks and averaged
// maps, on 1 and 2 OpenMP threads. Tolerance: max |error| <= 1e-4 (inputs and weights N(0, 0.3),
// so activations are of order 1).
#include "src/layer/multi_head_attention.h"

#include <omp.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/reference/reference_multi_head_attention.h"
#include "tests/numeric_error.h"

namespace attn {
namespace {

constexpr double kTolerance = 1e-4;

struct LayerCase {
  int64_t batch, q_len, kv_len, d_model, d_ctx, heads, kv_heads, head_dim, value_dim;
  bool cross = false;
  bool biases = false;
  int64_t d_out = 0;  // 0 = no W_o
  bool add_norm = false;
  bool causal_and_padding = false;
  bool average_heads = false;
  float weight_scale = 0.3f;  // standard deviation of every weight and bias
};

std::string Describe(const LayerCase& c) {
  return "B=" + std::to_string(c.batch) + " Sq=" + std::to_string(c.q_len) +
         " Sk=" + std::to_string(c.kv_len) + " d_model=" + std::to_string(c.d_model) +
         " d_ctx=" + std::to_string(c.d_ctx) + " H=" + std::to_string(c.heads) +
         " Hkv=" + std::to_string(c.kv_heads) + " cross=" + std::to_string(c.cross) +
         " biases=" + std::to_string(c.biases) + " d_out=" + std::to_string(c.d_out) +
         " add_norm=" + std::to_string(c.add_norm) +
         " masked=" + std::to_string(c.causal_and_padding) +
         " average=" + std::to_string(c.average_heads);
}

class Layer {
 public:
  Layer(const LayerCase& c, uint32_t seed) : c_(c), rng_(seed) {
    const int64_t ctx_width = c.cross ? c.d_ctx : c.d_model;
    input_ = Normal(c.batch * c.q_len * c.d_model, 1.0f);
    if (c.cross) context_ = Normal(c.batch * c.kv_len * c.d_ctx, 1.0f);
    shapes_.w_q = {c.d_model, c.heads * c.head_dim};
    shapes_.w_k = {ctx_width, c.kv_heads * c.head_dim};
    shapes_.w_v = {ctx_width, c.kv_heads * c.value_dim};
    w_q_ = Normal(c.d_model * c.heads * c.head_dim, c.weight_scale);
    w_k_ = Normal(ctx_width * c.kv_heads * c.head_dim, c.weight_scale);
    w_v_ = Normal(ctx_width * c.kv_heads * c.value_dim, c.weight_scale);
    if (c.biases) {
      b_q_ = Normal(c.heads * c.head_dim, c.weight_scale);
      b_k_ = Normal(c.kv_heads * c.head_dim, c.weight_scale);
      b_v_ = Normal(c.kv_heads * c.value_dim, c.weight_scale);
      shapes_.b_q = {int64_t(b_q_.size())};
      shapes_.b_k = {int64_t(b_k_.size())};
      shapes_.b_v = {int64_t(b_v_.size())};
    }
    if (c.d_out > 0) {
      w_o_ = Normal(c.heads * c.value_dim * c.d_out, c.weight_scale);
      shapes_.w_o = {c.heads * c.value_dim, c.d_out};
      if (c.biases) {
        b_o_ = Normal(c.d_out, c.weight_scale);
        shapes_.b_o = {c.d_out};
      }
    }
    if (c.add_norm) {
      gamma_ = Normal(c.d_model, 1.0f);
      beta_ = Normal(c.d_model, 1.0f);
      shapes_.gamma = shapes_.beta = {c.d_model};
    }
    if (c.causal_and_padding) {
      std::uniform_int_distribution<int32_t> length(0, int32_t(c.kv_len));
      for (int64_t b = 0; b < c.batch; ++b) key_lengths_.push_back(length(rng_));
    }
  }

  MultiHeadDims Dims() const {
    WeightShapes s;
    s.w_q = shapes_.w_q;
    s.w_k = shapes_.w_k;
    s.w_v = shapes_.w_v;
    s.w_o = shapes_.w_o;
    s.b_q = shapes_.b_q;
    s.b_k = shapes_.b_k;
    s.b_v = shapes_.b_v;
    s.b_o = shapes_.b_o;
    s.gamma = shapes_.gamma;
    s.beta = shapes_.beta;
    return InferMultiHeadDims("weights.", s, c_.heads, c_.kv_heads, c_.add_norm, 1e-5f).value();
  }

  WeightValues Values() const {
    return {.w_q = w_q_, .w_k = w_k_, .w_v = w_v_, .w_o = w_o_, .b_q = b_q_, .b_k = b_k_,
            .b_v = b_v_, .b_o = b_o_, .gamma = gamma_, .beta = beta_};
  }

  MultiHeadInputs Inputs(const MultiHeadWeights* weights) const {
    MultiHeadInputs in;
    in.batch = c_.batch;
    in.q_len = c_.q_len;
    in.kv_len = c_.cross ? c_.kv_len : c_.q_len;
    in.input = input_.data();
    in.context = c_.cross ? context_.data() : nullptr;
    in.weights = weights;
    in.scale = 1.0f / std::sqrt(float(c_.head_dim));
    if (c_.causal_and_padding) {
      in.mask.causal = CausalKind::kLowerRight;
      in.mask.key_lengths = key_lengths_;
    }
    return in;
  }

 private:
  struct Shapes {
    std::vector<int64_t> w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, gamma, beta;
  };
  std::vector<float> Normal(int64_t n, float scale) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = scale * normal(rng_);
    return v;
  }

  LayerCase c_;
  std::mt19937 rng_;
  Shapes shapes_;
  std::vector<float> input_, context_, w_q_, w_k_, w_v_, w_o_, b_q_, b_k_, b_v_, b_o_, gamma_,
      beta_;
  std::vector<int32_t> key_lengths_;
};

void ExpectClose(const std::vector<float>& got, const std::vector<double>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i])) {
      ASSERT_EQ(double(got[i]), want[i]) << what << " at " << i;
      continue;
    }
    ASSERT_FALSE(std::isnan(got[i])) << what << " at " << i;
    worst = std::max(worst, std::abs(double(got[i]) - want[i]));
  }
  EXPECT_LE(worst, kTolerance) << what;
}

void CheckLayer(const MultiHeadAttention& layer, const LayerCase& c, uint32_t seed) {
  SCOPED_TRACE(Describe(c));
  const Layer problem(c, seed);
  const MultiHeadDims dims = problem.Dims();
  const auto weights = MultiHeadWeights::Create(dims, problem.Values());
  const MultiHeadInputs in = problem.Inputs(weights.get());
  const ReferenceMultiHeadResult want = ReferenceMultiHeadAttention(
      dims, problem.Values(), in.batch, in.q_len, in.kv_len, in.input, in.context, in.scale,
      in.mask, c.average_heads);
  const int64_t map_size = in.batch * (c.average_heads ? 1 : c.heads) * in.q_len * in.kv_len;
  std::vector<float> output(in.batch * in.q_len * dims.d_out, NAN), probabilities(map_size, NAN),
      scores(map_size, NAN);
  MultiHeadOutputs out{.output = output.data(), .probabilities = probabilities.data(),
                       .scores = scores.data(), .average_heads = c.average_heads};
  ASSERT_TRUE(layer.Run(in, out).ok());
  ExpectClose(output, want.output, "output");
  ExpectClose(probabilities, want.probabilities, "probabilities");
  ExpectClose(scores, want.scores, "scores");
}

// The layer with bf16 compute for its attention (projections in f32): output and
// probabilities within 1e-2 of the double reference, normwise (max error / max |value|). When
// `rounded` (units of more than 32 query rows), the output must also show bf16's rounding:
// error over 1e-4, where f32 compute stays near 1e-6.
void CheckLayerBf16(const MultiHeadAttention& layer, const LayerCase& c, uint32_t seed,
                    bool rounded) {
  SCOPED_TRACE(Describe(c) + " bf16");
  const Layer problem(c, seed);
  const MultiHeadDims dims = problem.Dims();
  const auto weights = MultiHeadWeights::Create(dims, problem.Values());
  MultiHeadInputs in = problem.Inputs(weights.get());
  const ReferenceMultiHeadResult want = ReferenceMultiHeadAttention(
      dims, problem.Values(), in.batch, in.q_len, in.kv_len, in.input, in.context, in.scale,
      in.mask, c.average_heads);
  in.bf16_compute = true;
  const int64_t map_size = in.batch * (c.average_heads ? 1 : c.heads) * in.q_len * in.kv_len;
  std::vector<float> output(in.batch * in.q_len * dims.d_out, NAN), probabilities(map_size, NAN);
  MultiHeadOutputs out{.output = output.data(), .probabilities = probabilities.data(),
                       .average_heads = c.average_heads};
  ASSERT_TRUE(layer.Run(in, out).ok());
  const double output_error = NormwiseError(output, want.output);
  EXPECT_LE(output_error, 1e-2) << "output";
  if (rounded) {
    EXPECT_GT(output_error, 1e-4) << "output computed in f32";
  }
  // Probabilities are at most 1: their max error is their normwise error.
  EXPECT_LE(MaxAbsError(probabilities, want.probabilities), 1e-2) << "probabilities";
}

class MultiHeadAttentionTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { omp_set_num_threads(GetParam()); }
  AttentionEngine engine_{{.primitive_cache_capacity = 64}};
  MultiHeadAttention layer_{engine_, 64};
};

TEST_P(MultiHeadAttentionTest, SelfAttentionFusedProjection) {
  CheckLayer(layer_, {.batch = 2, .q_len = 7, .kv_len = 7, .d_model = 16, .d_ctx = 16,
                      .heads = 4, .kv_heads = 4, .head_dim = 4, .value_dim = 4}, 1);
  CheckLayer(layer_, {.batch = 1, .q_len = 130, .kv_len = 130, .d_model = 24, .d_ctx = 24,
                      .heads = 3, .kv_heads = 3, .head_dim = 8, .value_dim = 8, .biases = true},
             2);
}

TEST_P(MultiHeadAttentionTest, GroupedQueryAndValueDimDiffer) {
  CheckLayer(layer_, {.batch = 2, .q_len = 9, .kv_len = 9, .d_model = 32, .d_ctx = 32,
                      .heads = 8, .kv_heads = 2, .head_dim = 4, .value_dim = 6, .biases = true,
                      .d_out = 10}, 3);
}

TEST_P(MultiHeadAttentionTest, CrossAttention) {
  // d_ctx != d_model: separate Q and KV projections.
  CheckLayer(layer_, {.batch = 2, .q_len = 5, .kv_len = 11, .d_model = 12, .d_ctx = 20,
                      .heads = 2, .kv_heads = 1, .head_dim = 6, .value_dim = 5, .cross = true,
                      .biases = true}, 4);
  // d_ctx == d_model: views into the fused weights.
  CheckLayer(layer_, {.batch = 1, .q_len = 3, .kv_len = 17, .d_model = 16, .d_ctx = 16,
                      .heads = 4, .kv_heads = 2, .head_dim = 4, .value_dim = 4, .cross = true,
                      .d_out = 16}, 5);
}

TEST_P(MultiHeadAttentionTest, AddAndNorm) {
  CheckLayer(layer_, {.batch = 2, .q_len = 6, .kv_len = 6, .d_model = 16, .d_ctx = 16,
                      .heads = 4, .kv_heads = 4, .head_dim = 4, .value_dim = 4, .biases = true,
                      .d_out = 16, .add_norm = true}, 6);
  // Without W_o: H*Dv must equal d_model.
  CheckLayer(layer_, {.batch = 1, .q_len = 4, .kv_len = 4, .d_model = 12, .d_ctx = 12,
                      .heads = 2, .kv_heads = 2, .head_dim = 3, .value_dim = 6,
                      .add_norm = true}, 7);
}

TEST_P(MultiHeadAttentionTest, MasksAndAveragedMaps) {
  for (bool average : {false, true}) {
    CheckLayer(layer_, {.batch = 3, .q_len = 6, .kv_len = 9, .d_model = 16, .d_ctx = 8,
                        .heads = 4, .kv_heads = 2, .head_dim = 4, .value_dim = 4, .cross = true,
                        .biases = true, .d_out = 16, .add_norm = true,
                        .causal_and_padding = true, .average_heads = average}, 8);
  }
}

// Units of more than 32 query rows take the bf16 path (with Q, K and V strided views of the
// fused projection); the decode-sized one computes in f32 and must be within 1e-2 too. Weights
// of standard deviation 1/sqrt(fan-in) give projected Q and K rows of about unit variance, so
// scores of order 1 as in the engine's bf16 test (bf16 rounds each operand to 2^-9 relative:
// scores of order 5, from weights of 0.3 at d_model = 64, put probabilities 1.3e-2 off).
TEST_P(MultiHeadAttentionTest, Bf16ComputeIsWithinOnePercent) {
  CheckLayerBf16(layer_, {.batch = 2, .q_len = 70, .kv_len = 70, .d_model = 64, .d_ctx = 64,
                          .heads = 4, .kv_heads = 2, .head_dim = 16, .value_dim = 16,
                          .biases = true, .d_out = 64, .add_norm = true,
                          .causal_and_padding = true, .weight_scale = 0.125f}, 9, true);
  CheckLayerBf16(layer_, {.batch = 1, .q_len = 40, .kv_len = 130, .d_model = 32, .d_ctx = 24,
                          .heads = 2, .kv_heads = 2, .head_dim = 16, .value_dim = 8,
                          .cross = true, .biases = true, .average_heads = true,
                          .weight_scale = 0.18f}, 10, true);
  CheckLayerBf16(layer_, {.batch = 2, .q_len = 3, .kv_len = 50, .d_model = 16, .d_ctx = 16,
                          .heads = 4, .kv_heads = 4, .head_dim = 4, .value_dim = 4,
                          .cross = true, .weight_scale = 0.25f}, 11, false);
}

INSTANTIATE_TEST_SUITE_P(OpenMpThreads, MultiHeadAttentionTest, ::testing::Values(1, 2));

}  // namespace
}  // namespace attn
