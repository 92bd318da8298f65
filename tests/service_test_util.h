// Helpers shared by the in-process service tests: a server on a loopback port with a channel to
// it, random f32 tensors as proto messages and decoding answers back to floats (the error
// measures are tests/numeric_error.h).
#ifndef ATTNSERVE_TESTS_SERVICE_TEST_UTIL_H_
#define ATTNSERVE_TESTS_SERVICE_TEST_UTIL_H_

#include <cstdint>
#include <random>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "attention/v1/attention.pb.h"
#include "server/server_runner.h"
#include "src/runtime/dtype.h"
#include "tests/numeric_error.h"

namespace attn {

// Options for a test server: a free loopback port, 2 workers x 1 thread, 2^20 elements, 8 MiB.
ServerOptions LoopbackTestOptions();

// A started server and an insecure channel to it.
struct TestServer {
  std::unique_ptr<AttentionServer> server;
  std::shared_ptr<grpc::Channel> channel;
};
TestServer StartTestServer(const ServerOptions& options);

// `count` N(0, 1) numbers.
std::vector<float> RandomValues(int64_t count, std::mt19937& rng);

// A tensor of `shape` holding `values` as `dtype` in `data`.
attention::v1::Tensor FloatTensorOf(std::vector<int64_t> shape, const std::vector<float>& values,
                                    DType dtype = DType::kFloat32);

// The elements of a float tensor (any encoding) as f32.
std::vector<float> Floats(const attention::v1::Tensor& tensor);

}  // namespace attn

#endif  // ATTNSERVE_TESTS_SERVICE_TEST_UTIL_H_
