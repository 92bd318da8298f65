// Verification of Attend answers against the double reference (see verify.h).
#include "client/verify.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/tensor_codec.h"
#include "src/reference/reference_attention.h"

namespace attn {
namespace {

namespace pb = attention::v1;

constexpr double kAbsTolerance = 1e-4;
constexpr double kReducedRelTolerance = 1e-2;

// The largest finite |x| of `values` (0 when none).
double LargestFinite(const std::vector<double>& values) {
  double largest = 0;
  for (double x : values) {
    if (std::isfinite(x)) largest = std::max(largest, std::abs(x));
  }
  return largest;
}

// Compares element-wise: |error| <= relative |want| + absolute; returns the max |error| or
// records the first failure in `report`.
double Compare(const char* name, const pb::Tensor& tensor, const std::vector<double>& want,
               double relative, double absolute, VerifyReport& report) {
  absl::StatusOr<FloatTensor> got = DecodeFloatTensor(name, tensor, int64_t{1} << 40);
  if (!got.ok()) {
    report.ok = false;
    report.failure = got.status().ToString();
    return 0;
  }
  if (got->count != static_cast<int64_t>(want.size())) {
    report.ok = false;
    report.failure = absl::StrCat(name, " has ", got->count, " elements, expected ", want.size());
    return 0;
  }
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got->data[i];
    if (std::isinf(want[i]) || std::isinf(g)) {
      if (g != want[i] && report.ok) {
        report.ok = false;
        report.failure = absl::StrCat(name, "[", i, "] = ", g, " but the reference has ", want[i]);
      }
      continue;
    }
    const double error = std::abs(g - want[i]);
    worst = std::max(worst, std::isnan(error) ? INFINITY : error);
    if (!(error <= relative * std::abs(want[i]) + absolute) && report.ok) {
      report.ok = false;
      report.failure = absl::StrCat(name, "[", i, "] = ", g, " but the reference has ", want[i]);
    }
  }
  return worst;
}

}  // namespace

VerifyReport VerifyAttend(const RandomAttend& sent, const pb::AttendResponse& got) {
  AttentionInputs inputs;
  inputs.dims = sent.spec.dims;
  inputs.query = sent.query.data();
  inputs.key = sent.key.data();
  inputs.value = sent.value.data();
  inputs.scale = static_cast<float>(1.0 / std::sqrt(double(inputs.dims.head_dim)));
  inputs.mask.causal = sent.spec.causal == pb::CAUSAL_UPPER_LEFT    ? CausalKind::kUpperLeft
                       : sent.spec.causal == pb::CAUSAL_LOWER_RIGHT ? CausalKind::kLowerRight
                                                                    : CausalKind::kNone;
  const ReferenceResult want = ReferenceAttention(inputs);

  VerifyReport report;
  const double output_relative = sent.spec.dtype == DType::kFloat32 ? 0.0 : kReducedRelTolerance;
  // The bound of each tensor: bf16 compute's error is relative to the tensor's largest value.
  auto absolute = [&](const std::vector<double>& want_values) {
    return kAbsTolerance +
           (sent.spec.bf16_compute ? kReducedRelTolerance * LargestFinite(want_values) : 0.0);
  };
  report.output_max_abs_error = Compare("output", got.output(), want.output, output_relative,
                                        absolute(want.output), report);
  const pb::AttentionMaps maps = sent.spec.maps;
  const bool want_probabilities = maps == pb::ATTENTION_MAPS_DEFAULT ||
                                  maps == pb::ATTENTION_MAPS_PROBABILITIES ||
                                  maps == pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES;
  const bool want_scores =
      maps == pb::ATTENTION_MAPS_SCORES || maps == pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES;
  if (want_probabilities) {
    report.probabilities_max_abs_error =
        Compare("attention", got.attention(), want.probabilities, 0.0,
                absolute(want.probabilities), report);
  } else if (got.has_attention() && report.ok) {
    report.ok = false;
    report.failure = "attention was returned but not asked for";
  }
  if (want_scores) {
    report.scores_max_abs_error =
        Compare("scores", got.scores(), want.scores, 0.0, absolute(want.scores), report);
  } else if (got.has_scores() && report.ok) {
    report.ok = false;
    report.failure = "scores were returned but not asked for";
  }
  return report;
}

}  // namespace attn
