// Conversion between attention.v1.Tensor and engine buffers (see tensor_codec.h).
#include "proto/tensor_codec.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/uninitialized_resize.h"
#include "src/engine/attention_shapes.h"

namespace attn {
namespace {

namespace pb = attention::v1;

std::string ShapeString(const pb::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.shape(), ","), "]");
}

// Checks shape, element cap and exactly-one-of data/values; returns the element count.
absl::StatusOr<int64_t> CheckLayout(absl::string_view field, const pb::Tensor& tensor,
                                    int64_t max_elements) {
  const std::span<const int64_t> shape(tensor.shape().data(), tensor.shape().size());
  absl::StatusOr<int64_t> count = CheckedElementCount(absl::StrCat(field, ".shape"), shape);
  if (!count.ok()) {
    if (tensor.shape().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, " is missing (no shape)"));
    }
    return count.status();
  }
  if (*count > max_elements) {
    return absl::ResourceExhaustedError(absl::StrCat(field, " has ", *count, " elements (shape ",
                                                     ShapeString(tensor), "), over the limit of ",
                                                     max_elements, " (--max_elements)"));
  }
  const bool has_data = !tensor.data().empty();
  const bool has_values = tensor.values_size() > 0;
  if (has_data && has_values) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " sets both data and values; set exactly one"));
  }
  if (!has_data && !has_values) {
    return absl::InvalidArgumentError(absl::StrCat(field, " has shape ", ShapeString(tensor),
                                                   " but neither data nor values"));
  }
  if (has_values && tensor.values_size() != *count) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".values has ", tensor.values_size(),
                                                   " numbers but shape ", ShapeString(tensor),
                                                   " needs ", *count));
  }
  return *count;
}

absl::Status CheckDataBytes(absl::string_view field, const pb::Tensor& tensor, int64_t count,
                            DType dtype) {
  const int64_t expected = count * DTypeSize(dtype);
  if (static_cast<int64_t>(tensor.data().size()) != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".data has ", tensor.data().size(), " bytes but shape ", ShapeString(tensor),
        " of ", std::string(DTypeName(dtype)), " needs ", expected));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DType> DTypeFromProto(absl::string_view field, int proto_dtype) {
  switch (proto_dtype) {
    case pb::DATA_TYPE_UNSPECIFIED:
    case pb::DATA_TYPE_FLOAT32:
      return DType::kFloat32;
    case pb::DATA_TYPE_BFLOAT16:
      return DType::kBFloat16;
    case pb::DATA_TYPE_FLOAT16:
      return DType::kFloat16;
    case pb::DATA_TYPE_BOOL:
      return DType::kBool;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, " = ", proto_dtype, " is not a DataType"));
  }
}

pb::DataType DTypeToProto(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return pb::DATA_TYPE_FLOAT32;
    case DType::kBFloat16:
      return pb::DATA_TYPE_BFLOAT16;
    case DType::kFloat16:
      return pb::DATA_TYPE_FLOAT16;
    case DType::kBool:
      return pb::DATA_TYPE_BOOL;
  }
  return pb::DATA_TYPE_UNSPECIFIED;
}

bool IsEmptyTensor(const pb::Tensor& tensor) {
  return tensor.shape().empty() && tensor.data().empty() && tensor.values().empty();
}

absl::StatusOr<FloatTensor> DecodeFloatTensor(absl::string_view field, const pb::Tensor& tensor,
                                              int64_t max_elements, bool keep_bf16) {
  absl::StatusOr<DType> dtype = DTypeFromProto(absl::StrCat(field, ".dtype"), tensor.dtype());
  if (!dtype.ok()) return dtype.status();
  if (*dtype == DType::kBool) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".dtype = BOOL but a float tensor (FLOAT32, BFLOAT16, FLOAT16) is needed"));
  }
  absl::StatusOr<int64_t> count = CheckLayout(field, tensor, max_elements);
  if (!count.ok()) return count.status();

  FloatTensor out;
  out.shape.assign(tensor.shape().begin(), tensor.shape().end());
  out.count = *count;
  out.source_dtype = *dtype;
  if (tensor.values_size() > 0) {
    if (*dtype != DType::kFloat32) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".values holds float32 numbers but ", field, ".dtype = ", std::string(DTypeName(*dtype)),
          "; send ", std::string(DTypeName(*dtype)), " in data, or leave dtype FLOAT32"));
    }
    out.used_values = true;
    out.data = tensor.values().data();
    return out;
  }
  if (absl::Status s = CheckDataBytes(field, tensor, *count, *dtype); !s.ok()) return s;
  const void* bytes = tensor.data().data();
  if (*dtype == DType::kFloat32 && reinterpret_cast<uintptr_t>(bytes) % alignof(float) == 0) {
    out.data = static_cast<const float*>(bytes);
    return out;
  }
  if (*dtype == DType::kBFloat16 && keep_bf16) {
    if (reinterpret_cast<uintptr_t>(bytes) % alignof(uint16_t) == 0) {
      out.bf16 = static_cast<const uint16_t*>(bytes);
    } else {
      out.bf16_storage.resize(*count);
      std::memcpy(out.bf16_storage.data(), bytes, *count * sizeof(uint16_t));
      out.bf16 = out.bf16_storage.data();
    }
    return out;
  }
  out.storage.resize(*count);
  DecodeToFloat(*dtype, bytes, *count, out.storage.data());
  out.data = out.storage.data();
  return out;
}

absl::StatusOr<BoolTensor> DecodeBoolTensor(absl::string_view field, const pb::Tensor& tensor,
                                            int64_t max_elements) {
  absl::StatusOr<DType> dtype = DTypeFromProto(absl::StrCat(field, ".dtype"), tensor.dtype());
  if (!dtype.ok()) return dtype.status();
  if (*dtype != DType::kBool) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".dtype = ", std::string(DTypeName(*dtype)),
                                                   " but a BOOL tensor is needed"));
  }
  absl::StatusOr<int64_t> count = CheckLayout(field, tensor, max_elements);
  if (!count.ok()) return count.status();

  BoolTensor out;
  out.shape.assign(tensor.shape().begin(), tensor.shape().end());
  out.count = *count;
  if (tensor.values_size() > 0) {
    out.storage.resize(*count);
    for (int64_t i = 0; i < *count; ++i) out.storage[i] = tensor.values(i) != 0.0f ? 1 : 0;
    out.data = out.storage.data();
    return out;
  }
  if (absl::Status s = CheckDataBytes(field, tensor, *count, DType::kBool); !s.ok()) return s;
  out.data = reinterpret_cast<const uint8_t*>(tensor.data().data());
  return out;
}

float* ReserveFloatOutput(std::span<const int64_t> shape, bool use_values, pb::Tensor* tensor) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  tensor->mutable_shape()->Assign(shape.begin(), shape.end());
  tensor->set_dtype(pb::DATA_TYPE_FLOAT32);
  if (use_values) {
    tensor->mutable_values()->Resize(static_cast<int>(count), 0.0f);
    return tensor->mutable_values()->mutable_data();
  }
  std::string* data = tensor->mutable_data();
  ResizeUninitialized(data, count * sizeof(float));  // the caller writes every element
  return reinterpret_cast<float*>(data->data());
}

void EncodeFloatTensor(std::span<const int64_t> shape, const float* src, DType dtype,
                       bool use_values, pb::Tensor* tensor) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  if (use_values || dtype == DType::kFloat32) {
    std::memcpy(ReserveFloatOutput(shape, use_values, tensor), src, count * sizeof(float));
    return;
  }
  tensor->mutable_shape()->Assign(shape.begin(), shape.end());
  tensor->set_dtype(DTypeToProto(dtype));
  std::string* data = tensor->mutable_data();
  data->resize(count * DTypeSize(dtype));
  EncodeFromFloat(src, count, dtype, data->data());
}

}  // namespace attn
