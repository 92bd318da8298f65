// Tests of src/safetensors and src/weights_file: well-formed files parse and build weights;
// truncated files, bad header lengths, bad JSON, offsets outside the data, byte counts that
// disagree with shape x dtype, unknown dtypes and tensors, and missing metadata are each refused
// with a message saying what is wrong.
#include "src/weights/safetensors.h"

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/weights/weights_file.h"

namespace attn {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> File(const std::string& header, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> bytes(8 + header.size() + data.size());
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(n >> (8 * i));
  std::copy(header.begin(), header.end(), bytes.begin() + 8);
  std::copy(data.begin(), data.end(), bytes.begin() + 8 + header.size());
  return bytes;
}

std::vector<uint8_t> Floats(const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * 4);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

std::string Message(const absl::StatusOr<SafetensorsFile>& file) {
  EXPECT_FALSE(file.ok());
  return std::string(file.status().message());
}

TEST(SafetensorsTest, ParsesTensorsAndMetadata) {
  const std::string header =
      R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("b":{"dtype":"BF16","shape":[1],"data_offsets":[16,18]},"__metadata__":{"k":"v"}})";
  std::vector<uint8_t> data = Floats({1, 2, 3, 4});
  data.push_back(0x80);  // bf16 0x3f80 = 1.0, little-endian
  data.push_back(0x3f);
  const SafetensorsFile file = ParseSafetensors(File(header, data)).value();
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.ToFloat(file.tensors.at("a")), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(file.ToFloat(file.tensors.at("b")), (std::vector<float>{1}));
  EXPECT_EQ(file.metadata.at("k"), "v");
}

TEST(SafetensorsTest, RefusesMalformedFiles) {
  EXPECT_THAT(Message(ParseSafetensors({1, 2, 3})), HasSubstr("the file has 3 bytes"));
  std::vector<uint8_t> truncated = File(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", {});
  truncated.resize(20);
  EXPECT_THAT(Message(ParseSafetensors(truncated)), HasSubstr("truncated file?"));
  EXPECT_THAT(Message(ParseSafetensors(File("{not json", {}))),
              HasSubstr("the header is not a JSON object"));
  EXPECT_THAT(Message(ParseSafetensors(
                  File(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", Floats({1})))),
              HasSubstr("data_offsets [0, 16] outside the 4 data bytes"));
  EXPECT_THAT(Message(ParseSafetensors(File(
                  R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", Floats({1, 2})))),
              HasSubstr("has 8 data bytes but its shape and dtype F32 need 12"));
  EXPECT_THAT(Message(ParseSafetensors(
                  File(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", Floats({1, 2})))),
              HasSubstr("dtype I64; only F32, BF16 and F16"));
  EXPECT_THAT(Message(ParseSafetensors(
                  File(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", Floats({1})))),
              HasSubstr("not an integer in [0, 2^40]"));
  EXPECT_THAT(Message(ParseSafetensors(File(R"({"a":{"dtype":"F32"}})", {}))),
              HasSubstr("needs \"dtype\""));
  EXPECT_THAT(Message(ParseSafetensors(File(R"({"__metadata__":{"k":1}})", {}))),
              HasSubstr("__metadata__[\"k\"] is not a string"));
}

// A weight file of d_model 4, H 2, D 2 (w_q, w_k, w_v only) plus `extra` header entries.
std::vector<uint8_t> WeightFile(const std::string& metadata, const std::string& extra = "") {
  const std::string header =
      R"({"w_q":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]},)"
      R"("w_k":{"dtype":"F32","shape":[4,4],"data_offsets":[64,128]},)"
      R"("w_v":{"dtype":"F32","shape":[4,4],"data_offsets":[128,192]},)" +
      extra + R"("__metadata__":)" + metadata + "}";
  return File(header, Floats(std::vector<float>(48, 0.5f)));
}

TEST(WeightsFileTest, BuildsWeightsFromAFile) {
  const auto weights =
      WeightsFromSafetensors(ParseSafetensors(WeightFile(R"({"num_heads":"2"})")).value());
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ((*weights)->dims().num_heads, 2);
  EXPECT_EQ((*weights)->dims().num_kv_heads, 2);
  EXPECT_EQ((*weights)->dims().head_dim, 2);
  EXPECT_EQ((*weights)->qkv().data[0], 0.5f);
}

TEST(WeightsFileTest, RefusesBadWeightFiles) {
  auto message = [](const std::vector<uint8_t>& bytes) {
    const auto weights = WeightsFromSafetensors(ParseSafetensors(bytes).value());
    EXPECT_FALSE(weights.ok());
    return std::string(weights.status().message());
  };
  EXPECT_THAT(message(WeightFile("{}")), HasSubstr("__metadata__ has no \"num_heads\""));
  EXPECT_THAT(message(WeightFile(R"({"num_heads":"two"})")),
              HasSubstr("__metadata__[\"num_heads\"] = \"two\" is not an integer"));
  EXPECT_THAT(message(WeightFile(R"({"num_heads":"3"})")),
              HasSubstr("w_q.shape[1] = 4 is not a multiple of num_heads = 3"));
  EXPECT_THAT(message(WeightFile(R"({"num_heads":"2"})",
                                 R"("w_x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)")),
              HasSubstr("unknown tensor \"w_x\""));
  EXPECT_THAT(message(WeightFile(R"({"num_heads":"2"})",
                                 R"("add_norm.gamma":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)")),
              HasSubstr("__metadata__[\"add_norm.epsilon\"] is missing"));
}

TEST(WeightsFileTest, ReportsUnreadableFiles) {
  const auto missing = LoadWeightsFile("/nonexistent/x.safetensors", 1 << 20);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace attn
