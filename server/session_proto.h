// KV-cache sessions between proto and the session store: CreateSessionRequest -> SessionConfig
// (its dtype checked), SessionInfo -> Session. Pure functions; thread-safe.
#ifndef ATTNSERVE_SERVER_SESSION_PROTO_H_
#define ATTNSERVE_SERVER_SESSION_PROTO_H_

#include "absl/status/statusor.h"
#include "attention/v1/attention.pb.h"
#include "src/kv/session_store.h"

namespace attn {

// INVALID_ARGUMENT for a kv_dtype other than FLOAT32 (or UNSPECIFIED) and BFLOAT16; the store
// checks the numbers.
absl::StatusOr<SessionConfig> SessionConfigFromProto(
    const attention::v1::CreateSessionRequest& request);

void FillSession(const SessionInfo& info, attention::v1::Session* session);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_SESSION_PROTO_H_
