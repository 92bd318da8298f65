// In-process service tests: a real AttentionServer on a loopback port, called through a real
// gRPC channel. Good paths against the double reference; every bad input gets its code and a
// message naming the field and the numbers, and the server still serves a good request after.
#include <grpcpp/grpcpp.h>

#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "attention/v1/attention.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc_health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "proto/tensor_codec.h"
#include "server/server_runner.h"
#include "src/engine/attention_shapes.h"
#include "src/reference/reference_attention.h"
#include "src/engine/bf16_matmuls.h"
#include "src/runtime/cpu_tier.h"
#include "tests/service_test_util.h"

namespace attn {
namespace {

namespace pb = attention::v1;
using ::testing::HasSubstr;

// A valid request of the given dims with N(0,1) inputs.
pb::AttendRequest MakeRequest(int64_t b, int64_t h, int64_t hkv, int64_t sq, int64_t sk,
                              int64_t d, int64_t dv, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  pb::AttendRequest request;
  *request.mutable_query() = FloatTensorOf({b, h, sq, d}, RandomValues(b * h * sq * d, rng));
  *request.mutable_key() = FloatTensorOf({b, hkv, sk, d}, RandomValues(b * hkv * sk * d, rng));
  *request.mutable_value() = FloatTensorOf({b, hkv, sk, dv}, RandomValues(b * hkv * sk * dv, rng));
  return request;
}

// The double reference for a request built from f32 `data` tensors, mask = causal only.
ReferenceResult ReferenceFor(const pb::AttendRequest& request, CausalKind causal) {
  const std::vector<float> q = Floats(request.query());
  const std::vector<float> k = Floats(request.key());
  const std::vector<float> v = Floats(request.value());
  auto shape = [](const pb::Tensor& t) {
    return std::vector<int64_t>(t.shape().begin(), t.shape().end());
  };
  AttentionInputs inputs;
  inputs.dims = *InferAttentionDims(shape(request.query()), shape(request.key()),
                                    shape(request.value()));
  inputs.query = q.data();
  inputs.key = k.data();
  inputs.value = v.data();
  inputs.scale = request.has_scale() ? request.scale()
                                     : static_cast<float>(1.0 / std::sqrt(inputs.dims.head_dim));
  inputs.mask.causal = causal;
  return ReferenceAttention(inputs);
}

class AttentionServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TestServer test = StartTestServer(LoopbackTestOptions());
    server_ = test.server.release();
    channel_ = test.channel;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  grpc::Status Attend(const pb::AttendRequest& request, pb::AttendResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return pb::AttentionService::NewStub(channel_)->Attend(&context, request, response);
  }

  // After a bad request the server must still answer a good one correctly.
  void ExpectServesGoodRequest() {
    const pb::AttendRequest good = MakeRequest(1, 2, 2, 5, 7, 8, 8, 99);
    pb::AttendResponse response;
    ASSERT_TRUE(Attend(good, &response).ok());
    EXPECT_LE(MaxAbsError(Floats(response.output()), ReferenceFor(good, CausalKind::kNone).output),
              1e-4);
  }

  void ExpectRejected(const pb::AttendRequest& request, grpc::StatusCode code,
                      const std::string& message_part) {
    pb::AttendResponse response;
    const grpc::Status status = Attend(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(message_part));
    ExpectServesGoodRequest();
  }

  static AttentionServer* server_;
  static std::shared_ptr<grpc::Channel> channel_;
};

AttentionServer* AttentionServiceTest::server_ = nullptr;
std::shared_ptr<grpc::Channel> AttentionServiceTest::channel_;

// Tolerance: max absolute error 1e-4 on N(0,1) inputs for f32 (the bound).
TEST_F(AttentionServiceTest, AttendMatchesReferenceWithBothMaps) {
  pb::AttendRequest request = MakeRequest(2, 4, 2, 9, 13, 16, 12);
  request.mutable_mask()->set_causal(pb::CAUSAL_LOWER_RIGHT);
  request.set_attention_maps(pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES);
  pb::AttendResponse response;
  ASSERT_TRUE(Attend(request, &response).ok());
  const ReferenceResult want = ReferenceFor(request, CausalKind::kLowerRight);
  EXPECT_THAT(response.output().shape(), ::testing::ElementsAre(2, 4, 9, 12));
  EXPECT_EQ(response.output().dtype(), pb::DATA_TYPE_FLOAT32);
  EXPECT_LE(MaxAbsError(Floats(response.output()), want.output), 1e-4);
  EXPECT_LE(MaxAbsError(Floats(response.attention()), want.probabilities), 1e-4);
  const std::vector<float> scores = Floats(response.scores());
  ASSERT_EQ(scores.size(), want.scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isinf(want.scores[i])) {
      EXPECT_EQ(scores[i], -INFINITY) << i;
    } else {
      EXPECT_NEAR(scores[i], want.scores[i], 1e-4) << i;
    }
  }
  EXPECT_GE(response.timing().compute_us(), 0);
  EXPECT_GE(response.timing().queue_us(), 0);
}

TEST_F(AttentionServiceTest, MapsNoneReturnsOnlyOutput) {
  pb::AttendRequest request = MakeRequest(1, 2, 1, 4, 4, 8, 8);
  request.set_attention_maps(pb::ATTENTION_MAPS_NONE);
  pb::AttendResponse response;
  ASSERT_TRUE(Attend(request, &response).ok());
  EXPECT_TRUE(response.has_output());
  EXPECT_FALSE(response.has_attention());
  EXPECT_FALSE(response.has_scores());
}

TEST_F(AttentionServiceTest, DefaultMapsAreProbabilities) {
  pb::AttendResponse response;
  ASSERT_TRUE(Attend(MakeRequest(1, 1, 1, 3, 3, 4, 4), &response).ok());
  EXPECT_THAT(response.attention().shape(), ::testing::ElementsAre(1, 1, 3, 3));
  EXPECT_FALSE(response.has_scores());
}

// bf16 inputs are exact in f32; f16 output is the f32 answer rounded (relative 1e-2 bound).
TEST_F(AttentionServiceTest, Bf16InputsAndF16Output) {
  std::mt19937 rng(5);
  pb::AttendRequest request;
  std::vector<float> q = RandomValues(1 * 2 * 6 * 8, rng), k = RandomValues(1 * 2 * 6 * 8, rng),
                     v = RandomValues(1 * 2 * 6 * 8, rng);
  for (auto* values : {&q, &k, &v}) {
    for (float& x : *values) x = BFloat16ToFloat(FloatToBFloat16(x));
  }
  *request.mutable_query() = FloatTensorOf({1, 2, 6, 8}, q, DType::kBFloat16);
  *request.mutable_key() = FloatTensorOf({1, 2, 6, 8}, k, DType::kBFloat16);
  *request.mutable_value() = FloatTensorOf({1, 2, 6, 8}, v, DType::kBFloat16);
  request.set_output_dtype(pb::DATA_TYPE_FLOAT16);
  pb::AttendResponse response;
  ASSERT_TRUE(Attend(request, &response).ok());
  EXPECT_EQ(response.output().dtype(), pb::DATA_TYPE_FLOAT16);
  EXPECT_EQ(response.output().data().size(), 1u * 2 * 6 * 8 * 2);
  const std::vector<float> got = Floats(response.output());
  pb::AttendRequest f32_request = request;
  *f32_request.mutable_query() = FloatTensorOf({1, 2, 6, 8}, q);
  *f32_request.mutable_key() = FloatTensorOf({1, 2, 6, 8}, k);
  *f32_request.mutable_value() = FloatTensorOf({1, 2, 6, 8}, v);
  const ReferenceResult want = ReferenceFor(f32_request, CausalKind::kNone);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want.output[i], 1e-2 * std::max(1.0, std::abs(want.output[i]))) << i;
  }
}

TEST_F(AttentionServiceTest, ValuesInValuesOut) {
  pb::AttendRequest request;
  for (pb::Tensor* t : {request.mutable_query(), request.mutable_key(), request.mutable_value()}) {
    for (int64_t dim : {1, 1, 2, 2}) t->add_shape(dim);
  }
  for (float x : {1.0f, 0.0f, 0.0f, 1.0f}) request.mutable_query()->add_values(x);
  for (float x : {1.0f, 0.0f, 0.0f, 1.0f}) request.mutable_key()->add_values(x);
  for (float x : {10.0f, 20.0f, 30.0f, 40.0f}) request.mutable_value()->add_values(x);
  request.set_scale(1.0f);
  pb::AttendResponse response;
  ASSERT_TRUE(Attend(request, &response).ok());
  EXPECT_TRUE(response.output().data().empty());
  ASSERT_EQ(response.output().values_size(), 4);
  ASSERT_EQ(response.attention().values_size(), 4);
  // Row 0 scores (1, 0): P = (e/(e+1), 1/(e+1)).
  const double p0 = std::exp(1.0) / (std::exp(1.0) + 1.0);
  EXPECT_NEAR(response.attention().values(0), p0, 1e-6);
  EXPECT_NEAR(response.output().values(0), p0 * 10 + (1 - p0) * 30, 1e-4);
}

TEST_F(AttentionServiceTest, ConcurrentCallsAllSucceed) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        const pb::AttendRequest request = MakeRequest(1, 4, 4, 16 + t, 16, 8, 8, t * 10 + i);
        pb::AttendResponse response;
        grpc::ClientContext context;
        if (!pb::AttentionService::NewStub(channel_)->Attend(&context, request, &response).ok() ||
            MaxAbsError(Floats(response.output()), ReferenceFor(request, CausalKind::kNone).output) >
                1e-4) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
}

TEST_F(AttentionServiceTest, GetServerInfoDescribesTheServer) {
  grpc::ClientContext context;
  pb::ServerInfo info;
  ASSERT_TRUE(pb::AttentionService::NewStub(channel_)
                  ->GetServerInfo(&context, pb::GetServerInfoRequest(), &info)
                  .ok());
  EXPECT_EQ(info.version(), ATTNSERVE_VERSION);
  EXPECT_THAT(info.onednn_version(), ::testing::StartsWith("2."));
  EXPECT_FALSE(info.onednn_isa().empty());
  EXPECT_EQ(info.workers(), 2);
  EXPECT_EQ(info.intra_op_threads(), 1);
  EXPECT_EQ(info.max_elements(), 1 << 20);
  EXPECT_EQ(info.max_message_bytes(), 8 << 20);
  EXPECT_THAT(info.native_compute_dtypes(), ::testing::Contains(pb::DATA_TYPE_FLOAT32));
  EXPECT_EQ(info.cpu_tier(), CpuTierName(ActiveCpuTier()));
  // bf16 is listed as native only where it runs on bf16 matmuls.
  EXPECT_EQ(::testing::Matches(::testing::Contains(pb::DATA_TYPE_BFLOAT16))(
                info.native_compute_dtypes()),
            ActiveBf16Matmuls() == Bf16Matmuls::kNative);
}

TEST_F(AttentionServiceTest, HealthServesBothNames) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const char* name : {"", "attention.v1.AttentionService"}) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(name);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << name;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << name;
  }
}

// ---- Bad input: code, message, and the server still serves. ----

TEST_F(AttentionServiceTest, RejectsWrongRank) {
  pb::AttendRequest request = MakeRequest(1, 2, 2, 4, 4, 8, 8);
  request.mutable_query()->mutable_shape()->RemoveLast();
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "query");
}

TEST_F(AttentionServiceTest, RejectsMismatchedHeadDim) {
  pb::AttendRequest request = MakeRequest(1, 2, 2, 4, 4, 64, 8);
  *request.mutable_key() = MakeRequest(1, 2, 2, 4, 4, 32, 8).key();
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "key.shape[3] = 32 but query.shape[3] = 64");
}

TEST_F(AttentionServiceTest, RejectsHeadsNotMultipleOfKvHeads) {
  const pb::AttendRequest request = MakeRequest(1, 6, 4, 4, 4, 8, 8);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "query.shape[1] = 6");
}

TEST_F(AttentionServiceTest, RejectsDataLengthThatDoesNotMatchShape) {
  pb::AttendRequest request = MakeRequest(1, 2, 2, 4, 4, 8, 8);
  request.mutable_value()->mutable_data()->resize(10);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "value.data has 10 bytes but shape [1,2,4,8] of FLOAT32 needs 256");
}

TEST_F(AttentionServiceTest, RejectsBothDataAndValues) {
  pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  request.mutable_key()->add_values(1.0f);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "key sets both data and values");
}

TEST_F(AttentionServiceTest, RejectsNeitherDataNorValues) {
  pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  request.mutable_query()->clear_data();
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "query has shape [1,1,2,2] but neither");
}

TEST_F(AttentionServiceTest, RejectsShapeProductOverflow) {
  pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  for (pb::Tensor* t : {request.mutable_query(), request.mutable_key(), request.mutable_value()}) {
    t->set_shape(0, int64_t{1} << 40);
  }
  request.mutable_query()->set_shape(2, int64_t{1} << 40);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "overflows int64");
}

TEST_F(AttentionServiceTest, RejectsZeroDim) {
  pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  request.mutable_value()->set_shape(3, 0);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "value.shape[3] = 0");
}

TEST_F(AttentionServiceTest, RejectsMismatchedDtypes) {
  pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  request.mutable_key()->set_dtype(pb::DATA_TYPE_BFLOAT16);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "key.dtype = DATA_TYPE_BFLOAT16");
}

TEST_F(AttentionServiceTest, RejectsUnknownEnums) {
  pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  request.set_attention_maps(static_cast<pb::AttentionMaps>(99));
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "attention_maps = 99");
  request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  request.mutable_mask()->set_causal(static_cast<pb::Causal>(7));
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "mask.causal = 7");
  request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  request.set_output_dtype(static_cast<pb::DataType>(42));
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "output_dtype = 42");
  request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  for (pb::Tensor* t : {request.mutable_query(), request.mutable_key(), request.mutable_value()}) {
    t->set_dtype(static_cast<pb::DataType>(9));
  }
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "query.dtype = 9");
}

TEST_F(AttentionServiceTest, RejectsBadScale) {
  for (float scale : {0.0f, -1.0f, NAN, INFINITY}) {
    pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
    request.set_scale(scale);
    ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "scale = ");
  }
}

TEST_F(AttentionServiceTest, RejectsBadKeyLengths) {
  pb::AttendRequest request = MakeRequest(2, 1, 1, 3, 8, 2, 2);
  request.mutable_mask()->add_key_lengths(3);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "mask.key_lengths has 1 entries but batch is 2");
  request.mutable_mask()->add_key_lengths(9);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "mask.key_lengths[1] = 9 is outside [0, 8]");
}

TEST_F(AttentionServiceTest, RejectsMasksThatDoNotBroadcast) {
  pb::AttendRequest request = MakeRequest(2, 4, 4, 8, 8, 2, 2);
  pb::Tensor* allowed = request.mutable_mask()->mutable_allowed();
  allowed->set_dtype(pb::DATA_TYPE_BOOL);
  for (int64_t dim : {3, 1, 8, 8}) allowed->add_shape(dim);
  allowed->set_data(std::string(3 * 8 * 8, '\1'));
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "mask.allowed.shape[0] = 3");
  request = MakeRequest(2, 4, 4, 8, 8, 2, 2);
  *request.mutable_mask()->mutable_bias() = FloatTensorOf({8, 5}, std::vector<float>(40, 0.0f));
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "mask.bias");
}

TEST_F(AttentionServiceTest, RejectsAllowedThatIsNotBool) {
  pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  *request.mutable_mask()->mutable_allowed() = FloatTensorOf({2, 2}, {1, 1, 1, 1});
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "mask.allowed.dtype = FLOAT32 but a BOOL tensor is needed");
}

TEST_F(AttentionServiceTest, RejectsNanOrPositiveInfinityInBias) {
  pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  *request.mutable_mask()->mutable_bias() = FloatTensorOf({2, 2}, {0, -INFINITY, NAN, 0});
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "mask.bias[2] = nan");
  *request.mutable_mask()->mutable_bias() = FloatTensorOf({2, 2}, {0, INFINITY, 0, 0});
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "mask.bias[1] = inf");
}

TEST_F(AttentionServiceTest, RejectsValuesWithReducedPrecisionDtype) {
  pb::AttendRequest request;
  for (pb::Tensor* t : {request.mutable_query(), request.mutable_key(), request.mutable_value()}) {
    for (int64_t dim : {1, 1, 1, 1}) t->add_shape(dim);
    t->set_dtype(pb::DATA_TYPE_BFLOAT16);
    t->add_values(1.0f);
  }
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "query.values holds float32 numbers but query.dtype = BFLOAT16");
}

TEST_F(AttentionServiceTest, RejectsMapsOverElementLimit) {
  // 1 x 16 x 512 x 512 = 4 Mi map elements > --max_elements = 1 Mi; inputs are small.
  pb::AttendRequest request = MakeRequest(1, 16, 1, 512, 512, 1, 1);
  ExpectRejected(request, grpc::StatusCode::RESOURCE_EXHAUSTED,
                 "attention maps [1,16,512,512] would have 4194304 elements, over the limit of "
                 "1048576");
}

TEST_F(AttentionServiceTest, RejectsResponseOverMessageLimit) {
  // Two maps of 1 Mi f32 each = 8 MiB + output > --max_message_bytes = 8 MiB.
  pb::AttendRequest request = MakeRequest(1, 4, 1, 512, 512, 1, 1);
  request.set_attention_maps(pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES);
  ExpectRejected(request, grpc::StatusCode::RESOURCE_EXHAUSTED, "(--max_message_bytes)");
}

TEST_F(AttentionServiceTest, RejectsInputOverElementLimit) {
  // key has 2 Mi elements > --max_elements = 1 Mi; the outputs would be small. The data is not
  // even sent: the cap is checked before the byte length.
  pb::AttendRequest request = MakeRequest(1, 1, 1, 1, 1, 1024, 1);
  request.mutable_key()->set_shape(2, 2048);
  request.mutable_value()->set_shape(2, 2048);
  ExpectRejected(request, grpc::StatusCode::RESOURCE_EXHAUSTED,
                 "key has 2097152 elements (shape [1,1,2048,1024]), over the limit of 1048576");
}

TEST_F(AttentionServiceTest, Bf16ComputeIsWithinOnePercent) {
  const pb::AttendRequest f32 = MakeRequest(2, 4, 2, 33, 70, 64, 64, 8);
  pb::AttendRequest request = f32;
  request.set_compute_dtype(pb::DATA_TYPE_BFLOAT16);
  pb::AttendResponse response;
  ASSERT_TRUE(Attend(request, &response).ok());
  const ReferenceResult want = ReferenceFor(f32, CausalKind::kNone);
  const double output_error = NormwiseError(Floats(response.output()), want.output);
  EXPECT_LE(output_error, 1e-2);
  EXPECT_GT(output_error, 1e-4) << "computed in f32";  // 66 rows per KV head: the bf16 path
}

// BFLOAT16 inputs computed in bf16 (read by the engine as they are) answer exactly what the same
// values sent as FLOAT32 answer, maps included, for a block-sized call; a decode-sized one
// computes bf16 inputs in bf16 (read in place) but f32 ones in f32: within 1e-2 of the largest
// value there.
TEST_F(AttentionServiceTest, Bf16InputsComputedInBf16MatchTheirF32Values) {
  for (const pb::AttendRequest& shaped :
       {MakeRequest(2, 4, 2, 33, 70, 64, 64, 8), MakeRequest(1, 8, 2, 1, 40, 32, 16, 9)}) {
    const bool decode_sized = shaped.query().shape(2) == 1;
    pb::AttendRequest f32 = shaped, bf16 = shaped;
    for (auto [f32_tensor, bf16_tensor] :
         {std::pair{f32.mutable_query(), bf16.mutable_query()},
          std::pair{f32.mutable_key(), bf16.mutable_key()},
          std::pair{f32.mutable_value(), bf16.mutable_value()}}) {
      const std::vector<int64_t> shape(f32_tensor->shape().begin(), f32_tensor->shape().end());
      std::vector<float> values = Floats(*f32_tensor);
      for (float& x : values) x = BFloat16ToFloat(FloatToBFloat16(x));
      *f32_tensor = FloatTensorOf(shape, values);
      *bf16_tensor = FloatTensorOf(shape, values, DType::kBFloat16);
    }
    for (pb::AttendRequest* request : {&f32, &bf16}) {
      request->set_compute_dtype(pb::DATA_TYPE_BFLOAT16);
      request->set_attention_maps(pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES);
    }
    pb::AttendResponse want, got;
    ASSERT_TRUE(Attend(f32, &want).ok());
    ASSERT_TRUE(Attend(bf16, &got).ok());
    EXPECT_FALSE(got.output().data().empty());
    if (decode_sized) {
      EXPECT_LE(NormwiseError(Floats(got.output()), Floats(want.output())), 1e-2);
      EXPECT_LE(NormwiseError(Floats(got.attention()), Floats(want.attention())), 1e-2);
      continue;
    }
    EXPECT_EQ(got.output().data(), want.output().data());
    EXPECT_EQ(got.attention().data(), want.attention().data());
    EXPECT_EQ(got.scores().data(), want.scores().data());
  }
}

TEST_F(AttentionServiceTest, Float16ComputeIsNotSupported) {
  pb::AttendRequest request = MakeRequest(1, 1, 1, 2, 2, 2, 2);
  request.set_compute_dtype(pb::DATA_TYPE_FLOAT16);
  ExpectRejected(request, grpc::StatusCode::UNIMPLEMENTED,
                 "compute_dtype = FLOAT16 is not supported; use FLOAT32 or BFLOAT16");
}

TEST_F(AttentionServiceTest, RejectsEmptyRequest) {
  ExpectRejected(pb::AttendRequest(), grpc::StatusCode::INVALID_ARGUMENT, "query");
}

// Shutdown lets the calls already in flight finish.
TEST(AttentionServerShutdownTest, InFlightCallsFinishDuringGracefulShutdown) {
  ServerOptions options;
  options.address = "127.0.0.1:0";
  options.executor = {.workers = 1, .intra_op_threads = 1};
  auto server = AttentionServer::Start(options).value();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = pb::AttentionService::NewStub(channel);
  pb::AttendRequest request = MakeRequest(2, 8, 8, 256, 256, 64, 64);
  request.set_attention_maps(pb::ATTENTION_MAPS_NONE);
  constexpr int kCalls = 6;
  std::vector<grpc::ClientContext> contexts(kCalls);
  std::vector<pb::AttendResponse> responses(kCalls);
  std::vector<grpc::Status> statuses(kCalls);
  std::atomic<int> done{0};
  for (int i = 0; i < kCalls; ++i) {
    stub->async()->Attend(&contexts[i], &request, &responses[i], [&, i](grpc::Status s) {
      statuses[i] = s;
      ++done;
    });
  }
  // Wait until the server has the calls (bounded), then drain.
  for (int i = 0; i < 200 && server->port() != 0 && done == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  server->Shutdown(absl::Seconds(30));
  for (int i = 0; i < 2000 && done < kCalls; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(done, kCalls);
  int completed = 0;
  for (int i = 0; i < kCalls; ++i) {
    completed += statuses[i].ok() ? 1 : 0;
    // Each call either completed, or was refused before it started; none was cut off.
    EXPECT_TRUE(statuses[i].ok() || statuses[i].error_code() == grpc::StatusCode::UNAVAILABLE)
        << i << ": " << statuses[i].error_message();
    if (statuses[i].ok()) {
      EXPECT_EQ(responses[i].output().data().size(), 2u * 8 * 256 * 64 * 4);
    }
  }
  EXPECT_GE(completed, 1);  // the drain began only after one call had finished
}

}  // namespace
}  // namespace attn
