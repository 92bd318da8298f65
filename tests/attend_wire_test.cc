// Tests of server/attend_wire: responses encoded with their tensor bytes handed over as slices
// are byte for byte what protobuf's SerializeAsString writes (every field combination the
// service produces: f32 data, 16-bit data, `values`, maps or none, timing or none, empty; data
// lengths of one to four varint bytes), the moved data fields are left empty, and a request's
// bytes parse back or are refused with their length.
#include "server/attend_wire.h"

#include <grpcpp/support/slice.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace attn {
namespace {

namespace pb = attention::v1;

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

// A tensor of `shape` with `count` recognisable bytes (count > 0) or f32 `values`.
pb::Tensor MakeTensor(std::vector<int64_t> shape, pb::DataType dtype, size_t bytes,
                      int values = 0) {
  pb::Tensor tensor;
  for (int64_t dim : shape) tensor.add_shape(dim);
  tensor.set_dtype(dtype);
  std::string data(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i * 7 + 3);
  if (bytes > 0) tensor.set_data(data);
  for (int i = 0; i < values; ++i) tensor.add_values(0.5f * i);
  return tensor;
}

void ExpectSameBytesAsProtobuf(const pb::AttendResponse& original) {
  pb::AttendResponse response = original;
  const grpc::ByteBuffer buffer = SerializeMovingTensorData(response);
  EXPECT_EQ(Bytes(buffer), original.SerializeAsString());
  EXPECT_EQ(buffer.Length(), original.ByteSizeLong());
  for (const pb::Tensor* tensor :
       {&response.output(), &response.attention(), &response.scores()}) {
    // (A tensor that also has `values` is encoded whole, its data kept.)
    if (tensor->values_size() == 0) {
      EXPECT_TRUE(tensor->data().empty()) << "data left behind";
    }
  }
  pb::AttendResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Bytes(buffer)));
  EXPECT_EQ(parsed.SerializeAsString(), original.SerializeAsString());
}

TEST(AttendWireTest, OutputAndMapsAsProtobufWritesThem) {
  pb::AttendResponse response;
  *response.mutable_output() = MakeTensor({1, 2, 3, 4}, pb::DATA_TYPE_FLOAT32, 96);
  *response.mutable_attention() = MakeTensor({1, 2, 3, 5}, pb::DATA_TYPE_FLOAT32, 120);
  *response.mutable_scores() = MakeTensor({1, 2, 3, 5}, pb::DATA_TYPE_FLOAT32, 120);
  response.mutable_timing()->set_queue_us(17);
  response.mutable_timing()->set_compute_us(123456);
  ExpectSameBytesAsProtobuf(response);
}

TEST(AttendWireTest, LargeTensorsWithMultiByteLengths) {
  pb::AttendResponse response;
  // 1.5 MB and 12.6 MB: lengths of three and four varint bytes.
  *response.mutable_output() = MakeTensor({1, 12, 512, 64}, pb::DATA_TYPE_FLOAT32, 1572864);
  *response.mutable_attention() =
      MakeTensor({1, 12, 512, 512}, pb::DATA_TYPE_FLOAT32, 12582912);
  response.mutable_timing()->set_compute_us(9000);
  ExpectSameBytesAsProtobuf(response);
}

TEST(AttendWireTest, SixteenBitOutputValuesAndEmptyFields) {
  pb::AttendResponse bf16;
  *bf16.mutable_output() = MakeTensor({2, 1, 1, 3}, pb::DATA_TYPE_BFLOAT16, 12);
  ExpectSameBytesAsProtobuf(bf16);

  pb::AttendResponse values;  // a caller who sent `values` gets `values`
  *values.mutable_output() = MakeTensor({1, 1, 2, 3}, pb::DATA_TYPE_FLOAT32, 0, 6);
  *values.mutable_attention() = MakeTensor({1, 1, 2, 2}, pb::DATA_TYPE_FLOAT32, 0, 4);
  values.mutable_timing()->set_queue_us(1);
  ExpectSameBytesAsProtobuf(values);

  pb::AttendResponse both;  // not produced by the service, but still encoded as protobuf does
  *both.mutable_output() = MakeTensor({1, 1, 1, 2}, pb::DATA_TYPE_FLOAT32, 8, 2);
  ExpectSameBytesAsProtobuf(both);

  pb::AttendResponse shape_only;
  *shape_only.mutable_scores() = MakeTensor({1, 1, 1, 1}, pb::DATA_TYPE_FLOAT32, 0);
  ExpectSameBytesAsProtobuf(shape_only);

  ExpectSameBytesAsProtobuf(pb::AttendResponse());
}

TEST(AttendWireTest, RequestBytesParseOrAreRefusedWithTheirLength) {
  pb::AttendRequest request;
  *request.mutable_query() = MakeTensor({1, 1, 2, 2}, pb::DATA_TYPE_FLOAT32, 16);
  request.set_scale(0.25f);
  const std::string bytes = request.SerializeAsString();
  grpc::Slice slice(bytes);
  const grpc::ByteBuffer buffer(&slice, 1);
  pb::AttendRequest parsed;
  ASSERT_TRUE(ParseRequest(buffer, &parsed).ok());
  EXPECT_EQ(parsed.SerializeAsString(), bytes);
  EXPECT_EQ(Bytes(buffer), bytes) << "the caller's buffer is left whole";

  const std::string truncated = bytes.substr(0, bytes.size() / 2);
  grpc::Slice cut(truncated);
  const absl::Status status = ParseRequest(grpc::ByteBuffer(&cut, 1), &parsed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "the request (" + std::to_string(truncated.size()) +
                                  " bytes) is not an attention.v1.AttendRequest");
  pb::MultiHeadAttendRequest multi_head;
  EXPECT_EQ(ParseRequest(grpc::ByteBuffer(&cut, 1), &multi_head).message(),
            "the request (" + std::to_string(truncated.size()) +
                " bytes) is not an attention.v1.MultiHeadAttendRequest");
}

}  // namespace
}  // namespace attn
