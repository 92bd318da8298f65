// Seeded random AttendRequests (see random_request.h).
#include "client/random_request.h"

#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "proto/tensor_codec.h"

namespace attn {
namespace {

namespace pb = attention::v1;

// N(0,1) numbers rounded to `dtype`, so that what is sent is exactly what is kept.
std::vector<float> RandomValues(int64_t count, DType dtype, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(count);
  std::vector<uint8_t> encoded(count * DTypeSize(dtype));
  for (float& v : values) v = normal(rng);
  EncodeFromFloat(values.data(), count, dtype, encoded.data());
  DecodeToFloat(dtype, encoded.data(), count, values.data());
  return values;
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> ParseShapeList(const std::string& text) {
  std::vector<int64_t> dims;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t dim = 0;
    if (!absl::SimpleAtoi(part, &dim) || dim < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shape \"", text, "\": \"", part, "\" is not a positive integer"));
    }
    dims.push_back(dim);
  }
  if (dims.size() != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shape \"", text, "\" must be B,H,Sq,Sk,D (5 numbers)"));
  }
  return dims;
}

RandomAttend MakeRandomAttend(const RandomAttendSpec& spec) {
  const AttentionDims& d = spec.dims;
  std::mt19937 rng(spec.seed);
  RandomAttend out;
  out.spec = spec;
  out.query = RandomValues(d.batch * d.heads * d.q_len * d.head_dim, spec.dtype, rng);
  out.key = RandomValues(d.batch * d.kv_heads * d.kv_len * d.head_dim, spec.dtype, rng);
  out.value = RandomValues(d.batch * d.kv_heads * d.kv_len * d.value_dim, spec.dtype, rng);
  const int64_t q_shape[] = {d.batch, d.heads, d.q_len, d.head_dim};
  const int64_t k_shape[] = {d.batch, d.kv_heads, d.kv_len, d.head_dim};
  const int64_t v_shape[] = {d.batch, d.kv_heads, d.kv_len, d.value_dim};
  EncodeFloatTensor(q_shape, out.query.data(), spec.dtype, false, out.request.mutable_query());
  EncodeFloatTensor(k_shape, out.key.data(), spec.dtype, false, out.request.mutable_key());
  EncodeFloatTensor(v_shape, out.value.data(), spec.dtype, false, out.request.mutable_value());
  out.request.mutable_mask()->set_causal(spec.causal);
  out.request.set_attention_maps(spec.maps);
  out.request.set_output_dtype(DTypeToProto(spec.dtype));
  if (spec.bf16_compute) out.request.set_compute_dtype(pb::DATA_TYPE_BFLOAT16);
  return out;
}

std::string DescribeRandomAttend(const RandomAttendSpec& spec) {
  const AttentionDims& d = spec.dims;
  return absl::StrCat("B=", d.batch, " H=", d.heads, " Hkv=", d.kv_heads, " Sq=", d.q_len,
                      " Sk=", d.kv_len, " D=", d.head_dim, " Dv=", d.value_dim,
                      " causal=", pb::Causal_Name(spec.causal),
                      " maps=", pb::AttentionMaps_Name(spec.maps),
                      " dtype=", std::string(DTypeName(spec.dtype)),
                      spec.bf16_compute ? " compute=bf16" : "");
}

}  // namespace attn
