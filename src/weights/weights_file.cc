// Weight sets from safetensors files (see weights_file.h).
#include "src/weights/weights_file.h"

#include <array>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace attn {
namespace {

constexpr std::array<const char*, 10> kTensorNames = {
    "w_q", "w_k", "w_v", "w_o", "b_q", "b_k", "b_v", "b_o", "add_norm.gamma", "add_norm.beta"};

absl::StatusOr<int64_t> MetadataInt(const SafetensorsFile& file, const std::string& key,
                                    int64_t fallback) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end()) {
    if (fallback >= 0) return fallback;
    return absl::InvalidArgumentError(absl::StrCat("__metadata__ has no \"", key, "\""));
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("__metadata__[\"", key, "\"] = \"", it->second, "\" is not an integer"));
  }
  return value;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> WeightsFromSafetensors(
    const SafetensorsFile& file) {
  for (const auto& [name, tensor] : file.tensors) {
    bool known = false;
    for (const char* k : kTensorNames) known = known || name == k;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown tensor \"", name, "\"; expected w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, "
          "add_norm.gamma, add_norm.beta"));
    }
    if (tensor.shape.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" is a scalar"));
    }
  }
  absl::StatusOr<int64_t> heads = MetadataInt(file, "num_heads", -1);
  if (!heads.ok()) return heads.status();
  absl::StatusOr<int64_t> kv_heads = MetadataInt(file, "num_kv_heads", 0);
  if (!kv_heads.ok()) return kv_heads.status();
  const bool add_norm = file.tensors.contains("add_norm.gamma") ||
                        file.tensors.contains("add_norm.beta");
  float epsilon = 0.0f;
  if (add_norm) {
    auto it = file.metadata.find("add_norm.epsilon");
    if (it == file.metadata.end() || !absl::SimpleAtof(it->second, &epsilon)) {
      return absl::InvalidArgumentError(
          "add_norm.gamma is present but __metadata__[\"add_norm.epsilon\"] is missing or not a "
          "number");
    }
  }

  auto shape_of = [&](const char* name) -> std::span<const int64_t> {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) return {};
    return it->second.shape;
  };
  WeightShapes shapes;
  shapes.w_q = shape_of("w_q");
  shapes.w_k = shape_of("w_k");
  shapes.w_v = shape_of("w_v");
  shapes.w_o = shape_of("w_o");
  shapes.b_q = shape_of("b_q");
  shapes.b_k = shape_of("b_k");
  shapes.b_v = shape_of("b_v");
  shapes.b_o = shape_of("b_o");
  shapes.gamma = shape_of("add_norm.gamma");
  shapes.beta = shape_of("add_norm.beta");
  absl::StatusOr<MultiHeadDims> dims =
      InferMultiHeadDims("", shapes, *heads, *kv_heads, add_norm, epsilon);
  if (!dims.ok()) return dims.status();

  std::array<std::vector<float>, kTensorNames.size()> values;
  for (size_t i = 0; i < kTensorNames.size(); ++i) {
    auto it = file.tensors.find(kTensorNames[i]);
    if (it != file.tensors.end()) values[i] = file.ToFloat(it->second);
  }
  const WeightValues view{.w_q = values[0], .w_k = values[1], .w_v = values[2],
                          .w_o = values[3], .b_q = values[4], .b_k = values[5],
                          .b_v = values[6], .b_o = values[7], .gamma = values[8],
                          .beta = values[9]};
  return MultiHeadWeights::Create(*dims, view);
}

absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> LoadWeightsFile(const std::string& path,
                                                                        int64_t max_bytes) {
  absl::StatusOr<SafetensorsFile> file = ReadSafetensors(path, max_bytes);
  if (!file.ok()) return file.status();
  return WeightsFromSafetensors(*file);
}

}  // namespace attn
