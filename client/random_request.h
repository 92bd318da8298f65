// Builds AttendRequests of a given shape from seeded N(0,1) numbers, and keeps the inputs exactly
// as the server will see them (after rounding to the wire dtype) so answers can be verified.
// Pure functions; thread-safe.
#ifndef ATTNSERVE_CLIENT_RANDOM_REQUEST_H_
#define ATTNSERVE_CLIENT_RANDOM_REQUEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "attention/v1/attention.pb.h"
#include "src/engine/attention_types.h"
#include "src/runtime/dtype.h"

namespace attn {

struct RandomAttendSpec {
  AttentionDims dims;
  attention::v1::Causal causal = attention::v1::CAUSAL_NONE;
  attention::v1::AttentionMaps maps = attention::v1::ATTENTION_MAPS_DEFAULT;
  DType dtype = DType::kFloat32;  // wire dtype of the inputs and of the output
  bool bf16_compute = false;      // compute_dtype BFLOAT16
  uint32_t seed = 1;
};

struct RandomAttend {
  RandomAttendSpec spec;
  attention::v1::AttendRequest request;
  std::vector<float> query, key, value;  // the values the server receives
};

// "B,H,Sq,Sk,D" -> five positive numbers.
absl::StatusOr<std::vector<int64_t>> ParseShapeList(const std::string& text);
RandomAttend MakeRandomAttend(const RandomAttendSpec& spec);
// "B=1 H=12 Hkv=12 Sq=128 Sk=128 D=64 Dv=64 causal=CAUSAL_NONE maps=... dtype=f32" (and
// " compute=bf16" when asked).
std::string DescribeRandomAttend(const RandomAttendSpec& spec);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_RANDOM_REQUEST_H_
