// Tests of proto/tensor_codec: decoding validates dtype, data vs values, byte lengths and caps
// with precise messages; encoding round-trips through every dtype; ResizeUninitialized gives
// exactly the size asked for and keeps the bytes already there.
#include "proto/tensor_codec.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/uninitialized_resize.h"

namespace attn {
namespace {

namespace pb = attention::v1;
using ::testing::HasSubstr;

pb::Tensor Shaped(std::initializer_list<int64_t> shape) {
  pb::Tensor t;
  for (int64_t d : shape) t.add_shape(d);
  return t;
}

TEST(TensorCodecTest, F32DataIsViewedWithoutCopy) {
  pb::Tensor t = Shaped({2, 2});
  const float values[] = {1, 2, 3, 4};
  t.set_data(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  auto decoded = DecodeFloatTensor("query", t, 100);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->count, 4);
  EXPECT_EQ(static_cast<const void*>(decoded->data), static_cast<const void*>(t.data().data()));
  EXPECT_EQ(decoded->data[3], 4.0f);
  EXPECT_FALSE(decoded->used_values);
}

TEST(TensorCodecTest, ValuesAreViewedAndFlagged) {
  pb::Tensor t = Shaped({3});
  for (float x : {1.5f, -2.0f, 0.25f}) t.add_values(x);
  auto decoded = DecodeFloatTensor("key", t, 100);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->used_values);
  EXPECT_EQ(decoded->data[1], -2.0f);
}

TEST(TensorCodecTest, RoundTripsEveryFloatDtype) {
  const std::vector<float> exact = {1.0f, -0.5f, 3.0f, 0.0f, -1024.0f, 0.125f};
  const int64_t shape[] = {2, 3};
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    pb::Tensor t;
    EncodeFloatTensor(shape, exact.data(), dtype, false, &t);
    EXPECT_EQ(t.dtype(), DTypeToProto(dtype));
    EXPECT_EQ(static_cast<int64_t>(t.data().size()), 6 * DTypeSize(dtype));
    auto decoded = DecodeFloatTensor("t", t, 100);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->source_dtype, dtype);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(decoded->data[i], exact[i]) << DTypeName(dtype);
  }
}

TEST(TensorCodecTest, EncodeRoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between two bf16 values: it rounds to the even one, 1.0.
  const float halfway = 1.0f + 1.0f / 256.0f;
  const int64_t shape[] = {1};
  pb::Tensor t;
  EncodeFloatTensor(shape, &halfway, DType::kBFloat16, false, &t);
  uint16_t bits;
  std::memcpy(&bits, t.data().data(), 2);
  EXPECT_EQ(bits, 0x3F80);
}

TEST(TensorCodecTest, EncodeIntoValuesKeepsF32) {
  const float src[] = {0.1f, 0.2f};
  const int64_t shape[] = {2};
  pb::Tensor t;
  EncodeFloatTensor(shape, src, DType::kBFloat16, true, &t);
  EXPECT_TRUE(t.data().empty());
  ASSERT_EQ(t.values_size(), 2);
  EXPECT_EQ(t.values(0), 0.1f);
  EXPECT_EQ(t.dtype(), pb::DATA_TYPE_FLOAT32);
}

// BFLOAT16 data asked to stay bf16 is viewed in place, bits unchanged; FLOAT32 and FLOAT16
// are decoded to f32 as ever.
TEST(TensorCodecTest, Bf16KeptAsItIsWhenAsked) {
  const uint16_t bits[] = {0x3F80, 0xC040, 0x7FC0};  // 1, -3, NaN
  pb::Tensor t = Shaped({3});
  t.set_dtype(pb::DATA_TYPE_BFLOAT16);
  t.set_data(std::string(reinterpret_cast<const char*>(bits), sizeof(bits)));
  auto kept = DecodeFloatTensor("key", t, 100, /*keep_bf16=*/true);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->data, nullptr);
  ASSERT_NE(kept->bf16, nullptr);
  EXPECT_EQ(static_cast<const void*>(kept->bf16), static_cast<const void*>(t.data().data()));
  EXPECT_THAT(std::vector<uint16_t>(kept->bf16, kept->bf16 + 3),
              ::testing::ElementsAre(0x3F80, 0xC040, 0x7FC0));
  t.set_dtype(pb::DATA_TYPE_FLOAT16);
  auto f16 = DecodeFloatTensor("key", t, 100, /*keep_bf16=*/true);
  ASSERT_TRUE(f16.ok()) << f16.status();
  EXPECT_EQ(f16->bf16, nullptr);
  ASSERT_NE(f16->data, nullptr);
}

TEST(TensorCodecTest, UnknownDtypeIsNamed) {
  pb::Tensor t = Shaped({1});
  t.set_dtype(static_cast<pb::DataType>(17));
  t.add_values(1);
  auto decoded = DecodeFloatTensor("value", t, 100);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(decoded.status().message(), HasSubstr("value.dtype = 17 is not a DataType"));
}

TEST(TensorCodecTest, BoolIsNotAFloatTensor) {
  pb::Tensor t = Shaped({1});
  t.set_dtype(pb::DATA_TYPE_BOOL);
  t.set_data(std::string(1, '\1'));
  EXPECT_THAT(DecodeFloatTensor("query", t, 100).status().message(),
              HasSubstr("query.dtype = BOOL"));
}

TEST(TensorCodecTest, ValuesCountMustMatchShape) {
  pb::Tensor t = Shaped({2, 2});
  t.add_values(1);
  EXPECT_THAT(DecodeFloatTensor("query", t, 100).status().message(),
              HasSubstr("query.values has 1 numbers but shape [2,2] needs 4"));
}

TEST(TensorCodecTest, ElementCapIsResourceExhausted) {
  pb::Tensor t = Shaped({10, 11});
  t.set_data(std::string(440, '\0'));
  auto decoded = DecodeFloatTensor("query", t, 100);
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(decoded.status().message(), HasSubstr("110 elements"));
}

TEST(TensorCodecTest, MissingTensorIsNamed) {
  EXPECT_THAT(DecodeFloatTensor("value", pb::Tensor(), 100).status().message(),
              HasSubstr("value is missing"));
  EXPECT_TRUE(IsEmptyTensor(pb::Tensor()));
  EXPECT_FALSE(IsEmptyTensor(Shaped({1})));
}

TEST(TensorCodecTest, BoolTensorFromDataOrValues) {
  pb::Tensor t = Shaped({3});
  t.set_dtype(pb::DATA_TYPE_BOOL);
  t.set_data(std::string("\1\0\7", 3));
  auto from_data = DecodeBoolTensor("mask.allowed", t, 100);
  ASSERT_TRUE(from_data.ok());
  EXPECT_EQ(from_data->data[0], 1);
  EXPECT_EQ(from_data->data[1], 0);
  EXPECT_NE(from_data->data[2], 0);
  t.clear_data();
  for (float x : {0.0f, 2.0f, -1.0f}) t.add_values(x);
  auto from_values = DecodeBoolTensor("mask.allowed", t, 100);
  ASSERT_TRUE(from_values.ok());
  EXPECT_EQ(from_values->data[0], 0);
  EXPECT_EQ(from_values->data[1], 1);
  EXPECT_EQ(from_values->data[2], 1);
}

TEST(TensorCodecTest, BoolTensorByteLengthChecked) {
  pb::Tensor t = Shaped({4});
  t.set_dtype(pb::DATA_TYPE_BOOL);
  t.set_data(std::string(3, '\1'));
  EXPECT_THAT(DecodeBoolTensor("mask.allowed", t, 100).status().message(),
              HasSubstr("mask.allowed.data has 3 bytes but shape [4] of BOOL needs 4"));
}

TEST(ResizeUninitializedTest, GivesTheSizeAskedForAndKeepsThePrefix) {
  std::string s;
  // From empty, within and past the inline buffer, growing by small and large steps, shrinking.
  for (size_t size : {0u, 1u, 15u, 16u, 24u, 100u, 4096u, 1u << 20, 3u, 0u, 70000u}) {
    const std::string before = s;
    ResizeUninitialized(&s, size);
    ASSERT_EQ(s.size(), size);
    ASSERT_GE(s.capacity(), size);
    EXPECT_EQ(s.compare(0, std::min(size, before.size()), before, 0,
                        std::min(size, before.size())),
              0)
        << "size " << size;
    EXPECT_EQ(s.c_str()[size], '\0');
    for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + i % 26);
  }
}

}  // namespace
}  // namespace attn
