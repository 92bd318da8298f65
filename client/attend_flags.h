// The flags that describe a random AttendRequest, shared by attn-client (attend, bench, heatmap;
// mha reads --kv_heads, --causal and --seed) and engine-load: --shape, --kv_heads, --value_dim,
// --causal, --maps, --dtype, --compute, --seed.
#ifndef ATTNSERVE_CLIENT_ATTEND_FLAGS_H_
#define ATTNSERVE_CLIENT_ATTEND_FLAGS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "attention/v1/attention.pb.h"
#include "client/random_request.h"

ABSL_DECLARE_FLAG(std::optional<std::string>, shape);
ABSL_DECLARE_FLAG(int64_t, kv_heads);
ABSL_DECLARE_FLAG(int64_t, value_dim);
ABSL_DECLARE_FLAG(std::string, causal);
ABSL_DECLARE_FLAG(std::string, maps);
ABSL_DECLARE_FLAG(std::string, dtype);
ABSL_DECLARE_FLAG(std::string, compute);
ABSL_DECLARE_FLAG(uint32_t, seed);

namespace attn {

// INVALID_ARGUMENT naming the flag when --causal is not none, upper_left or lower_right.
absl::StatusOr<attention::v1::Causal> CausalFromFlag();
// The request the flags describe (--shape defaults to 1,8,128,128,64); INVALID_ARGUMENT
// naming the flag when one is malformed.
absl::StatusOr<RandomAttendSpec> RandomAttendSpecFromFlags();

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_ATTEND_FLAGS_H_
