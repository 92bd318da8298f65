// Conversion between attention.v1.Tensor messages and the engine's f32/bool buffers, shared by
// the server and the clients. Decoding validates everything a caller controls (dtype enum, data
// vs values, byte length vs shape, element caps) before allocating; errors are
// INVALID_ARGUMENT (RESOURCE_EXHAUSTED for the element cap) naming the field and the numbers.
// Pure functions; thread-safe.
#ifndef ATTNSERVE_PROTO_TENSOR_CODEC_H_
#define ATTNSERVE_PROTO_TENSOR_CODEC_H_

#include <cstdint>
#include <span>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/statusor.h"
#include "attention/v1/attention.pb.h"
#include "src/runtime/dtype.h"

namespace attn {

// UNSPECIFIED -> kFloat32; values outside the enum -> INVALID_ARGUMENT naming `field`.
absl::StatusOr<DType> DTypeFromProto(absl::string_view field, int proto_dtype);
attention::v1::DataType DTypeToProto(DType dtype);

// True when the message carries no shape, data or values (an absent optional tensor).
bool IsEmptyTensor(const attention::v1::Tensor& tensor);

// A decoded f32 tensor: `data` points into the message when it already holds f32 (no copy),
// otherwise into `storage`. Or, when bfloat16 was asked to stay bfloat16, `bf16` points into
// the message (into `bf16_storage` when its bytes are not 2-byte aligned) and `data` is null.
// Valid while the message and this object live; do not copy it.
struct FloatTensor {
  std::vector<int64_t> shape;
  int64_t count = 0;
  DType source_dtype = DType::kFloat32;
  bool used_values = false;
  const float* data = nullptr;
  std::vector<float> storage;
  const uint16_t* bf16 = nullptr;
  std::vector<uint16_t> bf16_storage;
};

// Decodes a float tensor (FLOAT32/BFLOAT16/FLOAT16 in `data`, or `values`); BFLOAT16 `data`
// stays bfloat16 when `keep_bf16`. Rejects: unknown or BOOL dtype, both or neither of
// data/values, `values` with a non-f32 dtype, dims < 1, int64 overflow, more than
// `max_elements` elements (RESOURCE_EXHAUSTED), data length != count x size.
absl::StatusOr<FloatTensor> DecodeFloatTensor(absl::string_view field,
                                              const attention::v1::Tensor& tensor,
                                              int64_t max_elements, bool keep_bf16 = false);

// A decoded BOOL tensor, one byte per element (nonzero = true).
struct BoolTensor {
  std::vector<int64_t> shape;
  int64_t count = 0;
  const uint8_t* data = nullptr;
  std::vector<uint8_t> storage;
};

// Decodes a BOOL tensor from `data` (one byte per element) or `values` (nonzero = true).
absl::StatusOr<BoolTensor> DecodeBoolTensor(absl::string_view field,
                                            const attention::v1::Tensor& tensor,
                                            int64_t max_elements);

// Sets `tensor` to `shape` and `dtype` with room for the elements, and returns where to write
// them as f32: straight into `values` (when `use_values`) or into `data` (FLOAT32 only; not
// zeroed: the caller writes every element).
// For BFLOAT16/FLOAT16 `data`, use EncodeFloatTensor instead.
float* ReserveFloatOutput(std::span<const int64_t> shape, bool use_values,
                          attention::v1::Tensor* tensor);

// Writes `src` (count = product of `shape`) into `tensor` as `dtype` in `data`, or as f32
// `values` when `use_values`.
void EncodeFloatTensor(std::span<const int64_t> shape, const float* src, DType dtype,
                       bool use_values, attention::v1::Tensor* tensor);

}  // namespace attn

#endif  // ATTNSERVE_PROTO_TENSOR_CODEC_H_
