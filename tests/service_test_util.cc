// Helpers shared by the in-process service tests (see service_test_util.h).
#include "tests/service_test_util.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/tensor_codec.h"

namespace attn {

ServerOptions LoopbackTestOptions() {
  ServerOptions options;
  options.address = "127.0.0.1:0";
  options.executor = {.workers = 2, .intra_op_threads = 1};
  options.max_elements = 1 << 20;
  options.max_message_bytes = 8 << 20;
  return options;
}

TestServer StartTestServer(const ServerOptions& options) {
  TestServer test;
  test.server = AttentionServer::Start(options).value();
  test.channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", test.server->port()),
                                     grpc::InsecureChannelCredentials());
  return test;
}

std::vector<float> RandomValues(int64_t count, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = normal(rng);
  return values;
}

attention::v1::Tensor FloatTensorOf(std::vector<int64_t> shape, const std::vector<float>& values,
                                    DType dtype) {
  attention::v1::Tensor tensor;
  EncodeFloatTensor(shape, values.data(), dtype, false, &tensor);
  return tensor;
}

std::vector<float> Floats(const attention::v1::Tensor& tensor) {
  absl::StatusOr<FloatTensor> decoded = DecodeFloatTensor("t", tensor, int64_t{1} << 40);
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  if (!decoded.ok()) return {};
  return std::vector<float>(decoded->data, decoded->data + decoded->count);
}

}  // namespace attn
