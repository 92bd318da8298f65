// Parsing of the request fields that Attend and MultiHeadAttend share: shapes for messages, the
// attention_maps and causal enums, scale, output dtype, the mask (viewed in place where it can
// be), and the size checks of the tensors a response would carry. Errors are INVALID_ARGUMENT
// (RESOURCE_EXHAUSTED for limits) naming the field and the numbers. Pure; thread-safe.
#ifndef ATTNSERVE_SERVER_REQUEST_FIELDS_H_
#define ATTNSERVE_SERVER_REQUEST_FIELDS_H_

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "attention/v1/attention.pb.h"
#include "proto/tensor_codec.h"
#include "src/engine/attention_types.h"
#include "src/runtime/dtype.h"

namespace attn {

// Per-call plumbing between the service and a computation.
struct CallContext {
  StopCheck stop;    // asked between chunks; non-OK stops the computation with that status
  double flops = 0;  // floating-point operations of the attention, added by the computation
};

struct AttendLimits {
  int64_t max_elements = 0;       // cap on any single tensor, including the maps produced
  int64_t max_message_bytes = 0;  // cap on the encoded response
};

std::span<const int64_t> ShapeOf(const attention::v1::Tensor& tensor);
std::string ShapeString(std::span<const int64_t> shape);

struct MapsWanted {
  bool probabilities = false;
  bool scores = false;
  int64_t count() const { return int64_t{probabilities} + int64_t{scores}; }
};
absl::StatusOr<MapsWanted> ParseMaps(int attention_maps);

// `has_scale` false -> 1/sqrt(head_dim); otherwise finite and > 0.
absl::StatusOr<float> ParseScale(bool has_scale, float scale, int64_t head_dim);

// output_dtype: FLOAT32, BFLOAT16 or FLOAT16.
absl::StatusOr<DType> ParseOutputDtype(int output_dtype);
// compute_dtype: FLOAT32, or BFLOAT16 (true = compute in bf16); FLOAT16 UNIMPLEMENTED, BOOL
// and unknown values INVALID_ARGUMENT.
absl::StatusOr<bool> ParseBf16Compute(int compute_dtype);

// A decoded mask: `spec` views `allowed`/`bias` (and the request's key_lengths).
struct DecodedMask {
  MaskSpec spec;
  BoolTensor allowed;
  FloatTensor bias;
};
// Checks and decodes `mask` over the scores of `dims` ("mask.*" in messages).
absl::Status DecodeMask(const attention::v1::Mask& mask, const AttentionDims& dims,
                        int64_t max_elements, DecodedMask& out);

// Product of `factors`, saturating at INT64_MAX; 0 when any factor is < 0.
int64_t SaturatingProduct(std::initializer_list<int64_t> factors);
// a + b, saturating at INT64_MAX; a term < 0 counts 0.
int64_t SaturatingSum(int64_t a, int64_t b);

// The engine's scratch for one call: per thread, a block of up to 128 query rows x Sk for the
// mask tile and the scores, in f32.
int64_t EngineScratchBytes(int64_t rows_per_group, int64_t kv_len, int threads);

// 2 * B * H * Sq * Sk * (D + Dv): the multiply-adds of Q K^T and P V.
double AttentionFlops(const AttentionDims& dims);

// The response's output (`output_shape`, `output_dtype`) and maps (`map_shape`, f32) must fit
// --max_elements each and --max_message_bytes together.
absl::Status CheckResponseSize(std::span<const int64_t> output_shape, DType output_dtype,
                               std::span<const int64_t> map_shape, const MapsWanted& maps,
                               const AttendLimits& limits);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_REQUEST_FIELDS_H_
