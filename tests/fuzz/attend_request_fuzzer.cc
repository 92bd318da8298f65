// libFuzzer target for hostile requests: arbitrary bytes parsed as an attention.v1 request and run
// through the server's own admission estimate, validation and compute path (Estimate*Bytes,
// RunAttend, RunMultiHeadAttend) with small limits. The first byte selects the message: even =
// AttendRequest, odd = MultiHeadAttendRequest (a registry holds small named weights "w",
// d_model 8, 2 heads). Any crash, leak or sanitizer report is a finding; error statuses are
// expected answers. Seeds: corpus/ (made by make_corpus.py).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "attention/v1/attention.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "server/attend_call.h"
#include "server/multi_head_call.h"
#include "server/request_fields.h"
#include "server/weights_proto.h"
#include "src/engine/attention_engine.h"
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
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();
  if (size == 0) return 0;
  const bool multi_head = data[0] & 1;
  const void* body = data + 1;
  const int body_size = static_cast<int>(size - 1);
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
