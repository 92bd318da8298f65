// Tests of src/multi_head_weights: every shape rule of InferMultiHeadDims with its message, and
// that Create packs [W_q | W_k | W_v] (fused) or W_q and [W_k | W_v] (separate) faithfully.
#include "src/layer/multi_head_weights.h"

#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attn {
namespace {

using ::testing::HasSubstr;

// d_model 8, H 4, Hkv 2, D 2, Dv 3, W_o to d_out 8, all biases, Add & Norm.
struct Shapes {
  std::vector<int64_t> w_q{8, 8}, w_k{8, 4}, w_v{8, 6}, w_o{12, 8};
  std::vector<int64_t> b_q{8}, b_k{4}, b_v{6}, b_o{8}, gamma{8}, beta{8};

  WeightShapes View() const {
    WeightShapes s;
    s.w_q = w_q;
    s.w_k = w_k;
    s.w_v = w_v;
    s.w_o = w_o;
    s.b_q = b_q;
    s.b_k = b_k;
    s.b_v = b_v;
    s.b_o = b_o;
    s.gamma = gamma;
    s.beta = beta;
    return s;
  }
};

absl::StatusOr<MultiHeadDims> Infer(const Shapes& s, int64_t heads = 4, int64_t kv_heads = 2,
                                    bool add_norm = true, float epsilon = 1e-5f) {
  return InferMultiHeadDims("weights.", s.View(), heads, kv_heads, add_norm, epsilon);
}

void ExpectInvalid(const absl::StatusOr<MultiHeadDims>& dims, const std::string& message) {
  ASSERT_FALSE(dims.ok());
  EXPECT_EQ(dims.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(dims.status().message()), HasSubstr(message));
}

TEST(MultiHeadWeightsTest, InfersEveryDimension) {
  const MultiHeadDims d = Infer(Shapes()).value();
  EXPECT_EQ(d.num_heads, 4);
  EXPECT_EQ(d.num_kv_heads, 2);
  EXPECT_EQ(d.d_model, 8);
  EXPECT_EQ(d.d_ctx, 8);
  EXPECT_EQ(d.head_dim, 2);
  EXPECT_EQ(d.value_dim, 3);
  EXPECT_EQ(d.d_out, 8);
  EXPECT_TRUE(d.has_output_projection);
  EXPECT_TRUE(d.has_add_norm);
}

TEST(MultiHeadWeightsTest, ZeroKvHeadsMeansNumHeads) {
  Shapes s;
  s.w_k = {8, 8};
  s.b_k = {8};
  s.w_v = {8, 12};
  s.b_v = {12};
  s.w_o = {12, 8};
  EXPECT_EQ(Infer(s, 4, 0).value().num_kv_heads, 4);
}

TEST(MultiHeadWeightsTest, RejectsHeadCounts) {
  ExpectInvalid(Infer(Shapes(), 0), "weights.num_heads = 0 must be in [1, 65536]");
  ExpectInvalid(Infer(Shapes(), 4, 3), "weights.num_heads = 4 is not a multiple of weights.num_kv_heads = 3");
  ExpectInvalid(Infer(Shapes(), 3, 3), "weights.w_q.shape[1] = 8 is not a multiple of num_heads = 3");
}

TEST(MultiHeadWeightsTest, RejectsShapesThatDisagree) {
  Shapes s;
  s.w_k = {8, 6};
  ExpectInvalid(Infer(s), "weights.w_k.shape[1] = 6 but num_kv_heads * head_dim = 2 * 2 = 4");
  s = Shapes();
  s.w_v = {7, 6};
  ExpectInvalid(Infer(s), "weights.w_v.shape[0] = 7 but weights.w_k.shape[0] = 8");
  s = Shapes();
  s.w_v = {8, 5};
  ExpectInvalid(Infer(s), "weights.w_v.shape[1] = 5 is not a multiple of num_kv_heads = 2");
  s = Shapes();
  s.w_o = {8, 8};
  ExpectInvalid(Infer(s), "weights.w_o.shape[0] = 8 but num_heads * value_dim = 4 * 3 = 12");
  s = Shapes();
  s.w_q = {8, 8, 1};
  ExpectInvalid(Infer(s), "weights.w_q has shape [8,8,1]; expected rank 2");
  s = Shapes();
  s.w_q = {};
  ExpectInvalid(Infer(s), "weights.w_q is missing");
  s = Shapes();
  s.w_k = {0, 4};
  ExpectInvalid(Infer(s), "weights.w_k.shape[0] = 0 must be in [1, 2^40]");
}

TEST(MultiHeadWeightsTest, RejectsBiasLengths) {
  Shapes s;
  s.b_q = {7};
  ExpectInvalid(Infer(s), "weights.b_q.shape[0] = 7 but num_heads * head_dim = 8");
  s = Shapes();
  s.b_v = {4};
  ExpectInvalid(Infer(s), "weights.b_v.shape[0] = 4 but num_kv_heads * value_dim = 6");
  s = Shapes();
  s.b_o = {9};
  ExpectInvalid(Infer(s), "weights.b_o.shape[0] = 9 but d_out = 8");
  s = Shapes();
  s.w_o = {};
  s.gamma = s.beta = {12};
  ExpectInvalid(Infer(s, 4, 2, false), "weights.b_o is set but weights.w_o is not");
}

TEST(MultiHeadWeightsTest, RejectsAddNormProblems) {
  Shapes s;
  s.w_o = {12, 6};
  s.b_o = {6};
  ExpectInvalid(Infer(s), "weights.add_norm needs d_out = d_model, but d_out = 6 and d_model = 8");
  s = Shapes();
  s.gamma = {7};
  ExpectInvalid(Infer(s), "weights.add_norm.gamma.shape[0] = 7 but d_model = 8");
  s = Shapes();
  s.beta = {};
  ExpectInvalid(Infer(s), "weights.add_norm.beta is missing");
  ExpectInvalid(Infer(Shapes(), 4, 2, true, 0.0f), "weights.add_norm.epsilon = 0 must be finite and > 0");
  ExpectInvalid(Infer(Shapes(), 4, 2, true, NAN), "weights.add_norm.epsilon = nan must be finite and > 0");
}

std::vector<float> Iota(size_t n, float start) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(MultiHeadWeightsTest, PacksFusedAndSeparateProjections) {
  for (int64_t d_ctx : {8, 5}) {
    Shapes s;
    s.w_k = {d_ctx, 4};
    s.w_v = {d_ctx, 6};
    const MultiHeadDims d = Infer(s).value();
    const std::vector<float> w_q = Iota(64, 0), w_k = Iota(d_ctx * 4, 1000),
                             w_v = Iota(d_ctx * 6, 2000), w_o = Iota(96, 3000),
                             b_k = Iota(4, 4000), gamma = Iota(8, 5000), beta = Iota(8, 6000);
    WeightValues values{.w_q = w_q, .w_k = w_k, .w_v = w_v, .w_o = w_o, .b_q = {}, .b_k = b_k,
                        .b_v = {}, .b_o = {}, .gamma = gamma, .beta = beta};
    const auto w = MultiHeadWeights::Create(d, values);
    EXPECT_EQ(w->fused_qkv(), d_ctx == 8);
    const MatrixView q = w->query(), kv = w->key_value();
    for (int64_t r = 0; r < 8; ++r)
      for (int64_t c = 0; c < 8; ++c) EXPECT_EQ(q.data[r * q.row_stride + c], w_q[r * 8 + c]);
    for (int64_t r = 0; r < d_ctx; ++r) {
      for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(kv.data[r * kv.row_stride + c], w_k[r * 4 + c]);
      for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(kv.data[r * kv.row_stride + 4 + c], w_v[r * 6 + c]);
    }
    // Absent biases are zeros; present ones are copied.
    for (int i = 0; i < 8; ++i) EXPECT_EQ(w->query_bias()[i], 0.0f);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(w->key_value_bias()[i], b_k[i]);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(w->output_bias()[i], 0.0f);
    EXPECT_EQ(w->output_projection().data[95], w_o[95]);
    EXPECT_EQ(w->gamma()[7], gamma[7]);
    EXPECT_EQ(w->beta()[0], beta[0]);
    EXPECT_GE(w->bytes(), int64_t((64 + w_k.size() + w_v.size() + 96 + 16) * sizeof(float)));
  }
}

}  // namespace
}  // namespace attn
