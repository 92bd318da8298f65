// Tests of src/reference_attention on cases small enough to compute by hand.
#include "src/reference/reference_attention.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace attn {
namespace {

AttentionInputs Inputs(const AttentionDims& dims, const std::vector<float>& q,
                       const std::vector<float>& k, const std::vector<float>& v, float scale) {
  AttentionInputs in;
  in.dims = dims;
  in.query = q.data();
  in.key = k.data();
  in.value = v.data();
  in.scale = scale;
  return in;
}

constexpr AttentionDims kOneHead2x2{.batch = 1, .heads = 1, .kv_heads = 1, .q_len = 2,
                                    .kv_len = 2, .head_dim = 2, .value_dim = 2};

TEST(ReferenceAttentionTest, TwoByTwoByHand) {
  // Q = K = I, scale 1: scores = I, P row 0 = (e, 1) / (e + 1).
  const std::vector<float> q = {1, 0, 0, 1}, v = {10, 20, 30, 40};
  const ReferenceResult r = ReferenceAttention(Inputs(kOneHead2x2, q, q, v, 1.0f));
  const double p = std::exp(1.0) / (std::exp(1.0) + 1);
  EXPECT_DOUBLE_EQ(r.scores[0], 1.0);
  EXPECT_DOUBLE_EQ(r.scores[1], 0.0);
  EXPECT_NEAR(r.probabilities[0], p, 1e-15);
  EXPECT_NEAR(r.probabilities[1], 1 - p, 1e-15);
  EXPECT_NEAR(r.output[0], 10 * p + 30 * (1 - p), 1e-12);
  EXPECT_NEAR(r.output[3], 20 * (1 - p) + 40 * p, 1e-12);
}

TEST(ReferenceAttentionTest, CausalFirstRowSeesOnlyItself) {
  const std::vector<float> q = {1, 0, 0, 1}, v = {10, 20, 30, 40};
  AttentionInputs in = Inputs(kOneHead2x2, q, q, v, 1.0f);
  in.mask.causal = CausalKind::kUpperLeft;
  const ReferenceResult r = ReferenceAttention(in);
  EXPECT_EQ(r.probabilities[0], 1.0);
  EXPECT_EQ(r.probabilities[1], 0.0);
  EXPECT_TRUE(std::isinf(r.scores[1]) && r.scores[1] < 0);
  EXPECT_EQ(r.output[0], 10.0);
  EXPECT_EQ(r.output[1], 20.0);
}

TEST(ReferenceAttentionTest, LowerRightCausalWithMoreKeysThanQueries) {
  // Sq = 1, Sk = 3: the single query is the last position and sees every key.
  const AttentionDims d{.batch = 1, .heads = 1, .kv_heads = 1, .q_len = 1, .kv_len = 3,
                        .head_dim = 1, .value_dim = 1};
  const std::vector<float> q = {0}, k = {1, 2, 3}, v = {1, 2, 3};
  AttentionInputs in = Inputs(d, q, k, v, 1.0f);
  in.mask.causal = CausalKind::kLowerRight;
  const ReferenceResult lower_right = ReferenceAttention(in);
  in.mask.causal = CausalKind::kUpperLeft;
  const ReferenceResult upper_left = ReferenceAttention(in);
  EXPECT_NEAR(lower_right.output[0], 2.0, 1e-12);  // uniform over 1, 2, 3
  EXPECT_EQ(upper_left.output[0], 1.0);            // only key 0
}

TEST(ReferenceAttentionTest, FullyMaskedRowIsZeroNotNan) {
  const std::vector<float> q = {1, 0, 0, 1}, v = {10, 20, 30, 40};
  const std::vector<int32_t> no_keys = {0};
  AttentionInputs in = Inputs(kOneHead2x2, q, q, v, 1.0f);
  in.mask.key_lengths = no_keys;
  const ReferenceResult r = ReferenceAttention(in);
  for (double x : r.output) EXPECT_EQ(x, 0.0);
  for (double x : r.probabilities) EXPECT_EQ(x, 0.0);
  for (double x : r.scores) EXPECT_TRUE(std::isinf(x) && x < 0);
}

TEST(ReferenceAttentionTest, BiasAddsAndMinusInfinityForbids) {
  const std::vector<float> q = {1, 0, 0, 1}, v = {10, 20, 30, 40};
  const std::vector<float> bias = {0.5f, -INFINITY};  // [Sk] broadcast over everything
  AttentionInputs in = Inputs(kOneHead2x2, q, q, v, 1.0f);
  in.mask.bias = bias.data();
  in.mask.bias_strides = {0, 0, 0, 1};
  const ReferenceResult r = ReferenceAttention(in);
  EXPECT_DOUBLE_EQ(r.scores[0], 1.5);
  EXPECT_DOUBLE_EQ(r.scores[2], 0.5);
  EXPECT_EQ(r.probabilities[1], 0.0);
  EXPECT_EQ(r.probabilities[0], 1.0);
  EXPECT_EQ(r.output[2], 10.0);
}

TEST(ReferenceAttentionTest, AllowedFalseForbids) {
  const std::vector<float> q = {1, 0, 0, 1}, v = {10, 20, 30, 40};
  const std::vector<uint8_t> allowed = {0, 1, 1, 1};  // [Sq,Sk]: query 0 may not see key 0
  AttentionInputs in = Inputs(kOneHead2x2, q, q, v, 1.0f);
  in.mask.allowed = allowed.data();
  in.mask.allowed_strides = {0, 0, 2, 1};
  const ReferenceResult r = ReferenceAttention(in);
  EXPECT_EQ(r.probabilities[0], 0.0);
  EXPECT_EQ(r.output[0], 30.0);
}

TEST(ReferenceAttentionTest, GroupedQueryHeadsShareTheirKvHead) {
  // H = 4, Hkv = 2: heads 0,1 use kv head 0 (values 1), heads 2,3 use kv head 1 (values 5).
  const AttentionDims d{.batch = 1, .heads = 4, .kv_heads = 2, .q_len = 1, .kv_len = 2,
                        .head_dim = 1, .value_dim = 1};
  const std::vector<float> q = {1, 2, 3, 4}, k = {0, 0, 0, 0}, v = {1, 1, 5, 5};
  const ReferenceResult r = ReferenceAttention(Inputs(d, q, k, v, 1.0f));
  EXPECT_EQ(r.output, (std::vector<double>{1, 1, 5, 5}));
}

TEST(ReferenceAttentionTest, RowsSumToOneAndLargeScoresStayFinite) {
  const AttentionDims d{.batch = 1, .heads = 1, .kv_heads = 1, .q_len = 3, .kv_len = 3,
                        .head_dim = 1, .value_dim = 1};
  const std::vector<float> q = {100, -100, 50}, k = {100, 99, -100}, v = {1, 2, 3};
  const ReferenceResult r = ReferenceAttention(Inputs(d, q, k, v, 1.0f));  // scores ~ +-1e4
  for (int i = 0; i < 3; ++i) {
    double sum = 0;
    for (int j = 0; j < 3; ++j) sum += r.probabilities[i * 3 + j];
    EXPECT_NEAR(sum, 1.0, 1e-12);
    EXPECT_TRUE(std::isfinite(r.output[i]));
  }
}

}  // namespace
}  // namespace attn
