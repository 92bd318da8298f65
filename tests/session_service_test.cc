// In-process tests of the session RPCs through a real gRPC channel: each step's answer equals
// stateless Attend through the same server over the same keys and values (f32 and bf16 pages:
// max |error| <= 1e-5; bf16 pages hold exactly what stateless Attend is sent), for SessionAttend,
// SessionAttendBatch and SessionAttendStream, after forks and truncations; hostile inputs get
// their code and a message naming the field and numbers and change nothing; ownership with
// bearer tokens; eviction and RESOURCE_EXHAUSTED with a small pool; concurrent steps on one
// session apply one at a time.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "attention/v1/attention.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server_runner.h"
#include "tests/service_test_util.h"

namespace attn {
namespace {

namespace pb = attention::v1;
using ::testing::HasSubstr;

constexpr double kTolerance = 1e-5;

// A session's keys and values so far per layer, [Hkv][position][D] flattened by position, as
// the server holds them.
struct History {
  int64_t heads = 0, kv_heads = 0, dim = 0;
  DType kv_dtype = DType::kFloat32;
  std::map<int, std::vector<std::vector<float>>> keys = {}, values = {};  // layer -> head -> rows

  int64_t Tokens(int layer) {
    auto& k = keys[layer];
    return k.empty() ? 0 : static_cast<int64_t>(k[0].size()) / dim;
  }
  void Append(int layer, const std::vector<float>& k, const std::vector<float>& v, int64_t n) {
    auto& ks = keys[layer];
    auto& vs = values[layer];
    ks.resize(kv_heads);
    vs.resize(kv_heads);
    for (int64_t g = 0; g < kv_heads; ++g) {
      for (int64_t e = 0; e < n * dim; ++e) {
        ks[g].push_back(Round(k[g * n * dim + e]));
        vs[g].push_back(Round(v[g * n * dim + e]));
      }
    }
  }
  void Truncate(int layer, int64_t tokens) {
    for (auto* all : {&keys[layer], &values[layer]}) {
      for (auto& rows : *all) rows.resize(std::min<size_t>(rows.size(), tokens * dim));
    }
  }
  float Round(float x) const {
    return kv_dtype == DType::kBFloat16 ? BFloat16ToFloat(FloatToBFloat16(x)) : x;
  }
  // [1, Hkv, T, D] of a layer.
  pb::Tensor Tensor(int layer, bool values_of) {
    auto& all = values_of ? values[layer] : keys[layer];
    std::vector<float> flat;
    for (auto& rows : all) flat.insert(flat.end(), rows.begin(), rows.end());
    return FloatTensorOf({1, kv_heads, Tokens(layer), dim}, flat);
  }
};

class SessionServiceTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options = LoopbackTestOptions()) {
    options.sessions.page_tokens = 64;
    test_ = StartTestServer(options);
    stub_ = pb::AttentionService::NewStub(test_.channel);
  }
  void SetUp() override { Start(); }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token = "") {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
    return context;
  }

  pb::Session Create(int layers, int heads, int kv_heads, int dim, pb::DataType kv_dtype,
                     int64_t max_tokens = 0, const std::string& token = "") {
    pb::CreateSessionRequest request;
    request.set_num_layers(layers);
    request.set_num_heads(heads);
    request.set_num_kv_heads(kv_heads);
    request.set_head_dim(dim);
    request.set_kv_dtype(kv_dtype);
    request.set_max_tokens(max_tokens);
    pb::Session session;
    EXPECT_TRUE(stub_->CreateSession(Context(token).get(), request, &session).ok());
    return session;
  }

  // A step of n random tokens (kept in last_q_/last_k_/last_v_); `wire` their dtype.
  pb::SessionAttendRequest MakeStep(const pb::Session& s, int layer, int64_t n,
                                    DType wire = DType::kFloat32, bool maps = false) {
    last_q_ = RandomValues(s.num_heads() * n * s.head_dim(), rng_);
    last_k_ = RandomValues(s.num_kv_heads() * n * s.head_dim(), rng_);
    last_v_ = RandomValues(s.num_kv_heads() * n * s.head_dim(), rng_);
    if (wire == DType::kBFloat16) {  // what bf16 on the wire can say
      for (auto* x : {&last_k_, &last_v_}) {
        for (float& e : *x) e = BFloat16ToFloat(FloatToBFloat16(e));
      }
    }
    pb::SessionAttendRequest step;
    step.set_session_id(s.session_id());
    step.set_layer(layer);
    *step.mutable_query() = FloatTensorOf({s.num_heads(), n, s.head_dim()}, last_q_);
    *step.mutable_key() = FloatTensorOf({s.num_kv_heads(), n, s.head_dim()}, last_k_, wire);
    *step.mutable_value() = FloatTensorOf({s.num_kv_heads(), n, s.head_dim()}, last_v_, wire);
    if (maps) step.set_attention_maps(pb::ATTENTION_MAPS_PROBABILITIES);
    return step;
  }

  // Checks `got` (the answer to the last step, already appended to `h`) against stateless
  // Attend of the same query over the layer's history, lower-right causal.
  void ExpectStateless(History& h, int layer, const pb::SessionAttendRequest& step,
                       const pb::SessionAttendResponse& got) {
    pb::AttendRequest stateless;
    const int64_t n = step.query().shape(1);
    *stateless.mutable_query() =
        FloatTensorOf({1, h.heads, n, h.dim}, Floats(step.query()));
    *stateless.mutable_key() = h.Tensor(layer, false);
    *stateless.mutable_value() = h.Tensor(layer, true);
    stateless.mutable_mask()->set_causal(pb::CAUSAL_LOWER_RIGHT);
    stateless.set_attention_maps(step.attention_maps() == pb::ATTENTION_MAPS_DEFAULT
                                     ? pb::ATTENTION_MAPS_NONE
                                     : step.attention_maps());
    pb::AttendResponse want;
    ASSERT_TRUE(stub_->Attend(Context().get(), stateless, &want).ok());
    EXPECT_EQ(got.position(), h.Tokens(layer) - n);
    EXPECT_LE(MaxAbsError(Floats(got.output()), Floats(want.output())), kTolerance);
    EXPECT_EQ(got.has_attention(), want.has_attention());
    if (want.has_attention()) {
      EXPECT_LE(MaxAbsError(Floats(got.attention()), Floats(want.attention())), kTolerance);
      EXPECT_THAT(got.attention().shape(), ::testing::ElementsAre(h.heads, n, h.Tokens(layer)));
    }
  }

  pb::Session Get(const std::string& id) {
    pb::GetSessionRequest request;
    request.set_session_id(id);
    pb::Session session;
    EXPECT_TRUE(stub_->GetSession(Context().get(), request, &session).ok());
    return session;
  }

  TestServer test_;
  std::unique_ptr<pb::AttentionService::Stub> stub_;
  std::mt19937 rng_{3};
  std::vector<float> last_q_, last_k_, last_v_;
};

TEST_F(SessionServiceTest, PrefillAndDecodeEqualStatelessAttend) {
  for (pb::DataType kv : {pb::DATA_TYPE_FLOAT32, pb::DATA_TYPE_BFLOAT16}) {
    for (DType wire : {DType::kFloat32, DType::kBFloat16}) {
      const pb::Session s = Create(2, 8, 2, 64, kv);
      EXPECT_EQ(s.session_id().size(), 32u);
      EXPECT_EQ(s.page_tokens(), 64);
      History h{.heads = 8, .kv_heads = 2, .dim = 64,
                .kv_dtype = kv == pb::DATA_TYPE_BFLOAT16 ? DType::kBFloat16 : DType::kFloat32};
      for (int64_t n : {100, 1, 1, 30, 1}) {
        for (int layer : {0, 1}) {
          const pb::SessionAttendRequest step = MakeStep(s, layer, n, wire, /*maps=*/layer == 1);
          pb::SessionAttendResponse got;
          const grpc::Status status = stub_->SessionAttend(Context().get(), step, &got);
          ASSERT_TRUE(status.ok()) << status.error_message();
          h.Append(layer, last_k_, last_v_, n);
          ExpectStateless(h, layer, step, got);
        }
      }
      EXPECT_THAT(Get(s.session_id()).layer_tokens(), ::testing::ElementsAre(133, 133));
    }
  }
}

TEST_F(SessionServiceTest, BatchAndStreamEqualStatelessAttend) {
  std::vector<pb::Session> sessions;
  std::vector<History> histories;
  for (int64_t prefill : {5, 70, 130}) {
    sessions.push_back(Create(1, 4, 4, 32, pb::DATA_TYPE_FLOAT32));
    histories.push_back({.heads = 4, .kv_heads = 4, .dim = 32});
    const pb::SessionAttendRequest step = MakeStep(sessions.back(), 0, prefill);
    pb::SessionAttendResponse got;
    ASSERT_TRUE(stub_->SessionAttend(Context().get(), step, &got).ok());
    histories.back().Append(0, last_k_, last_v_, prefill);
  }
  for (int round = 0; round < 3; ++round) {
    pb::SessionAttendBatchRequest batch;
    std::vector<std::vector<float>> ks, vs;
    for (const pb::Session& s : sessions) {
      *batch.add_steps() = MakeStep(s, 0, 1, DType::kFloat32, round == 2);
      ks.push_back(last_k_);
      vs.push_back(last_v_);
    }
    pb::SessionAttendBatchResponse got;
    const grpc::Status status = stub_->SessionAttendBatch(Context().get(), batch, &got);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(got.results_size(), 3);
    for (int i = 0; i < 3; ++i) {
      histories[i].Append(0, ks[i], vs[i], 1);
      ExpectStateless(histories[i], 0, batch.steps(i), got.results(i));
    }
  }
  // The stream: steps answered in order.
  auto context = Context();
  auto stream = stub_->SessionAttendStream(context.get());
  for (int i = 0; i < 4; ++i) {
    const pb::SessionAttendRequest step = MakeStep(sessions[1], 0, i == 0 ? 3 : 1);
    ASSERT_TRUE(stream->Write(step));
    pb::SessionAttendResponse got;
    ASSERT_TRUE(stream->Read(&got));
    histories[1].Append(0, last_k_, last_v_, step.query().shape(1));
    ExpectStateless(histories[1], 0, step, got);
  }
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(SessionServiceTest, ForkAndTruncateThroughTheService) {
  const pb::Session s = Create(1, 4, 2, 32, pb::DATA_TYPE_BFLOAT16);
  History h{.heads = 4, .kv_heads = 2, .dim = 32, .kv_dtype = DType::kBFloat16};
  pb::SessionAttendResponse got;
  pb::SessionAttendRequest step = MakeStep(s, 0, 90);
  ASSERT_TRUE(stub_->SessionAttend(Context().get(), step, &got).ok());
  h.Append(0, last_k_, last_v_, 90);
  pb::ForkSessionRequest fork_request;
  fork_request.set_session_id(s.session_id());
  fork_request.set_tokens(80);
  pb::Session fork;
  ASSERT_TRUE(stub_->ForkSession(Context().get(), fork_request, &fork).ok());
  EXPECT_THAT(fork.layer_tokens(), ::testing::ElementsAre(80));
  History hf = h;
  hf.Truncate(0, 80);
  step = MakeStep(fork, 0, 2);
  ASSERT_TRUE(stub_->SessionAttend(Context().get(), step, &got).ok());
  hf.Append(0, last_k_, last_v_, 2);
  ExpectStateless(hf, 0, step, got);
  pb::TruncateSessionRequest truncate;
  truncate.set_session_id(s.session_id());
  truncate.set_tokens(50);
  pb::Session cut;
  ASSERT_TRUE(stub_->TruncateSession(Context().get(), truncate, &cut).ok());
  EXPECT_THAT(cut.layer_tokens(), ::testing::ElementsAre(50));
  h.Truncate(0, 50);
  step = MakeStep(s, 0, 1, DType::kFloat32, true);
  ASSERT_TRUE(stub_->SessionAttend(Context().get(), step, &got).ok());
  h.Append(0, last_k_, last_v_, 1);
  ExpectStateless(h, 0, step, got);
  pb::ListSessionsResponse list;
  ASSERT_TRUE(stub_->ListSessions(Context().get(), {}, &list).ok());
  EXPECT_EQ(list.sessions_size(), 2);
  for (const std::string& id : {s.session_id(), fork.session_id()}) {
    pb::CloseSessionRequest close;
    close.set_session_id(id);
    pb::CloseSessionResponse closed;
    ASSERT_TRUE(stub_->CloseSession(Context().get(), close, &closed).ok());
  }
  ASSERT_TRUE(stub_->ListSessions(Context().get(), {}, &list).ok());
  EXPECT_EQ(list.sessions_size(), 0);
}

TEST_F(SessionServiceTest, HostileStepsAreRefusedAndChangeNothing) {
  const pb::Session s = Create(2, 4, 2, 32, pb::DATA_TYPE_FLOAT32, /*max_tokens=*/100);
  pb::SessionAttendResponse got;
  ASSERT_TRUE(stub_->SessionAttend(Context().get(), MakeStep(s, 0, 95), &got).ok());
  struct Bad {
    pb::SessionAttendRequest step;
    grpc::StatusCode code;
    std::string message;
  };
  std::vector<Bad> bad;
  pb::SessionAttendRequest unknown = MakeStep(s, 0, 1);
  unknown.set_session_id("00000000000000000000000000000000");
  bad.push_back({unknown, grpc::StatusCode::NOT_FOUND,
                 "session 00000000000000000000000000000000 does not exist"});
  bad.push_back({MakeStep(s, 2, 1), grpc::StatusCode::INVALID_ARGUMENT,
                 "layer must be in [0, 2) (num_layers); got 2"});
  bad.push_back({MakeStep(s, 0, 6), grpc::StatusCode::OUT_OF_RANGE,
                 "layer 0 holds 95 positions: 6 more pass max_tokens 100"});
  pb::SessionAttendRequest wrong_dim = MakeStep(s, 0, 1);
  *wrong_dim.mutable_key() = FloatTensorOf({2, 1, 16}, std::vector<float>(32));
  bad.push_back({wrong_dim, grpc::StatusCode::INVALID_ARGUMENT,
                 "key.shape must be [num_kv_heads = 2, n = 1, head_dim = 32]; got [2,1,16]"});
  pb::SessionAttendRequest zero = MakeStep(s, 0, 1);
  zero.mutable_query()->clear_data();
  zero.mutable_query()->set_shape(1, 0);  // [4, 0, 32], no elements
  bad.push_back({zero, grpc::StatusCode::INVALID_ARGUMENT,
                 "query.shape must be [num_heads = 4, n >= 1, head_dim = 32]; got [4,0,32]"});
  pb::SessionAttendRequest n_mismatch = MakeStep(s, 0, 2);
  *n_mismatch.mutable_value() = FloatTensorOf({2, 1, 32}, std::vector<float>(64));
  bad.push_back({n_mismatch, grpc::StatusCode::INVALID_ARGUMENT,
                 "value.shape must be [num_kv_heads = 2, n = 2, value_dim = 32]; got [2,1,32]"});
  pb::SessionAttendRequest short_data = MakeStep(s, 0, 1);
  short_data.mutable_key()->mutable_data()->resize(10);
  bad.push_back({short_data, grpc::StatusCode::INVALID_ARGUMENT, "key"});
  pb::SessionAttendRequest bad_window = MakeStep(s, 0, 1);
  bad_window.set_window_tokens(-5);
  bad.push_back({bad_window, grpc::StatusCode::INVALID_ARGUMENT,
                 "window_tokens must be >= 0; got -5"});
  for (const Bad& b : bad) {
    const grpc::Status status = stub_->SessionAttend(Context().get(), b.step, &got);
    EXPECT_EQ(status.error_code(), b.code) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(b.message));
  }
  // A batch naming a session twice, or with one bad step, changes none of its sessions.
  const pb::Session other = Create(1, 4, 2, 32, pb::DATA_TYPE_FLOAT32);
  pb::SessionAttendBatchRequest batch;
  *batch.add_steps() = MakeStep(other, 0, 1);
  *batch.add_steps() = MakeStep(s, 0, 1);
  *batch.add_steps() = MakeStep(s, 1, 1);
  pb::SessionAttendBatchResponse answers;
  grpc::Status status = stub_->SessionAttendBatch(Context().get(), batch, &answers);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("steps[2].session_id names the session of "
                                                "steps[1] again"));
  batch.mutable_steps()->RemoveLast();
  *batch.add_steps() = MakeStep(s, 0, 1);
  batch.mutable_steps(1)->set_layer(7);
  batch.mutable_steps()->SwapElements(1, 2);
  batch.mutable_steps()->RemoveLast();
  status = stub_->SessionAttendBatch(Context().get(), batch, &answers);
  EXPECT_TRUE(status.ok()) << status.error_message();  // (other, s layer 0) is fine
  batch.mutable_steps(1)->set_layer(9);
  status = stub_->SessionAttendBatch(Context().get(), batch, &answers);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("steps[1].layer must be in [0, 2)"));
  EXPECT_THAT(Get(s.session_id()).layer_tokens(), ::testing::ElementsAre(96, 0));
  EXPECT_THAT(Get(other.session_id()).layer_tokens(), ::testing::ElementsAre(1));
  // Management calls: bad config, unknown ids.
  pb::CreateSessionRequest create;
  create.set_num_layers(1);
  create.set_num_heads(3);
  create.set_num_kv_heads(2);
  create.set_head_dim(8);
  pb::Session created;
  status = stub_->CreateSession(Context().get(), create, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "num_heads (3) must be a multiple of num_kv_heads (2)");
  create.set_num_kv_heads(1);
  create.set_kv_dtype(pb::DATA_TYPE_BOOL);
  status = stub_->CreateSession(Context().get(), create, &created);
  EXPECT_EQ(status.error_message(), "kv_dtype must be FLOAT32 or BFLOAT16; got DATA_TYPE_BOOL");
  pb::TruncateSessionRequest truncate;
  truncate.set_session_id(s.session_id());
  truncate.set_tokens(-1);
  status = stub_->TruncateSession(Context().get(), truncate, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // The session still answers.
  ASSERT_TRUE(stub_->SessionAttend(Context().get(), MakeStep(s, 1, 3), &got).ok());
  EXPECT_EQ(got.position(), 0);
}

TEST_F(SessionServiceTest, SessionsBelongToTheTokenThatCreatedThem) {
  const std::string path = ::testing::TempDir() + "/session_tokens";
  std::ofstream(path) << "alice-token\nbob-token\n";
  ServerOptions options = LoopbackTestOptions();
  options.auth_tokens_file = path;
  Start(options);
  const pb::Session s = Create(1, 2, 2, 16, pb::DATA_TYPE_FLOAT32, 0, "alice-token");
  ASSERT_FALSE(s.session_id().empty());
  pb::SessionAttendRequest step = MakeStep(s, 0, 1);
  pb::SessionAttendResponse got;
  grpc::Status status = stub_->SessionAttend(Context("bob-token").get(), step, &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "session " + s.session_id() + " does not exist");
  pb::GetSessionRequest get;
  get.set_session_id(s.session_id());
  pb::Session info;
  EXPECT_EQ(stub_->GetSession(Context("bob-token").get(), get, &info).error_code(),
            grpc::StatusCode::NOT_FOUND);
  pb::CloseSessionRequest close;
  close.set_session_id(s.session_id());
  pb::CloseSessionResponse closed;
  EXPECT_EQ(stub_->CloseSession(Context("bob-token").get(), close, &closed).error_code(),
            grpc::StatusCode::NOT_FOUND);
  pb::ListSessionsResponse list;
  ASSERT_TRUE(stub_->ListSessions(Context("bob-token").get(), {}, &list).ok());
  EXPECT_EQ(list.sessions_size(), 0);
  EXPECT_EQ(stub_->ListSessions(Context().get(), {}, &list).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(stub_->SessionAttend(Context("alice-token").get(), step, &got).ok());
  ASSERT_TRUE(stub_->CloseSession(Context("alice-token").get(), close, &closed).ok());
  std::filesystem::remove(path);
}

TEST_F(SessionServiceTest, FullPoolEvictsOrRefuses) {
  for (bool evict : {true, false}) {
    ServerOptions options = LoopbackTestOptions();
    // Two 64-position pages per KV head of a (1 layer, 2 KV heads, D 32, f32) session.
    options.sessions.capacity_bytes = 2 * 2 * 2 * 64 * 32 * 4;
    options.sessions.evict_lru = evict;
    Start(options);
    const pb::Session a = Create(1, 2, 2, 32, pb::DATA_TYPE_FLOAT32);
    const pb::Session b = Create(1, 2, 2, 32, pb::DATA_TYPE_FLOAT32);
    pb::SessionAttendResponse got;
    ASSERT_TRUE(stub_->SessionAttend(Context().get(), MakeStep(a, 0, 100), &got).ok());
    const grpc::Status status = stub_->SessionAttend(Context().get(), MakeStep(b, 0, 10), &got);
    if (evict) {
      ASSERT_TRUE(status.ok()) << status.error_message();
      const grpc::Status gone = stub_->SessionAttend(Context().get(), MakeStep(a, 0, 1), &got);
      EXPECT_EQ(gone.error_code(), grpc::StatusCode::NOT_FOUND);
      EXPECT_EQ(gone.error_message(),
                "session " + a.session_id() + " was evicted under memory pressure");
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
      EXPECT_THAT(status.error_message(),
                  HasSubstr("the KV cache pool cannot give 32768 bytes: 65536 of 65536 bytes"));
      EXPECT_THAT(Get(b.session_id()).layer_tokens(), ::testing::ElementsAre(0));
    }
  }
}

// Routing by session (attn-session-id): a client may draw the id (in the message, the header
// or both); a fork shares its source's route; a call whose header and message disagree is
// INVALID_ARGUMENT; a dropped id may be created again.
TEST_F(SessionServiceTest, SessionIdsRouteAndHeadersMustAgree) {
  const std::string id(32, 'a');
  pb::CreateSessionRequest create;
  create.set_num_layers(1);
  create.set_num_heads(2);
  create.set_head_dim(16);
  auto with_header = [&](const std::string& header) {
    auto context = Context();
    context->AddMetadata("attn-session-id", header);
    return context;
  };
  pb::Session created;
  ASSERT_TRUE(stub_->CreateSession(with_header(id).get(), create, &created).ok());
  EXPECT_EQ(created.session_id(), id);  // the header's id
  grpc::Status status = stub_->CreateSession(with_header(id).get(), create, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(status.error_message(), "session " + id + " already exists");
  create.set_session_id(std::string(32, 'b'));
  status = stub_->CreateSession(with_header(id).get(), create, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "the attn-session-id header (" + id +
                                        ") does not name session_id (" + std::string(32, 'b') +
                                        ")");
  create.set_session_id("ABC");
  status = stub_->CreateSession(Context().get(), create, &created);
  EXPECT_EQ(status.error_message(),
            "session_id must be 32 lowercase hex digits (128 random bits), or a route of 32, '-' "
            "and 32 more (a session routed with others), or empty; got \"ABC\"");
  // A fork: the source's route, then 128 bits of its own.
  pb::ForkSessionRequest fork;
  fork.set_session_id(id);
  pb::Session forked;
  ASSERT_TRUE(stub_->ForkSession(with_header(id).get(), fork, &forked).ok());
  ASSERT_EQ(forked.session_id().size(), 65u);
  EXPECT_EQ(forked.session_id().substr(0, 33), id + "-");
  // Steps: the header must name the session; a batch's steps must share its route.
  const pb::Session s = Get(id);
  pb::SessionAttendResponse got;
  status = stub_->SessionAttend(with_header(std::string(32, 'c')).get(), MakeStep(s, 0, 1), &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("does not name session_id (" + id + ")"));
  ASSERT_TRUE(stub_->SessionAttend(with_header(id).get(), MakeStep(s, 0, 1), &got).ok());
  pb::SessionAttendBatchRequest batch;
  *batch.add_steps() = MakeStep(s, 0, 1);
  *batch.add_steps() = MakeStep(Get(forked.session_id()), 0, 1);
  pb::SessionAttendBatchResponse answers;
  ASSERT_TRUE(stub_->SessionAttendBatch(with_header(id).get(), batch, &answers).ok());
  const pb::Session other = Create(1, 2, 2, 16, pb::DATA_TYPE_FLOAT32);
  *batch.add_steps() = MakeStep(other, 0, 1);
  status = stub_->SessionAttendBatch(with_header(id).get(), batch, &answers);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("does not share the route of steps[2].session_id"));
  pb::GetSessionRequest get;
  get.set_session_id(id);
  pb::Session info;
  EXPECT_EQ(stub_->GetSession(with_header(other.session_id()).get(), get, &info).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Closed, then created again under the same id (a client prefilling again).
  pb::CloseSessionRequest close;
  close.set_session_id(id);
  pb::CloseSessionResponse closed;
  ASSERT_TRUE(stub_->CloseSession(with_header(id).get(), close, &closed).ok());
  create.set_session_id(id);
  ASSERT_TRUE(stub_->CreateSession(with_header(id).get(), create, &created).ok());
  EXPECT_THAT(created.layer_tokens(), ::testing::ElementsAre(0));
}

// Steps sent at once on one session from several threads apply one at a time: their
// positions are distinct and, put in position order, each answer equals stateless attention
// over the keys of the steps before it.
TEST_F(SessionServiceTest, ConcurrentStepsOnOneSessionApplyOneAtATime) {
  const pb::Session s = Create(1, 4, 2, 32, pb::DATA_TYPE_FLOAT32);
  constexpr int kThreads = 6;
  std::vector<pb::SessionAttendRequest> steps;
  std::vector<std::vector<float>> ks, vs;
  for (int i = 0; i < kThreads; ++i) {
    steps.push_back(MakeStep(s, 0, 2));
    ks.push_back(last_k_);
    vs.push_back(last_v_);
  }
  std::vector<pb::SessionAttendResponse> answers(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      if (!stub_->SessionAttend(Context().get(), steps[i], &answers[i]).ok()) ++failed;
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failed.load(), 0);
  std::vector<int> order(kThreads);
  for (int i = 0; i < kThreads; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return answers[a].position() < answers[b].position();
  });
  History h{.heads = 4, .kv_heads = 2, .dim = 32};
  for (int rank = 0; rank < kThreads; ++rank) {
    const int i = order[rank];
    EXPECT_EQ(answers[i].position(), 2 * rank);
    h.Append(0, ks[i], vs[i], 2);
    ExpectStateless(h, 0, steps[i], answers[i]);
  }
}

}  // namespace
}  // namespace attn
