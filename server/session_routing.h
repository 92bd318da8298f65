// The attn-session-id metadata that routes a session's calls to the replica holding it
// (docs/sessions.md): read from a call, and checked against the session its message names.
// Thread-safe (pure functions).
#ifndef ATTNSERVE_SERVER_SESSION_ROUTING_H_
#define ATTNSERVE_SERVER_SESSION_ROUTING_H_

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/status/status.h"

namespace attn {

// The call's attn-session-id metadata, "" when absent.
std::string RoutingHeader(grpc::CallbackServerContext* context);

// OK when `header` is empty or names session `id` (`route_only`: shares its route, as a batch
// step's session must); INVALID_ARGUMENT naming `field` otherwise -- the call reached this
// replica by a route its message disowns.
absl::Status CheckRouting(const std::string& header, const std::string& id, bool route_only,
                          const std::string& field);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_SESSION_ROUTING_H_
