// Error measures the numerical tests share: the worst absolute error and the normwise error of
// f32 results against a reference. A NaN result, a size mismatch or a wrong infinity (a masked
// score must be -inf exactly) counts as an infinite error, so it always fails a bound.
#ifndef ATTNSERVE_TESTS_NUMERIC_ERROR_H_
#define ATTNSERVE_TESTS_NUMERIC_ERROR_H_

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace attn {

// max |got[i] - want[i]|, leaving out the elements where want is 0 when `skip_zeros`.
template <typename Want>
double MaxAbsError(const std::vector<float>& got, const std::vector<Want>& want,
                   bool skip_zeros = false) {
  constexpr double kInfinite = std::numeric_limits<double>::infinity();
  if (got.size() != want.size()) return kInfinite;
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = got[i], w = want[i];
    if (std::isnan(g)) return kInfinite;
    if (std::isinf(w)) {
      if (g != w) return kInfinite;
      continue;
    }
    if (skip_zeros && w == 0.0) continue;
    worst = std::max(worst, std::abs(g - w));
  }
  return worst;
}

// The normwise error: MaxAbsError (with `skip_zeros` as there) / the largest finite |want|.
template <typename Want>
double NormwiseError(const std::vector<float>& got, const std::vector<Want>& want,
                     bool skip_zeros = false) {
  double largest = 1e-30;
  for (const Want& w : want) {
    if (std::isfinite(double(w))) largest = std::max(largest, std::abs(double(w)));
  }
  return MaxAbsError(got, want, skip_zeros) / largest;
}

}  // namespace attn

#endif  // ATTNSERVE_TESTS_NUMERIC_ERROR_H_
