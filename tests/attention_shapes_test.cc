// Tests of src/attention_shapes: every error names the field and the numbers; good shapes give
// the right dims and broadcast strides.
#include "src/engine/attention_shapes.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attn {
namespace {

using ::testing::HasSubstr;
using V = std::vector<int64_t>;

std::string Error(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

TEST(AttentionShapesTest, InfersGroupedQueryDims) {
  auto dims = InferAttentionDims(V{2, 8, 5, 16}, V{2, 2, 7, 16}, V{2, 2, 7, 24});
  ASSERT_TRUE(dims.ok()) << dims.status();
  EXPECT_EQ(dims->batch, 2);
  EXPECT_EQ(dims->heads, 8);
  EXPECT_EQ(dims->kv_heads, 2);
  EXPECT_EQ(dims->group_size(), 4);
  EXPECT_EQ(dims->q_len, 5);
  EXPECT_EQ(dims->kv_len, 7);
  EXPECT_EQ(dims->head_dim, 16);
  EXPECT_EQ(dims->value_dim, 24);
  EXPECT_TRUE(InferAttentionDims(V{1, 1, 1, 1}, V{1, 1, 1, 1}, V{1, 1, 1, 1}).ok());
}

TEST(AttentionShapesTest, NamesTheDisagreement) {
  EXPECT_THAT(Error(InferAttentionDims(V{1, 2, 4, 64}, V{1, 2, 4, 32}, V{1, 2, 4, 8}).status()),
              HasSubstr("key.shape[3] = 32 but query.shape[3] = 64"));
  EXPECT_THAT(Error(InferAttentionDims(V{2, 2, 4, 8}, V{3, 2, 4, 8}, V{2, 2, 4, 8}).status()),
              HasSubstr("key.shape[0] = 3 but query.shape[0] = 2"));
  EXPECT_THAT(Error(InferAttentionDims(V{1, 2, 4, 8}, V{1, 2, 4, 8}, V{1, 2, 5, 8}).status()),
              HasSubstr("value.shape[2] = 5 but key.shape[2] = 4"));
  EXPECT_THAT(Error(InferAttentionDims(V{1, 2, 4, 8}, V{1, 2, 4, 8}, V{1, 1, 4, 8}).status()),
              HasSubstr("value.shape[1] = 1 but key.shape[1] = 2"));
  EXPECT_THAT(Error(InferAttentionDims(V{1, 12, 4, 8}, V{1, 5, 4, 8}, V{1, 5, 4, 8}).status()),
              HasSubstr("query.shape[1] = 12 is not a multiple of key.shape[1] = 5"));
}

TEST(AttentionShapesTest, RankAndDimErrors) {
  EXPECT_THAT(Error(InferAttentionDims(V{2, 4, 8}, V{1, 1, 1, 1}, V{1, 1, 1, 1}).status()),
              HasSubstr("query must have rank 4 [B,H,Sq,D], got rank 3"));
  EXPECT_THAT(Error(InferAttentionDims(V{1, 1, 1, 1}, V{1, 1, 1, 1}, V{1, 1, 1, 0}).status()),
              HasSubstr("value.shape[3] = 0 must be >= 1"));
  EXPECT_THAT(Error(InferAttentionDims(V{}, V{1, 1, 1, 1}, V{1, 1, 1, 1}).status()),
              HasSubstr("got rank 0"));
}

TEST(AttentionShapesTest, ElementCountOverflow) {
  EXPECT_EQ(*CheckedElementCount("x", V{3, 5, 7}), 105);
  EXPECT_THAT(Error(CheckedElementCount("query.shape", V{1 << 30, 1 << 30, 1 << 30}).status()),
              HasSubstr("query.shape [1073741824,1073741824,1073741824] has a product that "
                        "overflows int64"));
  EXPECT_THAT(Error(CheckedElementCount("x", V{2, -1}).status()), HasSubstr("x[1] = -1"));
}

TEST(AttentionShapesTest, KeyLengths) {
  const AttentionDims dims{.batch = 2, .heads = 1, .kv_heads = 1, .q_len = 3, .kv_len = 8,
                           .head_dim = 4, .value_dim = 4};
  const std::vector<int32_t> good = {0, 8}, short_list = {3}, too_long = {3, 9}, negative = {-1, 2};
  EXPECT_TRUE(CheckKeyLengths({}, dims).ok());
  EXPECT_TRUE(CheckKeyLengths(good, dims).ok());
  EXPECT_THAT(Error(CheckKeyLengths(short_list, dims)),
              HasSubstr("mask.key_lengths has 1 entries but batch is 2"));
  EXPECT_THAT(Error(CheckKeyLengths(too_long, dims)),
              HasSubstr("mask.key_lengths[1] = 9 is outside [0, 8]"));
  EXPECT_THAT(Error(CheckKeyLengths(negative, dims)), HasSubstr("mask.key_lengths[0] = -1"));
}

TEST(AttentionShapesTest, BroadcastStrides) {
  const AttentionDims d{.batch = 2, .heads = 4, .kv_heads = 4, .q_len = 8, .kv_len = 16,
                        .head_dim = 4, .value_dim = 4};
  using S = BroadcastStrides;
  EXPECT_EQ(*BroadcastToScores("m", V{2, 4, 8, 16}, d), (S{512, 128, 16, 1}));
  EXPECT_EQ(*BroadcastToScores("m", V{8, 16}, d), (S{0, 0, 16, 1}));
  EXPECT_EQ(*BroadcastToScores("m", V{16}, d), (S{0, 0, 0, 1}));
  EXPECT_EQ(*BroadcastToScores("m", V{1, 16}, d), (S{0, 0, 0, 1}));
  EXPECT_EQ(*BroadcastToScores("m", V{2, 1, 1, 16}, d), (S{16, 0, 0, 1}));
  EXPECT_EQ(*BroadcastToScores("m", V{4, 8, 1}, d), (S{0, 8, 1, 0}));
  EXPECT_EQ(*BroadcastToScores("m", V{1, 1, 1, 1}, d), (S{0, 0, 0, 0}));
}

TEST(AttentionShapesTest, BroadcastErrors) {
  const AttentionDims d{.batch = 2, .heads = 4, .kv_heads = 4, .q_len = 8, .kv_len = 8,
                        .head_dim = 4, .value_dim = 4};
  EXPECT_THAT(Error(BroadcastToScores("mask.bias", V{3, 4, 8, 8}, d).status()),
              HasSubstr("mask.bias.shape[0] = 3 does not broadcast to 2 (dim 0 of [B,H,Sq,Sk] = "
                        "[2,4,8,8])"));
  EXPECT_THAT(Error(BroadcastToScores("mask.allowed", V{8, 5}, d).status()),
              HasSubstr("mask.allowed.shape[1] = 5 does not broadcast to 8"));
  EXPECT_THAT(Error(BroadcastToScores("mask.bias", V{1, 1, 1, 1, 1}, d).status()),
              HasSubstr("mask.bias has rank 5"));
  EXPECT_THAT(Error(BroadcastToScores("mask.bias", V{}, d).status()),
              HasSubstr("mask.bias has rank 0"));
}

}  // namespace
}  // namespace attn
