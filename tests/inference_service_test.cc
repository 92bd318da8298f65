// In-process tests of inference.GRPCInferenceService (the Open Inference Protocol) through a real
// gRPC channel: ModelInfer of "attention" with raw and typed contents equals Attend through the
// same server (bit for bit: the same code computes both) and mirrors the request's choice; the
// translation errors name the input, parameter or output; the metadata and readiness RPCs; and
// concurrent ModelInfer and Attend calls (for TSan) all answered right.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "attention/v1/attention.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/server_runner.h"
#include "tests/service_test_util.h"

namespace attn {
namespace {

namespace pb = attention::v1;
namespace v2 = inference;
using ::testing::HasSubstr;

class InferenceServiceTest : public ::testing::Test {
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

  static std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return context;
  }

  // QUERY [1,2,3,4], KEY and VALUE [1,2,5,4] of `seed`, raw or typed, causal lower-right.
  static v2::ModelInferRequest Request(uint32_t seed, bool raw) {
    std::mt19937 rng(seed);
    v2::ModelInferRequest request;
    request.set_model_name("attention");
    for (const auto& [name, rows] : {std::pair{"QUERY", 3}, {"KEY", 5}, {"VALUE", 5}}) {
      const std::vector<float> values = RandomValues(2 * rows * 4, rng);
      auto* input = request.add_inputs();
      input->set_name(name);
      input->set_datatype("FP32");
      for (int64_t dim : {1, 2, rows, 4}) input->add_shape(dim);
      if (raw) {
        request.add_raw_input_contents(reinterpret_cast<const char*>(values.data()),
                                       values.size() * sizeof(float));
      } else {
        input->mutable_contents()->mutable_fp32_contents()->Add(values.begin(), values.end());
      }
    }
    (*request.mutable_parameters())["causal"].set_string_param("lower_right");
    request.add_outputs()->set_name("OUTPUT");
    return request;
  }

  // The same call as an AttendRequest.
  static pb::AttendRequest AsAttend(const v2::ModelInferRequest& request) {
    pb::AttendRequest attend;
    pb::Tensor* tensors[] = {attend.mutable_query(), attend.mutable_key(), attend.mutable_value()};
    for (int i = 0; i < 3; ++i) {
      const auto& input = request.inputs(i);
      std::vector<float> values(input.contents().fp32_contents().begin(),
                                input.contents().fp32_contents().end());
      if (request.raw_input_contents_size() > 0) {
        const std::string& raw = request.raw_input_contents(i);
        values.resize(raw.size() / sizeof(float));
        std::memcpy(values.data(), raw.data(), raw.size());
      }
      *tensors[i] = FloatTensorOf({input.shape().begin(), input.shape().end()}, values);
    }
    attend.mutable_mask()->set_causal(pb::CAUSAL_LOWER_RIGHT);
    attend.set_attention_maps(pb::ATTENTION_MAPS_NONE);
    return attend;
  }

  // The OUTPUT of a ModelInfer answer (raw or typed).
  static std::vector<float> Output(const v2::ModelInferResponse& response) {
    if (response.raw_output_contents_size() > 0) {
      const std::string& raw = response.raw_output_contents(0);
      std::vector<float> values(raw.size() / sizeof(float));
      std::memcpy(values.data(), raw.data(), raw.size());
      return values;
    }
    const auto& typed = response.outputs(0).contents().fp32_contents();
    return {typed.begin(), typed.end()};
  }

  static AttentionServer* server_;
  static std::shared_ptr<grpc::Channel> channel_;
};

AttentionServer* InferenceServiceTest::server_ = nullptr;
std::shared_ptr<grpc::Channel> InferenceServiceTest::channel_;

TEST_F(InferenceServiceTest, RawAndTypedModelInferEqualAttend) {
  auto infer = v2::GRPCInferenceService::NewStub(channel_);
  auto attention = pb::AttentionService::NewStub(channel_);
  for (const bool raw : {true, false}) {
    const v2::ModelInferRequest request = Request(raw ? 1 : 2, raw);
    v2::ModelInferResponse response;
    ASSERT_TRUE(infer->ModelInfer(Context().get(), request, &response).ok());
    EXPECT_EQ(response.raw_output_contents_size(), raw ? 1 : 0);
    ASSERT_EQ(response.outputs_size(), 1);
    EXPECT_EQ(response.outputs(0).name(), "OUTPUT");
    EXPECT_EQ(response.outputs(0).datatype(), "FP32");
    EXPECT_THAT(response.outputs(0).shape(), ::testing::ElementsAre(1, 2, 3, 4));
    pb::AttendResponse want;
    ASSERT_TRUE(attention->Attend(Context().get(), AsAttend(request), &want).ok());
    EXPECT_EQ(Output(response), Floats(want.output())) << (raw ? "raw" : "typed");
  }
}

TEST_F(InferenceServiceTest, ErrorsNameTheInputParameterOrOutput) {
  auto infer = v2::GRPCInferenceService::NewStub(channel_);
  struct Case {
    std::function<void(v2::ModelInferRequest&)> change;
    grpc::StatusCode code;
    std::string part;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.mutable_inputs(0)->set_name("Q"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "inputs[Q] is not an input of model attention"},
      {[](auto& r) { r.mutable_inputs(1)->set_datatype("INT8"); },
       grpc::StatusCode::INVALID_ARGUMENT, "inputs[KEY].datatype must be FP32, BF16 or FP16"},
      {[](auto& r) { (*r.mutable_parameters())["causal"].set_int64_param(1); },
       grpc::StatusCode::INVALID_ARGUMENT, "parameters[causal] must be the string"},
      {[](auto& r) { r.add_outputs()->set_name("OUTPUT"); }, grpc::StatusCode::INVALID_ARGUMENT,
       "outputs[OUTPUT] is asked for twice"},
      {[](auto& r) { r.mutable_raw_input_contents()->RemoveLast(); },
       grpc::StatusCode::INVALID_ARGUMENT, "raw_input_contents has 2 entries but inputs has 3"},
      {[](auto& r) { r.set_model_name("mha.absent"); }, grpc::StatusCode::NOT_FOUND,
       "model \"mha.absent\" does not exist"},
  };
  for (const Case& c : cases) {
    v2::ModelInferRequest request = Request(3, true);
    c.change(request);
    v2::ModelInferResponse response;
    const grpc::Status status = infer->ModelInfer(Context().get(), request, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.part << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.part));
  }
  v2::ModelInferResponse response;  // and the server still answers
  EXPECT_TRUE(infer->ModelInfer(Context().get(), Request(4, true), &response).ok());
}

TEST_F(InferenceServiceTest, MetadataAndReadiness) {
  auto infer = v2::GRPCInferenceService::NewStub(channel_);
  v2::ServerReadyResponse ready;
  ASSERT_TRUE(infer->ServerReady(Context().get(), {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
  v2::ModelReadyRequest model;
  model.set_name("attention");
  v2::ModelReadyResponse model_ready;
  ASSERT_TRUE(infer->ModelReady(Context().get(), model, &model_ready).ok());
  EXPECT_TRUE(model_ready.ready());
  model.set_name("mha.nothing");
  EXPECT_EQ(infer->ModelReady(Context().get(), model, &model_ready).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v2::ModelMetadataRequest metadata_request;
  metadata_request.set_name("attention");
  v2::ModelMetadataResponse metadata;
  ASSERT_TRUE(infer->ModelMetadata(Context().get(), metadata_request, &metadata).ok());
  EXPECT_EQ(metadata.inputs_size(), 6);
  EXPECT_THAT(metadata.inputs(0).shape(), ::testing::ElementsAre(-1, -1, -1, -1));
}

// Four threads of ModelInfer and Attend at once, each answer checked (TSan runs this).
TEST_F(InferenceServiceTest, ConcurrentCallsAreAnsweredRight) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong = 0;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &wrong] {
      auto infer = v2::GRPCInferenceService::NewStub(channel_);
      auto attention = pb::AttentionService::NewStub(channel_);
      for (int i = 0; i < 10; ++i) {
        const v2::ModelInferRequest request = Request(100 * t + i, (i + t) % 2 == 0);
        v2::ModelInferResponse response;
        pb::AttendResponse want;
        if (!infer->ModelInfer(Context().get(), request, &response).ok() ||
            !attention->Attend(Context().get(), AsAttend(request), &want).ok() ||
            Output(response) != Floats(want.output())) {
          ++wrong;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong, 0);
}

}  // namespace
}  // namespace attn
