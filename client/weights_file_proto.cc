// A safetensors weights file as an attention.v1.Weights message (see weights_file_proto.h).
#include "client/weights_file_proto.h"

#include "proto/tensor_codec.h"
#include "src/weights/safetensors.h"
#include "src/weights/weights_file.h"

namespace attn {

absl::StatusOr<attention::v1::Weights> WeightsProtoFromFile(const std::string& path) {
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path, int64_t{1} << 34);
  if (!file.ok()) return file.status();
  absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> checked = WeightsFromSafetensors(*file);
  if (!checked.ok()) return checked.status();
  const MultiHeadDims& dims = (*checked)->dims();
  attention::v1::Weights weights;
  weights.set_num_heads(static_cast<int32_t>(dims.num_heads));
  weights.set_num_kv_heads(static_cast<int32_t>(dims.num_kv_heads));
  auto copy = [&](const char* name, attention::v1::Tensor* tensor) {
    auto it = file->tensors.find(name);
    if (it == file->tensors.end()) return;
    const std::vector<float> values = file->ToFloat(it->second);
    EncodeFloatTensor(it->second.shape, values.data(), DType::kFloat32, false, tensor);
  };
  copy("w_q", weights.mutable_w_q());
  copy("w_k", weights.mutable_w_k());
  copy("w_v", weights.mutable_w_v());
  copy("w_o", weights.mutable_w_o());
  copy("b_q", weights.mutable_b_q());
  copy("b_k", weights.mutable_b_k());
  copy("b_v", weights.mutable_b_v());
  copy("b_o", weights.mutable_b_o());
  if (dims.has_add_norm) {
    copy("add_norm.gamma", weights.mutable_add_norm()->mutable_gamma());
    copy("add_norm.beta", weights.mutable_add_norm()->mutable_beta());
    weights.mutable_add_norm()->set_epsilon(dims.epsilon);
  }
  return weights;
}

}  // namespace attn
