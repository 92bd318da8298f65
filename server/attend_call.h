// One Attend request from proto to engine and back: validates every field of an AttendRequest
// before allocating anything that depends on it, views or converts the tensors, runs the engine
// writing straight into the response's buffers, and encodes the outputs in the requested dtype.
// Thread-safe (no shared state besides the engine, which is thread-safe).
#ifndef ATTNSERVE_SERVER_ATTEND_CALL_H_
#define ATTNSERVE_SERVER_ATTEND_CALL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "attention/v1/attention.pb.h"
#include "server/request_fields.h"
#include "src/engine/attention_engine.h"

namespace attn {

// What the request log says about a call: "q=[1,12,128,64] k=[...] v=[...] dtype=FLOAT32 ...".
std::string DescribeAttendRequest(const attention::v1::AttendRequest& request);

// Validates `request` against `limits`, computes it with `engine` and fills `response` (all but
// timing); `call` (when set) may stop it between chunks and gets its FLOPs.
// INVALID_ARGUMENT / RESOURCE_EXHAUSTED / UNIMPLEMENTED name the field and the numbers.
absl::Status RunAttend(const attention::v1::AttendRequest& request, const AttendLimits& limits,
                       const AttentionEngine& engine, attention::v1::AttendResponse* response,
                       CallContext* call = nullptr);

// Working memory the request would need (inputs converted to f32, output, maps, scratch),
// estimated from its shapes alone; 0 when they are malformed (validation refuses those).
int64_t EstimateAttendBytes(const attention::v1::AttendRequest& request, int threads);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_ATTEND_CALL_H_
