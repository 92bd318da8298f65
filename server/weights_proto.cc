// attention.v1.Weights <-> MultiHeadWeights (see weights_proto.h).
#include "server/weights_proto.h"

#include <array>

#include "proto/tensor_codec.h"
#include "server/request_fields.h"

namespace attn {

namespace pb = attention::v1;

absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> WeightsFromProto(
    const std::string& prefix, const pb::Weights& w, int64_t max_elements) {
  const bool add_norm = w.has_add_norm();
  // Optional tensors count as absent when the message carries nothing for them.
  auto shape = [](const pb::Tensor& t) {
    return IsEmptyTensor(t) ? std::span<const int64_t>() : ShapeOf(t);
  };
  WeightShapes shapes;
  shapes.w_q = shape(w.w_q());
  shapes.w_k = shape(w.w_k());
  shapes.w_v = shape(w.w_v());
  shapes.w_o = shape(w.w_o());
  shapes.b_q = shape(w.b_q());
  shapes.b_k = shape(w.b_k());
  shapes.b_v = shape(w.b_v());
  shapes.b_o = shape(w.b_o());
  if (add_norm) {
    shapes.gamma = shape(w.add_norm().gamma());
    shapes.beta = shape(w.add_norm().beta());
  }
  absl::StatusOr<MultiHeadDims> dims =
      InferMultiHeadDims(prefix, shapes, w.num_heads(), w.num_kv_heads(), add_norm,
                         add_norm ? w.add_norm().epsilon() : 0.0f);
  if (!dims.ok()) return dims.status();

  const std::array<std::pair<const char*, const pb::Tensor*>, 10> tensors = {{
      {"w_q", &w.w_q()}, {"w_k", &w.w_k()}, {"w_v", &w.w_v()}, {"w_o", &w.w_o()},
      {"b_q", &w.b_q()}, {"b_k", &w.b_k()}, {"b_v", &w.b_v()}, {"b_o", &w.b_o()},
      {"add_norm.gamma", &w.add_norm().gamma()}, {"add_norm.beta", &w.add_norm().beta()}}};
  std::array<FloatTensor, 10> decoded;
  std::array<std::span<const float>, 10> values;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (IsEmptyTensor(*tensors[i].second)) continue;
    absl::StatusOr<FloatTensor> tensor =
        DecodeFloatTensor(prefix + tensors[i].first, *tensors[i].second, max_elements);
    if (!tensor.ok()) return tensor.status();
    decoded[i] = *std::move(tensor);
    values[i] = {decoded[i].data, static_cast<size_t>(decoded[i].count)};
  }
  const WeightValues view{.w_q = values[0], .w_k = values[1], .w_v = values[2],
                          .w_o = values[3], .b_q = values[4], .b_k = values[5],
                          .b_v = values[6], .b_o = values[7], .gamma = values[8],
                          .beta = values[9]};
  return MultiHeadWeights::Create(*dims, view);
}

void FillWeightsInfo(const std::string& name, const MultiHeadWeights& weights,
                     pb::WeightsInfo* info) {
  const MultiHeadDims& d = weights.dims();
  info->set_name(name);
  info->set_num_heads(static_cast<int32_t>(d.num_heads));
  info->set_num_kv_heads(static_cast<int32_t>(d.num_kv_heads));
  info->set_d_model(d.d_model);
  info->set_head_dim(d.head_dim);
  info->set_value_dim(d.value_dim);
  info->set_d_out(d.d_out);
  info->set_bytes(weights.bytes());
}

}  // namespace attn
