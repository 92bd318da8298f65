// In-process tests of AttendStream through a real gRPC channel: answers come back in request
// order and match the double reference (max abs error 1e-4); a bad message mid-stream ends the
// stream with its error after the earlier answers; a client that cancels leaves the server
// serving; a drain ends an idle open stream with UNAVAILABLE instead of holding shutdown.
#include <grpcpp/grpcpp.h>

#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "attention/v1/attention.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server_runner.h"
#include "src/reference/reference_attention.h"
#include "tests/service_test_util.h"

namespace attn {
namespace {

namespace pb = attention::v1;
using ::testing::HasSubstr;

// A request [1, 2, q_len, 8] x [1, 2, 6, 8]; q_len tells the answers apart.
pb::AttendRequest Request(int64_t q_len, uint32_t seed) {
  std::mt19937 rng(seed);
  pb::AttendRequest request;
  *request.mutable_query() = FloatTensorOf({1, 2, q_len, 8}, RandomValues(2 * q_len * 8, rng));
  *request.mutable_key() = FloatTensorOf({1, 2, 6, 8}, RandomValues(2 * 6 * 8, rng));
  *request.mutable_value() = FloatTensorOf({1, 2, 6, 8}, RandomValues(2 * 6 * 8, rng));
  return request;
}

std::vector<double> ReferenceOutput(const pb::AttendRequest& request) {
  const std::vector<float> q = Floats(request.query()), k = Floats(request.key()),
                           v = Floats(request.value());
  AttentionInputs in;
  in.dims = {.batch = 1, .heads = 2, .kv_heads = 2, .q_len = request.query().shape(2),
             .kv_len = 6, .head_dim = 8, .value_dim = 8};
  in.query = q.data();
  in.key = k.data();
  in.value = v.data();
  in.scale = 1.0f / std::sqrt(8.0f);
  return ReferenceAttention(in).output;
}

class AttendStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestServer test = StartTestServer(LoopbackTestOptions());
    server_ = std::move(test.server);
    stub_ = pb::AttentionService::NewStub(test.channel);
  }

  void ExpectServesUnary() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    pb::AttendResponse response;
    ASSERT_TRUE(stub_->Attend(&context, Request(3, 1), &response).ok());
  }

  std::unique_ptr<AttentionServer> server_;
  std::unique_ptr<pb::AttentionService::Stub> stub_;
};

TEST_F(AttendStreamTest, AnswersInRequestOrder) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub_->AttendStream(&context);
  constexpr int kRequests = 30;
  std::thread writer([&] {
    for (int i = 0; i < kRequests; ++i) {
      if (!stream->Write(Request(1 + i % 7, 100 + i))) return;
    }
    stream->WritesDone();
  });
  for (int i = 0; i < kRequests; ++i) {
    pb::AttendResponse response;
    ASSERT_TRUE(stream->Read(&response)) << "answer " << i;
    const pb::AttendRequest sent = Request(1 + i % 7, 100 + i);
    EXPECT_EQ(response.output().shape(2), 1 + i % 7) << "answer " << i;
    EXPECT_LE(MaxAbsError(Floats(response.output()), ReferenceOutput(sent)), 1e-4);
  }
  writer.join();
  pb::AttendResponse extra;
  EXPECT_FALSE(stream->Read(&extra));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(AttendStreamTest, BadMessageEndsTheStreamAfterEarlierAnswers) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub_->AttendStream(&context);
  pb::AttendRequest bad = Request(2, 5);
  bad.mutable_key()->mutable_shape()->Set(3, 4);
  ASSERT_TRUE(stream->Write(Request(2, 3)));
  ASSERT_TRUE(stream->Write(Request(4, 4)));
  stream->Write(bad);
  stream->Write(Request(2, 6));
  stream->WritesDone();
  pb::AttendResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.output().shape(2), 2);
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.output().shape(2), 4);
  EXPECT_FALSE(stream->Read(&response));
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("key.shape[3] = 4 but query.shape[3] = 8"));
  ExpectServesUnary();
}

TEST_F(AttendStreamTest, ClientCancelLeavesTheServerServing) {
  for (int round = 0; round < 5; ++round) {
    grpc::ClientContext context;
    auto stream = stub_->AttendStream(&context);
    ASSERT_TRUE(stream->Write(Request(3, round)));
    pb::AttendResponse response;
    ASSERT_TRUE(stream->Read(&response));
    stream->Write(Request(3, round + 10));  // maybe in flight when the cancel lands
    context.TryCancel();
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  ExpectServesUnary();
}

TEST_F(AttendStreamTest, DrainEndsAnIdleStreamWithUnavailable) {
  grpc::ClientContext context;
  auto stream = stub_->AttendStream(&context);
  ASSERT_TRUE(stream->Write(Request(3, 1)));
  pb::AttendResponse response;
  ASSERT_TRUE(stream->Read(&response));
  // The stream now waits for a next request that never comes; a drain must end it with
  // UNAVAILABLE (not leave it to be cancelled when the 60 s grace runs out).
  std::thread shutdown([&] { server_->Shutdown(absl::Seconds(60)); });
  EXPECT_FALSE(stream->Read(&response));
  const grpc::Status status = stream->Finish();
  shutdown.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("shutting down after answering 1 requests"));
}

}  // namespace
}  // namespace attn
