// The KV-cache session RPCs on the HTTP/JSON gateway (docs/sessions.md):
//   POST   /v1/sessions                       CreateSessionRequest   -> Session
//   GET    /v1/sessions                                              -> ListSessionsResponse
//   GET    /v1/sessions/{id}                                         -> Session
//   DELETE /v1/sessions/{id}                                         -> {}
//   POST   /v1/sessions/{id}/attend           SessionAttendRequest   -> SessionAttendResponse
//   POST   /v1/sessions/{id}/fork             {tokens?}              -> Session
//   POST   /v1/sessions/{id}/truncate         {tokens}               -> Session
//   POST   /v1/sessions:batch_attend          SessionAttendBatchRequest -> ...BatchResponse
// Bodies and answers are the protobuf JSON mapping; the path's id fills the body's session_id
// (a different one is a 400). Each route calls the RPC over an in-process channel to this very
// server, so admission, ownership, the routing check, the order of steps, logs and metrics are
// the gRPC call's; the Authorization, attn-session-id, x-request-id and traceparent headers go
// along as metadata. Errors are {"code", "message"} with the HTTP status of the gRPC code.
// Thread-safe.
#ifndef ATTNSERVE_SERVER_SESSION_GATEWAY_H_
#define ATTNSERVE_SERVER_SESSION_GATEWAY_H_

#include <grpcpp/grpcpp.h>

#include <memory>

namespace httplib {
class Server;
}

namespace attn {

// Adds the routes to `server`; `channel` (to the gRPC server, in process) must outlive it.
void AddSessionRoutes(httplib::Server& server, std::shared_ptr<grpc::Channel> channel);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_SESSION_GATEWAY_H_
