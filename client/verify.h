// Checks an AttendResponse against the double-precision reference computed on the exact inputs
// that were sent. Tolerances: output max |err| <= 1e-4 in f32; for bf16/f16 output
// |err| <= 1e-2 |want| + 1e-4 (rounding of the answer); maps max |err| <= 1e-4, and scores -inf
// exactly where the reference forbids. Computed in bf16, each tensor's bound grows by 1e-2 of
// its largest finite value. Pure function; thread-safe.
#ifndef ATTNSERVE_CLIENT_VERIFY_H_
#define ATTNSERVE_CLIENT_VERIFY_H_

#include <string>

#include "attention/v1/attention.pb.h"
#include "client/random_request.h"

namespace attn {

struct VerifyReport {
  bool ok = true;
  double output_max_abs_error = 0;
  double probabilities_max_abs_error = 0;
  double scores_max_abs_error = 0;
  std::string failure;  // what did not match, when !ok
};

VerifyReport VerifyAttend(const RandomAttend& sent, const attention::v1::AttendResponse& got);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_VERIFY_H_
