// In-process admission tests through a real gRPC channel: past --max_inflight + --max_queue a
// request is refused at once with RESOURCE_EXHAUSTED; a request over the memory budget is
// refused; a request whose deadline passes while it computes is stopped between chunks (the
// server records DEADLINE_EXCEEDED, not OK); after each, a good request is served.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "attention/v1/attention.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics.h"
#include "tests/service_test_util.h"

namespace attn {
namespace {

namespace pb = attention::v1;
using ::testing::HasSubstr;

// [1,h,s,d] queries against one KV head of length s (GQA keeps the message small).
pb::AttendRequest Request(int64_t h, int64_t s, int64_t d) {
  std::mt19937 rng(5);
  pb::AttendRequest request;
  *request.mutable_query() = FloatTensorOf({1, h, s, d}, RandomValues(h * s * d, rng));
  *request.mutable_key() = FloatTensorOf({1, 1, s, d}, RandomValues(s * d, rng));
  *request.mutable_value() = FloatTensorOf({1, 1, s, d}, RandomValues(s * d, rng));
  request.set_attention_maps(pb::ATTENTION_MAPS_NONE);
  return request;
}

grpc::Status Call(pb::AttentionService::Stub& stub, const pb::AttendRequest& request,
                  absl::Duration timeout) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  pb::AttendResponse response;
  return stub.Attend(&context, request, &response);
}

void ExpectServesGoodRequest(pb::AttentionService::Stub& stub) {
  EXPECT_TRUE(Call(stub, Request(2, 8, 4), absl::Seconds(60)).ok());
}

TEST(AdmissionTest, FullServerRefusesAtOnce) {
  ServerOptions options = LoopbackTestOptions();
  options.executor.workers = 1;
  options.max_inflight = 1;
  options.max_queue = 1;
  options.max_message_bytes = 64 << 20;
  options.max_elements = 1 << 24;
  TestServer server = StartTestServer(options);
  auto stub = pb::AttentionService::NewStub(server.channel);
  const pb::AttendRequest slow = Request(4, 4096, 32);  // ~9 GFLOP each, 2 MiB messages
  std::vector<grpc::Status> statuses(6);
  std::vector<std::thread> callers;
  for (size_t i = 0; i < statuses.size(); ++i) {
    callers.emplace_back([&, i] { statuses[i] = Call(*stub, slow, absl::Seconds(120)); });
  }
  for (auto& caller : callers) caller.join();
  int ok = 0, refused = 0;
  for (const grpc::Status& status : statuses) {
    if (status.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_THAT(status.error_message(),
                  HasSubstr("the limit is 1 computing (--max_inflight) + 1 waiting (--max_queue)"));
      ++refused;
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(refused, 1);  // six at once cannot all fit in two places
  ExpectServesGoodRequest(*stub);
}

TEST(AdmissionTest, RequestOverTheMemoryBudgetIsRefused) {
  ServerOptions options = LoopbackTestOptions();
  options.memory_budget_bytes = 1 << 20;
  TestServer server = StartTestServer(options);
  auto stub = pb::AttentionService::NewStub(server.channel);
  pb::AttendRequest big = Request(4, 512, 16);
  big.set_attention_maps(pb::ATTENTION_MAPS_PROBABILITIES);  // 4 MiB of maps
  const grpc::Status status = Call(*stub, big, absl::Seconds(60));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("over the whole budget of 1048576 (--memory_budget_bytes)"));
  ExpectServesGoodRequest(*stub);
}

int64_t RecordedDeadlines() {
  const std::string text = Metrics::Global().Render({});
  const std::string key = "attnserve_requests_total{method=\"Attend\",code=\"DEADLINE_EXCEEDED\"} ";
  const size_t at = text.find(key);
  return at == std::string::npos ? 0 : std::stoll(text.substr(at + key.size()));
}

TEST(AdmissionTest, ExpiredRequestStopsBetweenChunks) {
  ServerOptions options = LoopbackTestOptions();
  options.executor = {.workers = 1, .intra_op_threads = 1};
  options.max_message_bytes = 64 << 20;
  options.max_elements = 1 << 24;
  TestServer server = StartTestServer(options);
  auto stub = pb::AttentionService::NewStub(server.channel);
  // 4 * 65536^2 * 8 = 137 GFLOP in 512 chunks: seconds on one thread, far past a 500 ms
  // deadline, from a 6 MiB request that arrives well before it.
  const pb::AttendRequest huge = Request(1, 65536, 8);
  const int64_t before = RecordedDeadlines();
  EXPECT_EQ(Call(*stub, huge, absl::Milliseconds(500)).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  // The server itself gave up (had it finished the work, it would have recorded OK), and soon:
  // the next request is served.
  for (int i = 0; i < 600 && RecordedDeadlines() == before; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(RecordedDeadlines(), before + 1);
  ExpectServesGoodRequest(*stub);
}

}  // namespace
}  // namespace attn
