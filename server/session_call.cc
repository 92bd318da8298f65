// Session steps: proto -> session store -> proto (see session_call.h).
#include "server/session_call.h"

#include <algorithm>
#include <mutex>
#include <optional>

#include "absl/strings/str_cat.h"
#include "proto/tensor_codec.h"
#include "server/response_writer.h"
#include "src/kv/session_step.h"

namespace attn {
namespace {

namespace pb = attention::v1;

// `status` with its message prefixed by `prefix` ("steps[2]." in a batch).
absl::Status Prefixed(const absl::Status& status, const std::string& prefix) {
  if (status.ok() || prefix.empty()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, status.message()));
}

// `tensor`'s shape must be [heads, n, dim] (n = -1: any n >= 1, which is returned).
absl::StatusOr<int64_t> CheckStepShape(const char* field, const pb::Tensor& tensor,
                                       const char* heads_name, int64_t heads,
                                       const char* dim_name, int64_t dim, int64_t n) {
  const std::span<const int64_t> shape = ShapeOf(tensor);
  if (shape.size() != 3 || shape[0] != heads || shape[2] != dim || shape[1] < 1 ||
      (n > 0 && shape[1] != n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".shape must be [", heads_name, " = ", heads, ", ",
        n > 0 ? absl::StrCat("n = ", n) : std::string("n >= 1"), ", ", dim_name, " = ", dim,
        "]; got ", ShapeString(shape)));
  }
  return shape[1];
}

// A step decoded: its tensors (views into the request where possible) and how to answer it.
struct DecodedStep {
  SessionStep step;
  FloatTensor query, key, value;
  MapsWanted maps;
  DType output_dtype = DType::kFloat32;
  bool use_values = false;
};

absl::Status DecodeStep(const pb::SessionAttendRequest& request, const SessionConfig& c,
                        const AttendLimits& limits, DecodedStep& out) {
  absl::StatusOr<int64_t> n = CheckStepShape("query", request.query(), "num_heads", c.num_heads,
                                             "head_dim", c.head_dim, -1);
  if (!n.ok()) return n.status();
  for (absl::StatusOr<int64_t> checked :
       {CheckStepShape("key", request.key(), "num_kv_heads", c.num_kv_heads, "head_dim",
                       c.head_dim, *n),
        CheckStepShape("value", request.value(), "num_kv_heads", c.num_kv_heads, "value_dim",
                       c.value_dim, *n)}) {
    if (!checked.ok()) return checked.status();
  }
  if (request.attention_maps() != pb::ATTENTION_MAPS_DEFAULT) {  // DEFAULT: none here
    absl::StatusOr<MapsWanted> maps = ParseMaps(request.attention_maps());
    if (!maps.ok()) return maps.status();
    out.maps = *maps;
  }
  absl::StatusOr<DType> output_dtype = ParseOutputDtype(request.output_dtype());
  if (!output_dtype.ok()) return output_dtype.status();
  absl::StatusOr<bool> bf16 = ParseBf16Compute(request.compute_dtype());
  if (!bf16.ok()) return bf16.status();
  absl::StatusOr<float> scale = ParseScale(request.has_scale(), request.scale(), c.head_dim);
  if (!scale.ok()) return scale.status();
  absl::StatusOr<FloatTensor> query =
      DecodeFloatTensor("query", request.query(), limits.max_elements);
  if (!query.ok()) return query.status();
  // bf16 keys and values for bf16 pages are kept as they are (the pages take their bits).
  absl::StatusOr<FloatTensor> key =
      DecodeFloatTensor("key", request.key(), limits.max_elements, c.bf16);
  if (!key.ok()) return key.status();
  absl::StatusOr<FloatTensor> value =
      DecodeFloatTensor("value", request.value(), limits.max_elements, c.bf16);
  if (!value.ok()) return value.status();
  out.query = *std::move(query);
  out.key = *std::move(key);
  out.value = *std::move(value);
  out.output_dtype = *output_dtype;
  out.use_values = out.query.used_values;
  out.step = {.layer = request.layer(),
              .query = out.query.data,
              .rows = {.tokens = *n,
                       .key = out.key.data,
                       .value = out.value.data,
                       .key_bf16 = out.key.bf16,
                       .value_bf16 = out.value.bf16},
              .scale = *scale,
              .bf16_compute = *bf16,
              .window_tokens = request.window_tokens()};
  return absl::OkStatus();
}

}  // namespace

SessionTurns::SessionTurns(SessionStore& store, std::span<const std::string* const> ids,
                           const std::string& owner, bool batch) {
  for (size_t i = 0; i < ids.size() && status_.ok(); ++i) {
    const std::string prefix = batch ? absl::StrCat("steps[", i, "].") : "";
    for (size_t j = 0; j < i; ++j) {
      if (*ids[j] == *ids[i]) {
        status_ = absl::InvalidArgumentError(
            absl::StrCat(prefix, "session_id names the session of steps[", j,
                         "] again; a batch takes at most one step per session"));
      }
    }
    if (!status_.ok()) break;
    if (ids[i]->empty()) {
      status_ = absl::InvalidArgumentError(absl::StrCat(prefix, "session_id is empty"));
      break;
    }
    absl::StatusOr<SessionLease> lease = store.Lease(*ids[i], owner);
    if (!lease.ok()) {
      status_ = Prefixed(lease.status(), prefix);
      break;
    }
    leases_.push_back(*std::move(lease));
  }
  if (!status_.ok()) leases_.clear();
  for (SessionLease& lease : leases_) tickets_.push_back(lease->turns.Take());
}

SessionTurns::~SessionTurns() {
  // Turns taken and those still waited for alike (ending an unused ticket lets the next go).
  for (size_t i = 0; i < tickets_.size(); ++i) leases_[i]->turns.End(tickets_[i]);
}

absl::Status SessionTurns::Wait(absl::Time deadline) {
  for (; ended_ < tickets_.size(); ++ended_) {
    absl::Status waited = leases_[ended_]->turns.Wait(tickets_[ended_], deadline);
    if (!waited.ok()) {
      // Wait abandoned this ticket itself; the destructor ends the others.
      tickets_.erase(tickets_.begin() + ended_);
      leases_.erase(leases_.begin() + ended_);
      return waited;
    }
  }
  return absl::OkStatus();
}

int64_t SessionTurns::EstimateBytes(
    std::span<const pb::SessionAttendRequest* const> requests) {
  int64_t bytes = 0;
  for (size_t i = 0; i < leases_.size() && i < requests.size(); ++i) {
    const pb::SessionAttendRequest& r = *requests[i];
    const SessionConfig& c = leases_[i]->config;
    const std::span<const int64_t> q = ShapeOf(r.query());
    const int64_t n = q.size() == 3 ? q[1] : 0;
    int64_t held = 0;
    {
      std::lock_guard lock(leases_[i]->mu);
      if (r.layer() >= 0 && r.layer() < c.num_layers) held = leases_[i]->layers[r.layer()].tokens();
    }
    const int64_t keys = SaturatingSum(held, n);
    // inputs in f32 and the output (staged)
    bytes = SaturatingSum(bytes, SaturatingProduct({n, c.num_heads, c.head_dim + 2 * c.value_dim,
                                                    4}));
    bytes = SaturatingSum(bytes, SaturatingProduct({n, c.num_kv_heads, c.head_dim + c.value_dim,
                                                    4}));
    // maps
    absl::StatusOr<MapsWanted> maps = ParseMaps(r.attention_maps());
    if (r.attention_maps() != pb::ATTENTION_MAPS_DEFAULT && maps.ok()) {
      bytes = SaturatingSum(bytes, SaturatingProduct({maps->count(), c.num_heads, n, keys, 4}));
    }
    // prefill's f32 copy of the layer and the engine's K^T
    if (c.num_heads / c.num_kv_heads * n > AttentionEngine::kFewRows) {
      bytes = SaturatingSum(
          bytes, SaturatingProduct({c.num_kv_heads, keys, 2 * c.head_dim + c.value_dim, 4}));
    }
  }
  return bytes;
}

absl::Status RunSessionSteps(std::span<const pb::SessionAttendRequest* const> requests,
                             SessionTurns& turns, SessionStore& store,
                             const AttentionEngine& engine, const AttendLimits& limits,
                             std::span<SessionAnswer* const> answers, CallContext* call,
                             bool batch) {
  const size_t count = requests.size();
  auto prefix = [batch](size_t i) { return batch ? absl::StrCat("steps[", i, "].") : ""; };
  std::vector<DecodedStep> decoded(count);
  for (size_t i = 0; i < count; ++i) {
    absl::Status s = DecodeStep(*requests[i], turns.session(i).config, limits, decoded[i]);
    if (!s.ok()) return Prefixed(s, prefix(i));
  }
  // The sessions' caches, locked in one order (a batch's sessions are distinct).
  std::vector<KvSession*> sessions;
  for (size_t i = 0; i < count; ++i) sessions.push_back(&turns.session(i));
  std::sort(sessions.begin(), sessions.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  for (KvSession* s : sessions) locks.emplace_back(s->mu);

  std::vector<PlannedStep> planned(count);
  std::vector<std::optional<ResponseWriter>> writers(count);
  int64_t message_bytes = 0;
  double flops = 0;
  for (size_t i = 0; i < count; ++i) {
    KvSession& session = turns.session(i);
    const DecodedStep& step = decoded[i];
    absl::StatusOr<StepPlan> plan = PlanStep(session, step.step);
    if (!plan.ok()) return Prefixed(plan.status(), prefix(i));
    const SessionConfig& c = session.config;
    const int64_t n = step.step.rows.tokens;
    const int64_t output_shape[] = {c.num_heads, n, c.value_dim};
    const int64_t map_shape[] = {c.num_heads, n, plan->keys};
    if (absl::Status s = CheckResponseSize(output_shape, step.output_dtype, map_shape, step.maps,
                                           limits);
        !s.ok()) {
      return Prefixed(s, prefix(i));
    }
    message_bytes = SaturatingSum(
        message_bytes,
        SaturatingSum(SaturatingProduct({c.num_heads, n, c.value_dim, 4}),
                      SaturatingProduct({step.maps.count(), c.num_heads, n, plan->keys, 4})));
    writers[i].emplace(output_shape, step.output_dtype, map_shape, step.maps, step.use_values,
                       &answers[i]->tensors);
    planned[i] = {.session = &session,
                  .step = &step.step,
                  .plan = *plan,
                  .outputs = {.output = writers[i]->output(),
                              .probabilities = writers[i]->probabilities(),
                              .scores = writers[i]->scores()}};
    flops += AttentionFlops({.batch = 1, .heads = c.num_heads, .kv_heads = c.num_kv_heads,
                             .q_len = n, .kv_len = plan->keys, .head_dim = c.head_dim,
                             .value_dim = c.value_dim});
  }
  if (batch && message_bytes > limits.max_message_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the batch's answers would take ", message_bytes,
                     " bytes, over the message limit of ", limits.max_message_bytes,
                     " (--max_message_bytes)"));
  }
  if (absl::Status s = ApplySteps(planned, store, engine,
                                  call != nullptr ? call->stop : StopCheck());
      !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < count; ++i) {
    writers[i]->Finish();
    answers[i]->position = planned[i].plan.position;
    answers[i]->first_position = planned[i].plan.first_position;
  }
  if (call != nullptr) call->flops += flops;
  return absl::OkStatus();
}

std::string DescribeSessionStep(const pb::SessionAttendRequest& request) {
  return absl::StrCat("session=", request.session_id(), " layer=", request.layer(),
                      " q=", ShapeString(ShapeOf(request.query())),
                      " k=", ShapeString(ShapeOf(request.key())),
                      " dtype=", pb::DataType_Name(request.key().dtype()),
                      " maps=", pb::AttentionMaps_Name(request.attention_maps()),
                      " window=", request.window_tokens());
}

}  // namespace attn
