// attn-client decode (see decode.h).
#include "client/decode.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/tensor_codec.h"
#include "src/runtime/dtype.h"

namespace attn {
namespace {

namespace pb = attention::v1;

// Random [heads, n, dim] rows, rounded to bf16 when `round` (what bf16 pages hold).
std::vector<float> RandomRows(int64_t heads, int64_t n, int64_t dim, bool round,
                              std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> rows(heads * n * dim);
  for (float& x : rows) x = round ? BFloat16ToFloat(FloatToBFloat16(normal(rng))) : normal(rng);
  return rows;
}

void Encode(std::vector<int64_t> shape, const std::vector<float>& values, pb::Tensor* tensor) {
  EncodeFloatTensor(shape, values.data(), DType::kFloat32, false, tensor);
}

// Appends [heads, n, dim] rows to the [heads, past, dim] ones of `all`.
void AppendRows(const std::vector<float>& rows, int64_t heads, int64_t n, int64_t dim,
                std::vector<float>& all) {
  const int64_t past = static_cast<int64_t>(all.size()) / (heads * dim);
  std::vector<float> grown((past + n) * heads * dim);
  for (int64_t h = 0; h < heads; ++h) {
    std::copy_n(all.data() + h * past * dim, past * dim, grown.data() + h * (past + n) * dim);
    std::copy_n(rows.data() + h * n * dim, n * dim, grown.data() + (h * (past + n) + past) * dim);
  }
  all.swap(grown);
}

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// pb::CreateSessionRequest of `options` with a fresh id, holding up to `max_tokens`.
pb::CreateSessionRequest SessionRequest(const DecodeOptions& o, int64_t max_tokens) {
  pb::CreateSessionRequest request;
  request.set_session_id(AttentionClient::NewSessionId());
  request.set_num_layers(1);
  request.set_num_heads(static_cast<int32_t>(o.heads));
  request.set_num_kv_heads(static_cast<int32_t>(o.kv_heads));
  request.set_head_dim(static_cast<int32_t>(o.head_dim));
  request.set_kv_dtype(o.bf16_pages ? pb::DATA_TYPE_BFLOAT16 : pb::DATA_TYPE_FLOAT32);
  request.set_max_tokens(max_tokens);
  return request;
}

// A step of n random tokens of session `id`.
pb::SessionAttendRequest StepRequest(const DecodeOptions& o, const std::string& id, int64_t n,
                                     std::mt19937& rng) {
  pb::SessionAttendRequest request;
  request.set_session_id(id);
  Encode({o.heads, n, o.head_dim}, RandomRows(o.heads, n, o.head_dim, false, rng),
         request.mutable_query());
  Encode({o.kv_heads, n, o.head_dim}, RandomRows(o.kv_heads, n, o.head_dim, o.bf16_pages, rng),
         request.mutable_key());
  Encode({o.kv_heads, n, o.head_dim}, RandomRows(o.kv_heads, n, o.head_dim, o.bf16_pages, rng),
         request.mutable_value());
  return request;
}

class Decoder {
 public:
  Decoder(const AttentionClient& client, const DecodeOptions& options)
      : client_(client), o_(options), rng_(options.seed) {}

  absl::Status Open() {
    absl::StatusOr<pb::Session> session =
        client_.CreateSession(SessionRequest(o_, o_.prefill + o_.steps));
    if (!session.ok()) return session.status();
    id_ = session->session_id();
    return absl::OkStatus();
  }

  void Close() {
    if (!id_.empty()) client_.CloseSession(id_).IgnoreError();  // it expires anyway
  }

  // One step of n new tokens, timed; checked against stateless Attend with verify.
  absl::Status Step(int64_t n, double* ms) {
    const int64_t h = o_.heads, hkv = o_.kv_heads, d = o_.head_dim;
    const std::vector<float> q = RandomRows(h, n, d, false, rng_);
    const std::vector<float> k = RandomRows(hkv, n, d, o_.bf16_pages, rng_);
    const std::vector<float> v = RandomRows(hkv, n, d, o_.bf16_pages, rng_);
    pb::SessionAttendRequest request;
    request.set_session_id(id_);
    Encode({h, n, d}, q, request.mutable_query());
    Encode({hkv, n, d}, k, request.mutable_key());
    Encode({hkv, n, d}, v, request.mutable_value());
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<pb::SessionAttendResponse> answer = client_.SessionAttend(request);
    *ms = MillisecondsSince(start);
    if (!answer.ok()) return answer.status();
    report_.step_wire_bytes =
        static_cast<int64_t>(request.ByteSizeLong() + answer->ByteSizeLong());
    AppendRows(k, hkv, n, d, keys_);
    AppendRows(v, hkv, n, d, values_);
    report_.tokens += n;
    return o_.verify ? Check(q, n, *answer) : absl::OkStatus();
  }

  DecodeReport& report() { return report_; }

 private:
  absl::Status Check(const std::vector<float>& q, int64_t n,
                     const pb::SessionAttendResponse& answer) {
    const int64_t h = o_.heads, hkv = o_.kv_heads, d = o_.head_dim, t = report_.tokens;
    pb::AttendRequest request;
    Encode({1, h, n, d}, q, request.mutable_query());
    Encode({1, hkv, t, d}, keys_, request.mutable_key());
    Encode({1, hkv, t, d}, values_, request.mutable_value());
    request.mutable_mask()->set_causal(pb::CAUSAL_LOWER_RIGHT);
    request.set_attention_maps(pb::ATTENTION_MAPS_NONE);
    absl::StatusOr<pb::AttendResponse> stateless = client_.Attend(request);
    if (!stateless.ok()) return stateless.status();
    report_.stateless_wire_bytes =
        static_cast<int64_t>(request.ByteSizeLong() + stateless->ByteSizeLong());
    const int64_t count = h * n * d;
    absl::StatusOr<FloatTensor> got = DecodeFloatTensor("output", answer.output(), count);
    absl::StatusOr<FloatTensor> want = DecodeFloatTensor("output", stateless->output(), count);
    if (!got.ok()) return got.status();
    if (!want.ok()) return want.status();
    if (got->count != count || want->count != count) {
      return absl::InternalError(absl::StrCat("step at position ", t - n, ": outputs of ",
                                              got->count, " and ", want->count,
                                              " elements; expected ", count));
    }
    double worst = 0;
    for (int64_t i = 0; i < count; ++i) {
      worst = std::max(worst, std::abs(double{got->data[i]} - want->data[i]));
    }
    report_.max_abs_error = std::max(report_.max_abs_error, worst);
    ++report_.steps_checked;
    if (!(worst <= kDecodeTolerance)) {
      return absl::InternalError(absl::StrCat("step at position ", t - n,
                                              ": max |session - stateless Attend| = ", worst,
                                              " > ", kDecodeTolerance));
    }
    return absl::OkStatus();
  }

  const AttentionClient& client_;
  const DecodeOptions o_;
  std::mt19937 rng_;
  std::string id_;
  std::vector<float> keys_, values_;  // [Hkv, tokens, D]: what stateless Attend resends
  DecodeReport report_;
};

}  // namespace

LoadCall MakeDecodeLoadCall(const AttentionClient& client, const DecodeOptions& options,
                            uint32_t seed, std::string* session_id, int64_t* wire_bytes) {
  std::mt19937 rng(seed);
  absl::StatusOr<pb::Session> session =
      client.CreateSession(SessionRequest(options, options.prefill + kDecodeLoadSteps));
  absl::Status setup = session.status();
  // Prefilled in chunks, each well under the message limit.
  constexpr int64_t kChunk = 256;
  if (setup.ok()) *session_id = session->session_id();
  for (int64_t done = 0; setup.ok() && done < options.prefill; done += kChunk) {
    const int64_t n = std::min(kChunk, options.prefill - done);
    setup = client.SessionAttend(StepRequest(options, *session_id, n, rng)).status();
  }
  if (!setup.ok()) {
    return [setup] { return setup; };
  }
  pb::SessionAttendRequest step = StepRequest(options, *session_id, 1, rng);
  absl::StatusOr<pb::SessionAttendResponse> first = client.SessionAttend(step);
  if (!first.ok()) {
    const absl::Status failed = first.status();
    return [failed] { return failed; };
  }
  *wire_bytes = static_cast<int64_t>(step.ByteSizeLong() + first->ByteSizeLong());
  return [&client, step = std::move(step), id = *session_id, prefill = options.prefill,
          held = options.prefill + 1]() mutable -> absl::Status {
    if (held == prefill + kDecodeLoadSteps) {
      if (absl::Status s = client.TruncateSession(id, prefill).status(); !s.ok()) return s;
      held = prefill;
    }
    absl::Status status = client.SessionAttend(step).status();
    if (status.ok()) ++held;
    return status;
  };
}

absl::StatusOr<DecodeReport> RunDecode(const AttentionClient& client,
                                       const DecodeOptions& options) {
  Decoder decoder(client, options);
  if (absl::Status s = decoder.Open(); !s.ok()) return s;
  absl::Status status = decoder.Step(options.prefill, &decoder.report().prefill_ms);
  std::vector<double> step_ms(options.steps);
  for (int64_t i = 0; i < options.steps && status.ok(); ++i) status = decoder.Step(1, &step_ms[i]);
  decoder.Close();
  if (!status.ok()) return status;
  if (!step_ms.empty()) {
    std::nth_element(step_ms.begin(), step_ms.begin() + step_ms.size() / 2, step_ms.end());
    decoder.report().step_ms_median = step_ms[step_ms.size() / 2];
  }
  return decoder.report();
}

}  // namespace attn
