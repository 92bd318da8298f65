// In-process tests of MultiHeadAttend and the weight registry RPCs through a real gRPC channel:
// inline and named weights against the double reference layer (max abs error 1e-4), averaged
// maps, cross-attention, Put/List/Delete, the byte cap, every weight and shape error with its
// message (each followed by a good request), concurrent Put/Delete under load, and
// MultiHeadAttend on a KV-cache session against MultiHeadAttend over the whole prefix.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "attention/v1/attention.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server_runner.h"
#include "src/reference/reference_multi_head_attention.h"
#include "tests/service_test_util.h"

namespace attn {
namespace {

namespace pb = attention::v1;
using ::testing::HasSubstr;

constexpr double kTolerance = 1e-4;

// Random weights for d_model 16, H 4, Hkv 2, D 4, Dv 4, d_ctx, W_o to 16, all biases, Add & Norm.
struct RandomLayer {
  int64_t d_model = 16, d_ctx = 16, heads = 4, kv_heads = 2, head_dim = 4, value_dim = 4;
  std::vector<float> w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, gamma, beta;

  explicit RandomLayer(uint32_t seed, int64_t context_width = 16) : d_ctx(context_width) {
    std::mt19937 rng(seed);
    auto scaled = [&](int64_t n) {
      std::vector<float> v = RandomValues(n, rng);
      for (float& x : v) x *= 0.3f;
      return v;
    };
    w_q = scaled(d_model * heads * head_dim);
    w_k = scaled(d_ctx * kv_heads * head_dim);
    w_v = scaled(d_ctx * kv_heads * value_dim);
    w_o = scaled(heads * value_dim * d_model);
    b_q = scaled(heads * head_dim);
    b_k = scaled(kv_heads * head_dim);
    b_v = scaled(kv_heads * value_dim);
    b_o = scaled(d_model);
    gamma = scaled(d_model);
    beta = scaled(d_model);
  }

  pb::Weights Proto() const {
    pb::Weights w;
    w.set_num_heads(heads);
    w.set_num_kv_heads(kv_heads);
    *w.mutable_w_q() = FloatTensorOf({d_model, heads * head_dim}, w_q);
    *w.mutable_w_k() = FloatTensorOf({d_ctx, kv_heads * head_dim}, w_k);
    *w.mutable_w_v() = FloatTensorOf({d_ctx, kv_heads * value_dim}, w_v);
    *w.mutable_w_o() = FloatTensorOf({heads * value_dim, d_model}, w_o);
    *w.mutable_b_q() = FloatTensorOf({heads * head_dim}, b_q);
    *w.mutable_b_k() = FloatTensorOf({kv_heads * head_dim}, b_k);
    *w.mutable_b_v() = FloatTensorOf({kv_heads * value_dim}, b_v);
    *w.mutable_b_o() = FloatTensorOf({d_model}, b_o);
    *w.mutable_add_norm()->mutable_gamma() = FloatTensorOf({d_model}, gamma);
    *w.mutable_add_norm()->mutable_beta() = FloatTensorOf({d_model}, beta);
    w.mutable_add_norm()->set_epsilon(1e-5f);
    return w;
  }

  MultiHeadDims Dims() const {
    return {.num_heads = heads, .num_kv_heads = kv_heads, .d_model = d_model, .d_ctx = d_ctx,
            .head_dim = head_dim, .value_dim = value_dim, .d_out = d_model,
            .has_output_projection = true, .has_add_norm = true, .epsilon = 1e-5f};
  }
  WeightValues Values() const {
    return {.w_q = w_q, .w_k = w_k, .w_v = w_v, .w_o = w_o, .b_q = b_q, .b_k = b_k,
            .b_v = b_v, .b_o = b_o, .gamma = gamma, .beta = beta};
  }
};

class MultiHeadServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerOptions options = LoopbackTestOptions();
    options.max_weights_bytes = 64 << 10;
    TestServer test = StartTestServer(options);
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
  grpc::Status Call(const pb::MultiHeadAttendRequest& request, pb::AttendResponse* response) {
    return pb::AttentionService::NewStub(channel_)->MultiHeadAttend(Context().get(), request,
                                                                    response);
  }
  grpc::Status Put(const std::string& name, const pb::Weights& weights, pb::WeightsInfo* info) {
    pb::PutWeightsRequest request;
    request.set_name(name);
    *request.mutable_weights() = weights;
    return pb::AttentionService::NewStub(channel_)->PutWeights(Context().get(), request, info);
  }
  grpc::Status Delete(const std::string& name) {
    pb::DeleteWeightsRequest request;
    request.set_name(name);
    pb::DeleteWeightsResponse response;
    return pb::AttentionService::NewStub(channel_)->DeleteWeights(Context().get(), request,
                                                                  &response);
  }

  // A self-attention request [2,5,16] with inline weights and a causal mask.
  static pb::MultiHeadAttendRequest SelfRequest(const RandomLayer& layer, std::vector<float>& input) {
    std::mt19937 rng(7);
    input = RandomValues(2 * 5 * 16, rng);
    pb::MultiHeadAttendRequest request;
    *request.mutable_input() = FloatTensorOf({2, 5, 16}, input);
    *request.mutable_weights() = layer.Proto();
    request.mutable_mask()->set_causal(pb::CAUSAL_UPPER_LEFT);
    return request;
  }

  void ExpectMatchesReference(const pb::AttendResponse& response, const RandomLayer& layer,
                              const std::vector<float>& input, const std::vector<float>* context,
                              int64_t q_len, int64_t kv_len, const MaskSpec& mask, bool average) {
    const ReferenceMultiHeadResult want = ReferenceMultiHeadAttention(
        layer.Dims(), layer.Values(), 2, q_len, kv_len, input.data(),
        context == nullptr ? nullptr : context->data(), 1.0 / std::sqrt(4.0), mask, average);
    EXPECT_LE(MaxAbsError(Floats(response.output()), want.output), kTolerance);
    EXPECT_LE(MaxAbsError(Floats(response.attention()), want.probabilities), kTolerance);
  }

  // After a bad request the server must still answer a good one.
  void ExpectServesGoodRequest() {
    const RandomLayer layer(3);
    std::vector<float> input;
    pb::AttendResponse response;
    ASSERT_TRUE(Call(SelfRequest(layer, input), &response).ok());
    MaskSpec causal;
    causal.causal = CausalKind::kUpperLeft;
    ExpectMatchesReference(response, layer, input, nullptr, 5, 5, causal, false);
  }

  void ExpectRejected(const pb::MultiHeadAttendRequest& request, grpc::StatusCode code,
                      const std::string& message_part) {
    pb::AttendResponse response;
    const grpc::Status status = Call(request, &response);
    EXPECT_EQ(status.error_code(), code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(message_part));
    ExpectServesGoodRequest();
  }

  static AttentionServer* server_;
  static std::shared_ptr<grpc::Channel> channel_;
};

AttentionServer* MultiHeadServiceTest::server_ = nullptr;
std::shared_ptr<grpc::Channel> MultiHeadServiceTest::channel_;

TEST_F(MultiHeadServiceTest, InlineWeightsMatchReference) {
  ExpectServesGoodRequest();
  const RandomLayer layer(1);
  std::vector<float> input;
  pb::MultiHeadAttendRequest request = SelfRequest(layer, input);
  request.set_output_dtype(pb::DATA_TYPE_BFLOAT16);
  pb::AttendResponse response;
  ASSERT_TRUE(Call(request, &response).ok());
  EXPECT_EQ(response.output().dtype(), pb::DATA_TYPE_BFLOAT16);
  EXPECT_THAT(response.output().shape(), ::testing::ElementsAre(2, 5, 16));
  EXPECT_THAT(response.attention().shape(), ::testing::ElementsAre(2, 4, 5, 5));
  EXPECT_GT(response.timing().compute_us(), 0);
}

// compute_dtype BFLOAT16: the attention between the projections on bf16 operands, within 1e-2
// of the double reference (output: max error / max |value|; probabilities: max error). The
// projected Q holds a row's heads side by side, so each head is a unit of its 40 query rows:
// more than the engine computes in f32 (32), so the output must show bf16's rounding (an error
// over 1e-4, where f32 stays near 1e-6). FLOAT16 is refused.
TEST_F(MultiHeadServiceTest, Bf16ComputeIsWithinOnePercent) {
  const RandomLayer layer(12);
  std::mt19937 rng(9);
  const std::vector<float> input = RandomValues(2 * 40 * 16, rng);
  pb::MultiHeadAttendRequest request;
  *request.mutable_input() = FloatTensorOf({2, 40, 16}, input);
  *request.mutable_weights() = layer.Proto();
  request.mutable_mask()->set_causal(pb::CAUSAL_UPPER_LEFT);
  request.set_compute_dtype(pb::DATA_TYPE_BFLOAT16);
  pb::AttendResponse response;
  ASSERT_TRUE(Call(request, &response).ok());
  MaskSpec causal;
  causal.causal = CausalKind::kUpperLeft;
  const ReferenceMultiHeadResult want =
      ReferenceMultiHeadAttention(layer.Dims(), layer.Values(), 2, 40, 40, input.data(), nullptr,
                                  1.0 / std::sqrt(4.0), causal, false);
  const double output_error = NormwiseError(Floats(response.output()), want.output);
  EXPECT_LE(output_error, 1e-2);
  EXPECT_GT(output_error, 1e-4) << "computed in f32";
  EXPECT_LE(MaxAbsError(Floats(response.attention()), want.probabilities), 1e-2);

  request.set_compute_dtype(pb::DATA_TYPE_FLOAT16);
  ExpectRejected(request, grpc::StatusCode::UNIMPLEMENTED,
                 "compute_dtype = FLOAT16 is not supported; use FLOAT32 or BFLOAT16");
}

TEST_F(MultiHeadServiceTest, CrossAttentionWithAveragedMaps) {
  const RandomLayer layer(2, /*context_width=*/12);
  std::mt19937 rng(8);
  const std::vector<float> input = RandomValues(2 * 3 * 16, rng);
  const std::vector<float> context = RandomValues(2 * 6 * 12, rng);
  pb::MultiHeadAttendRequest request;
  *request.mutable_input() = FloatTensorOf({2, 3, 16}, input);
  *request.mutable_context() = FloatTensorOf({2, 6, 12}, context);
  *request.mutable_weights() = layer.Proto();
  request.mutable_mask()->add_key_lengths(4);
  request.mutable_mask()->add_key_lengths(6);
  request.set_average_heads(true);
  pb::AttendResponse response;
  ASSERT_TRUE(Call(request, &response).ok());
  EXPECT_THAT(response.attention().shape(), ::testing::ElementsAre(2, 3, 6));
  const std::vector<int32_t> lengths = {4, 6};
  MaskSpec mask;
  mask.key_lengths = lengths;
  ExpectMatchesReference(response, layer, input, &context, 3, 6, mask, true);
}

TEST_F(MultiHeadServiceTest, NamedWeightsPutListDelete) {
  const RandomLayer layer(4);
  pb::WeightsInfo info;
  ASSERT_TRUE(Put("layer-0", layer.Proto(), &info).ok());
  EXPECT_EQ(info.name(), "layer-0");
  EXPECT_EQ(info.num_heads(), 4);
  EXPECT_EQ(info.num_kv_heads(), 2);
  EXPECT_EQ(info.d_model(), 16);
  EXPECT_EQ(info.head_dim(), 4);
  EXPECT_EQ(info.value_dim(), 4);
  EXPECT_EQ(info.d_out(), 16);
  EXPECT_GT(info.bytes(), 0);

  pb::ListWeightsResponse list;
  ASSERT_TRUE(pb::AttentionService::NewStub(channel_)
                  ->ListWeights(Context().get(), pb::ListWeightsRequest(), &list)
                  .ok());
  ASSERT_EQ(list.weights_size(), 1);
  EXPECT_EQ(list.weights(0).name(), "layer-0");

  std::vector<float> input;
  pb::MultiHeadAttendRequest inline_request = SelfRequest(layer, input);
  pb::MultiHeadAttendRequest named_request = inline_request;
  named_request.set_weights_name("layer-0");
  pb::AttendResponse inline_response, named_response;
  ASSERT_TRUE(Call(inline_request, &inline_response).ok());
  ASSERT_TRUE(Call(named_request, &named_response).ok());
  EXPECT_EQ(Floats(named_response.output()), Floats(inline_response.output()));

  ASSERT_TRUE(Delete("layer-0").ok());
  pb::AttendResponse response;
  const grpc::Status gone = Call(named_request, &response);
  EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(gone.error_message(), HasSubstr("no weights named \"layer-0\""));
  EXPECT_EQ(Delete("layer-0").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(MultiHeadServiceTest, PutWeightsEnforcesLimitsAndNames) {
  pb::WeightsInfo info;
  const grpc::Status bad_name = Put("a/b", RandomLayer(5).Proto(), &info);
  EXPECT_EQ(bad_name.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad_name.error_message(), HasSubstr("name = \"a/b\" may only use"));
  // 64 KiB hold several of these small sets, but not a d_model-128 one.
  RandomLayer big(6);
  big.d_model = 128;
  big.heads = big.kv_heads = 2;
  big.head_dim = big.value_dim = 64;
  big.d_ctx = 128;
  pb::Weights weights;
  weights.set_num_heads(2);
  *weights.mutable_w_q() = FloatTensorOf({128, 128}, std::vector<float>(128 * 128, 0.1f));
  *weights.mutable_w_k() = weights.w_q();
  *weights.mutable_w_v() = weights.w_q();
  const grpc::Status full = Put("big", weights, &info);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(full.error_message(), HasSubstr("the limit is 65536 (--max_weights_bytes)"));
}

TEST_F(MultiHeadServiceTest, RejectsBadWeightsAndShapes) {
  const RandomLayer layer(9);
  std::vector<float> input;
  const pb::MultiHeadAttendRequest good = SelfRequest(layer, input);

  pb::MultiHeadAttendRequest request = good;
  *request.mutable_weights()->mutable_w_k() = FloatTensorOf({16, 6}, std::vector<float>(96, 0));
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "weights.w_k.shape[1] = 6 but num_kv_heads * head_dim = 2 * 4 = 8");
  request = good;
  request.mutable_weights()->set_num_kv_heads(3);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "weights.num_heads = 4 is not a multiple of weights.num_kv_heads = 3");
  request = good;
  request.mutable_weights()->mutable_add_norm()->set_epsilon(0);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "weights.add_norm.epsilon = 0 must be finite and > 0");
  request = good;
  *request.mutable_weights()->mutable_add_norm()->mutable_gamma() =
      FloatTensorOf({15}, std::vector<float>(15, 1));
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "weights.add_norm.gamma.shape[0] = 15 but d_model = 16");
  request = good;
  request.mutable_weights()->mutable_w_o()->mutable_data()->resize(10);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "weights.w_o");
  request = good;
  *request.mutable_input() = FloatTensorOf({2, 5, 8}, std::vector<float>(80, 0));
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "input.shape[2] = 8 but the weights' d_model (w_q.shape[0]) = 16");
  request = good;
  *request.mutable_context() = FloatTensorOf({3, 4, 16}, std::vector<float>(192, 0));
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "context.shape[0] = 3 but input.shape[0] = 2");
  request = good;
  request.clear_weights();
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "weights_source is not set");
  request = good;
  request.set_weights_name("missing");
  ExpectRejected(request, grpc::StatusCode::NOT_FOUND, "no weights named \"missing\"");
  // Self-attention needs d_ctx == d_model.
  request = good;
  *request.mutable_weights() = RandomLayer(10, /*context_width=*/12).Proto();
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT,
                 "context is absent (self-attention) but the weights' d_ctx = w_k.shape[0] = 12");
  request = good;
  request.mutable_mask()->add_key_lengths(9);
  request.mutable_mask()->add_key_lengths(1);
  ExpectRejected(request, grpc::StatusCode::INVALID_ARGUMENT, "mask.key_lengths[0] = 9");
}

// Requests by name while other threads replace and delete that name: every answer is OK or
// NOT_FOUND, and the server still serves afterwards.
// MultiHeadAttend on a KV-cache session: a prefill of 8 tokens' embeddings, then 4 one-token
// steps, each answer equal (1e-4) to MultiHeadAttend over the whole prefix's embeddings (causal,
// its last n rows): GQA with W_o and Add & Norm (inline weights, layer 1) and plain self-attention
// without them (named weights, layer 0). Then what a session step refuses, changing nothing.
TEST_F(MultiHeadServiceTest, SessionStepsEqualMultiHeadAttendOverThePrefix) {
  auto stub = pb::AttentionService::NewStub(channel_);
  const RandomLayer layer(11);
  pb::Weights plain = layer.Proto();
  plain.clear_w_o();
  plain.clear_b_o();
  plain.clear_add_norm();
  pb::WeightsInfo info;
  ASSERT_TRUE(Put("plain", plain, &info).ok());
  pb::CreateSessionRequest create;
  create.set_num_layers(2);
  create.set_num_heads(4);
  create.set_num_kv_heads(2);
  create.set_head_dim(4);
  pb::Session session;
  ASSERT_TRUE(stub->CreateSession(Context().get(), create, &session).ok());
  std::mt19937 rng(5);
  const std::vector<float> sequence = RandomValues(12 * 16, rng);
  auto embeddings = [&](int64_t from, int64_t to) {
    return FloatTensorOf({1, to - from, 16}, std::vector<float>(sequence.begin() + from * 16,
                                                                sequence.begin() + to * 16));
  };
  for (const int session_layer : {1, 0}) {
    const bool inline_weights = session_layer == 1;
    int64_t tokens = 0;
    for (const int64_t n : {8, 1, 1, 1, 1}) {
      pb::MultiHeadAttendRequest step;
      step.set_session_id(session.session_id());
      step.set_layer(session_layer);
      *step.mutable_input() = embeddings(tokens, tokens + n);
      pb::MultiHeadAttendRequest whole;
      *whole.mutable_input() = embeddings(0, tokens + n);
      whole.mutable_mask()->set_causal(pb::CAUSAL_UPPER_LEFT);
      whole.set_attention_maps(pb::ATTENTION_MAPS_NONE);
      if (inline_weights) {
        *step.mutable_weights() = layer.Proto();
        *whole.mutable_weights() = layer.Proto();
      } else {
        step.set_weights_name("plain");
        whole.set_weights_name("plain");
      }
      pb::AttendResponse got, want;
      ASSERT_TRUE(Call(step, &got).ok());
      ASSERT_TRUE(Call(whole, &want).ok());
      const int64_t width = inline_weights ? 16 : 4 * 4;
      EXPECT_THAT(got.output().shape(), ::testing::ElementsAre(1, n, width));
      const std::vector<float> all = Floats(want.output());
      const std::vector<float> last(all.end() - n * width, all.end());
      EXPECT_LE(MaxAbsError(Floats(got.output()), last), kTolerance)
          << "layer " << session_layer << " at " << tokens;
      tokens += n;
    }
  }

  // Refused, and the session unchanged: weights of other heads, a batch of 2, a context, a
  // mask, maps, a layer out of range, and (HTTP's path) layer without session_id.
  pb::MultiHeadAttendRequest good;
  good.set_session_id(session.session_id());
  *good.mutable_input() = embeddings(0, 1);
  *good.mutable_weights() = layer.Proto();
  std::vector<std::tuple<pb::MultiHeadAttendRequest, grpc::StatusCode, std::string>> bad;
  auto with = [&](auto change) {
    pb::MultiHeadAttendRequest r = good;
    change(r);
    return r;
  };
  bad.emplace_back(
      with([&](auto& r) { *r.mutable_input() = FloatTensorOf({2, 1, 16}, std::vector<float>(32)); }),
      grpc::StatusCode::INVALID_ARGUMENT, "input.shape[0] = 2");
  bad.emplace_back(with([&](auto& r) { *r.mutable_context() = embeddings(0, 1); }),
                   grpc::StatusCode::INVALID_ARGUMENT, "context must be absent");
  bad.emplace_back(with([&](auto& r) { r.mutable_mask()->set_causal(pb::CAUSAL_UPPER_LEFT); }),
                   grpc::StatusCode::INVALID_ARGUMENT, "mask must be empty");
  bad.emplace_back(with([&](auto& r) { r.set_attention_maps(pb::ATTENTION_MAPS_PROBABILITIES); }),
                   grpc::StatusCode::UNIMPLEMENTED, "attention_maps");
  bad.emplace_back(with([&](auto& r) { r.set_layer(2); }), grpc::StatusCode::INVALID_ARGUMENT,
                   "layer");
  bad.emplace_back(with([&](auto& r) { r.set_weights_name("absent"); }),
                   grpc::StatusCode::NOT_FOUND, "absent");
  pb::Session two_heads;  // the weights have 4 heads of 4 dims
  create.set_num_heads(2);
  create.set_num_kv_heads(2);
  create.set_head_dim(8);
  ASSERT_TRUE(stub->CreateSession(Context().get(), create, &two_heads).ok());
  bad.emplace_back(with([&](auto& r) { r.set_session_id(two_heads.session_id()); }),
                   grpc::StatusCode::INVALID_ARGUMENT, "are not session");
  bad.emplace_back(with([&](auto& r) { r.clear_session_id(); r.set_layer(1); }),
                   grpc::StatusCode::INVALID_ARGUMENT, "session_id is empty");
  for (const auto& [request, code, part] : bad) {
    pb::AttendResponse response;
    const grpc::Status status = Call(request, &response);
    EXPECT_EQ(status.error_code(), code) << part << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(part));
  }
  pb::GetSessionRequest get;
  get.set_session_id(session.session_id());
  ASSERT_TRUE(stub->GetSession(Context().get(), get, &session).ok());
  EXPECT_THAT(session.layer_tokens(), ::testing::ElementsAre(12, 12));
  ASSERT_TRUE(Delete("plain").ok());
}

TEST_F(MultiHeadServiceTest, ConcurrentPutDeleteWhileRequestsRun) {
  const RandomLayer layer(11);
  std::vector<float> input;
  pb::MultiHeadAttendRequest request = SelfRequest(layer, input);
  request.set_weights_name("hot");
  std::atomic<int> unexpected{0}, ok{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 40; ++i) {
      pb::WeightsInfo info;
      if (!Put("hot", layer.Proto(), &info).ok()) ++unexpected;
      if (i % 2 == 1) {
        const grpc::Status deleted = Delete("hot");
        if (!deleted.ok() && deleted.error_code() != grpc::StatusCode::NOT_FOUND) ++unexpected;
      }
    }
    stop = true;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      for (int i = 0; i < 200 && !stop; ++i) {
        pb::AttendResponse response;
        const grpc::Status status = Call(request, &response);
        if (status.ok()) {
          ++ok;
        } else if (status.error_code() != grpc::StatusCode::NOT_FOUND) {
          ++unexpected;
        }
      }
    });
  }
  writer.join();
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(unexpected, 0);
  Delete("hot");
  ExpectServesGoodRequest();
}

}  // namespace
}  // namespace attn
