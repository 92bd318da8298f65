// libFuzzer target for hostile requests: arbitrary bytes parsed as an attention.v1 request and run
// through the server's own admission estimate, validation and compute path (Estimate*Bytes,
// RunAttend, RunMultiHeadAttend, the session calls, the Open Inference Protocol's translation)
// with small limits. The first byte modulo 9 selects the message: 0 AttendRequest,
// 1 MultiHeadAttendRequest (a registry holds small named weights "w", d_model 8, 2 heads),
// 2 SessionAttendRequest, 3 SessionAttendBatchRequest, 4 CreateSessionRequest,
// 5 ForkSessionRequest, 6 TruncateSessionRequest, 7 inference.ModelInferRequest (models
// "attention" and "mha.w"), 8 MultiHeadAttendRequest on a session. Session ids "a", "b"
// and "c" name three sessions of a small store (f32 with GQA, bf16, max_tokens 40), which are
// truncated back to empty after each input (and whatever it created closed; a page left in the
// pool is a finding). Any crash, leak or sanitizer report is a finding; error statuses are
// expected answers. Seeds: corpus/ (made by make_corpus.py).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attention/v1/attention.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "inference/grpc_predict_v2.pb.h"
#include "server/attend_call.h"
#include "server/inference_request.h"
#include "server/multi_head_call.h"
#include "server/multi_head_session_call.h"
#include "server/request_fields.h"
#include "server/session_call.h"
#include "server/session_proto.h"
#include "server/weights_proto.h"
#include "src/engine/attention_engine.h"
#include "src/kv/session_store.h"
#include "src/layer/multi_head_attention.h"
#include "src/weights/weight_registry.h"

namespace {

constexpr attn::AttendLimits kLimits{.max_elements = 4096, .max_message_bytes = 1 << 20};

void FillTensor(attention::v1::Tensor* tensor, int64_t rows, int64_t cols, float base) {
  tensor->add_shape(rows);
  tensor->add_shape(cols);
  for (int64_t i = 0; i < rows * cols; ++i) tensor->add_values(base + 0.01f * float(i % 17));
}

// The engine, layer and registry a server would hold, built once.
struct Fixture {
  attn::AttentionEngine engine{attn::AttentionEngine::Options{.primitive_cache_capacity = 64}};
  attn::MultiHeadAttention layer{engine, 64};
  attn::WeightRegistry registry{1 << 20};
  attn::SessionStore sessions{{.capacity_bytes = 1 << 20, .page_tokens = 64, .max_tokens = 256,
                               .default_max_tokens = 64}};
  std::string ids[3];  // of "a", "b", "c"

  Fixture() {
    // Invalid UTF-8 in a string field is an expected parse failure; its log line is noise.
    google::protobuf::SetLogHandler(nullptr);
    attention::v1::Weights weights;
    weights.set_num_heads(2);
    FillTensor(weights.mutable_w_q(), 8, 8, 0.1f);
    FillTensor(weights.mutable_w_k(), 8, 8, -0.1f);
    FillTensor(weights.mutable_w_v(), 8, 8, 0.2f);
    FillTensor(weights.mutable_w_o(), 8, 8, 0.05f);
    auto parsed = attn::WeightsFromProto("weights.", weights, kLimits.max_elements);
    if (!parsed.ok() || !registry.Put("w", *parsed).ok()) __builtin_trap();
    const attn::SessionConfig configs[] = {
        {.num_layers = 2, .num_heads = 4, .num_kv_heads = 2, .head_dim = 4},
        {.num_layers = 1, .num_heads = 2, .head_dim = 4, .value_dim = 6, .bf16 = true},
        {.num_layers = 1, .num_heads = 1, .head_dim = 8, .max_tokens = 40}};
    for (int i = 0; i < 3; ++i) {
      auto info = sessions.Create(configs[i], "");
      if (!info.ok()) __builtin_trap();
      ids[i] = info->id;
    }
  }

  // The real id for a fuzzed one ("a", "b", "c"), or the fuzzed one.
  void Resolve(std::string* id) const {
    if (id->size() == 1 && (*id)[0] >= 'a' && (*id)[0] <= 'c') *id = ids[(*id)[0] - 'a'];
  }

  // Back to three empty sessions and nothing else; a page left in the pool traps.
  void Reset() {
    for (const attn::SessionInfo& info : sessions.List("")) {
      if (info.id != ids[0] && info.id != ids[1] && info.id != ids[2]) {
        (void)sessions.Close(info.id, "");
      }
    }
    for (const std::string& id : ids) {
      if (!sessions.Truncate(id, 0, "").ok()) __builtin_trap();
    }
    if (sessions.pool().used_bytes() != 0) __builtin_trap();
  }
};

// Runs session steps as the server does: leased and in line, then computed.
void RunSteps(Fixture& f, const std::vector<attention::v1::SessionAttendRequest*>& steps,
              bool batch) {
  std::vector<const std::string*> ids;
  std::vector<const attention::v1::SessionAttendRequest*> requests;
  for (attention::v1::SessionAttendRequest* step : steps) {
    f.Resolve(step->mutable_session_id());
    ids.push_back(&step->session_id());
    requests.push_back(step);
  }
  attn::SessionTurns turns(f.sessions, ids, "", batch);
  (void)turns.EstimateBytes(requests);
  if (!turns.status().ok() || !turns.Wait(absl::InfiniteFuture()).ok()) return;
  std::vector<attn::SessionAnswer> answers(requests.size());
  std::vector<attn::SessionAnswer*> pointers;
  for (attn::SessionAnswer& answer : answers) pointers.push_back(&answer);
  (void)attn::RunSessionSteps(requests, turns, f.sessions, f.engine, kLimits, pointers, nullptr,
                              batch);
}

// The session calls (selectors 2 to 6).
void RunSessionCall(Fixture& f, int selector, const void* body, int size) {
  switch (selector) {
    case 2: {
      attention::v1::SessionAttendRequest step;
      if (step.ParseFromArray(body, size)) RunSteps(f, {&step}, false);
      break;
    }
    case 3: {
      attention::v1::SessionAttendBatchRequest batch;
      if (!batch.ParseFromArray(body, size)) break;
      std::vector<attention::v1::SessionAttendRequest*> steps;
      for (auto& step : *batch.mutable_steps()) steps.push_back(&step);
      RunSteps(f, steps, true);
      break;
    }
    case 4: {
      attention::v1::CreateSessionRequest create;
      if (!create.ParseFromArray(body, size)) break;
      auto config = attn::SessionConfigFromProto(create);
      if (!config.ok()) break;
      auto info = f.sessions.Create(*config, "");
      attention::v1::Session session;
      if (info.ok()) attn::FillSession(*info, &session);
      break;
    }
    case 5: {
      attention::v1::ForkSessionRequest fork;
      if (!fork.ParseFromArray(body, size)) break;
      f.Resolve(fork.mutable_session_id());
      (void)f.sessions.Fork(fork.session_id(),
                            fork.has_tokens() ? std::optional<int64_t>(fork.tokens())
                                              : std::nullopt,
                            "");
      break;
    }
    default: {
      attention::v1::TruncateSessionRequest truncate;
      if (!truncate.ParseFromArray(body, size)) break;
      f.Resolve(truncate.mutable_session_id());
      (void)f.sessions.Truncate(truncate.session_id(), truncate.tokens(), "");
      break;
    }
  }
  f.Reset();
}

// A ModelInfer request (selector 7) translated and run as the server runs it, then answered.
void RunModelInfer(Fixture& f, const void* body, int size) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(body, size)) return;
  attn::InferAnswerPlan plan;
  attention::v1::AttendResponse answer;
  if (request.model_name() == "mha.w") {
    attention::v1::MultiHeadAttendRequest multi_head;
    if (!attn::ToMultiHeadRequest(request, "w", &multi_head, &plan).ok()) return;
    (void)attn::EstimateMultiHeadBytes(multi_head, f.registry, 2);
    if (!attn::RunMultiHeadAttend(multi_head, kLimits, f.layer, f.registry, &answer).ok()) return;
  } else {
    attention::v1::AttendRequest attend;
    if (!attn::ToAttendRequest(request, &attend, &plan).ok()) return;
    (void)attn::EstimateAttendBytes(attend, 2);
    if (!attn::RunAttend(attend, kLimits, f.engine, &answer).ok()) return;
  }
  inference::ModelInferResponse response;
  attn::ToInferResponse(request, plan, answer, &response);
}

// MultiHeadAttend on a session (selector 8), its session leased and in line as the server does.
void RunMultiHeadSessionStep(Fixture& f, const void* body, int size) {
  attention::v1::MultiHeadAttendRequest request;
  if (!request.ParseFromArray(body, size)) return;
  f.Resolve(request.mutable_session_id());
  const std::string* ids[] = {&request.session_id()};
  attn::SessionTurns turns(f.sessions, ids, "", false);
  if (turns.status().ok() && turns.Wait(absl::InfiniteFuture()).ok()) {
    attention::v1::AttendResponse response;
    (void)attn::RunMultiHeadSessionStep(request, kLimits, f.layer, f.registry, turns, f.sessions,
                                        f.engine, &response, nullptr);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();
  if (size == 0) return 0;
  const int selector = data[0] % 9;
  const bool multi_head = selector == 1;
  const void* body = data + 1;
  const int body_size = static_cast<int>(size - 1);
  if (selector == 7) {
    RunModelInfer(*fixture, body, body_size);
    return 0;
  }
  if (selector == 8) {
    RunMultiHeadSessionStep(*fixture, body, body_size);
    fixture->Reset();
    return 0;
  }
  if (selector >= 2) {
    RunSessionCall(*fixture, selector, body, body_size);
    return 0;
  }
  attention::v1::AttendResponse response;
  if (multi_head) {
    attention::v1::MultiHeadAttendRequest request;
    if (!request.ParseFromArray(body, body_size)) return 0;
    (void)attn::EstimateMultiHeadBytes(request, fixture->registry, 2);
    (void)attn::RunMultiHeadAttend(request, kLimits, fixture->layer, fixture->registry, &response);
  } else {
    attention::v1::AttendRequest request;
    if (!request.ParseFromArray(body, body_size)) return 0;
    (void)attn::EstimateAttendBytes(request, 2);
    (void)attn::RunAttend(request, kLimits, fixture->engine, &response);
  }
  return 0;
}
