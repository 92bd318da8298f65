// Flags of a random AttendRequest (see attend_flags.h).
#include "client/attend_flags.h"

#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::optional<std::string>, shape, std::nullopt,
          "attend, bench: B,H,Sq,Sk,D (default 1,8,128,128,64); heatmap: random inputs of this "
          "shape instead of the demo");
ABSL_FLAG(int64_t, kv_heads, 0, "key/value heads (0 = H; H must be a multiple)");
ABSL_FLAG(int64_t, value_dim, 0, "attend, bench: value head size Dv (0 = D)");
ABSL_FLAG(std::string, causal, "none", "none, upper_left or lower_right");
ABSL_FLAG(std::string, maps, "probabilities",
          "attend, bench: none, probabilities, scores or both");
ABSL_FLAG(std::string, dtype, "f32", "attend, bench: f32, bf16 or f16 (inputs and output)");
ABSL_FLAG(std::string, compute, "f32", "attend, bench: f32 or bf16 (the compute_dtype asked for)");
ABSL_FLAG(uint32_t, seed, 1, "random seed");

namespace attn {

namespace pb = attention::v1;

absl::StatusOr<pb::Causal> CausalFromFlag() {
  const std::string causal = absl::GetFlag(FLAGS_causal);
  if (causal == "none") return pb::CAUSAL_NONE;
  if (causal == "upper_left") return pb::CAUSAL_UPPER_LEFT;
  if (causal == "lower_right") return pb::CAUSAL_LOWER_RIGHT;
  return absl::InvalidArgumentError(
      absl::StrCat("--causal \"", causal, "\": use none, upper_left or lower_right"));
}

absl::StatusOr<RandomAttendSpec> RandomAttendSpecFromFlags() {
  absl::StatusOr<std::vector<int64_t>> shape =
      ParseShapeList(absl::GetFlag(FLAGS_shape).value_or("1,8,128,128,64"));
  if (!shape.ok()) return shape.status();
  RandomAttendSpec spec;
  const std::vector<int64_t>& s = *shape;
  const int64_t kv_heads = absl::GetFlag(FLAGS_kv_heads);
  const int64_t value_dim = absl::GetFlag(FLAGS_value_dim);
  spec.dims = {.batch = s[0], .heads = s[1], .kv_heads = kv_heads > 0 ? kv_heads : s[1],
               .q_len = s[2], .kv_len = s[3], .head_dim = s[4],
               .value_dim = value_dim > 0 ? value_dim : s[4]};
  absl::StatusOr<pb::Causal> causal = CausalFromFlag();
  if (!causal.ok()) return causal.status();
  spec.causal = *causal;
  const std::string maps = absl::GetFlag(FLAGS_maps);
  if (maps == "none") {
    spec.maps = pb::ATTENTION_MAPS_NONE;
  } else if (maps == "probabilities") {
    spec.maps = pb::ATTENTION_MAPS_PROBABILITIES;
  } else if (maps == "scores") {
    spec.maps = pb::ATTENTION_MAPS_SCORES;
  } else if (maps == "both") {
    spec.maps = pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--maps \"", maps, "\": use none, probabilities, scores or both"));
  }
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  if (dtype == "f32") {
    spec.dtype = DType::kFloat32;
  } else if (dtype == "bf16") {
    spec.dtype = DType::kBFloat16;
  } else if (dtype == "f16") {
    spec.dtype = DType::kFloat16;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--dtype \"", dtype, "\": use f32, bf16 or f16"));
  }
  const std::string compute = absl::GetFlag(FLAGS_compute);
  if (compute != "f32" && compute != "bf16") {
    return absl::InvalidArgumentError(absl::StrCat("--compute \"", compute, "\": use f32 or bf16"));
  }
  spec.bf16_compute = compute == "bf16";
  spec.seed = absl::GetFlag(FLAGS_seed);
  return spec;
}

}  // namespace attn
