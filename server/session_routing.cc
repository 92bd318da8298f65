// Routing by session id (see session_routing.h).
#include "server/session_routing.h"

#include "absl/strings/str_cat.h"
#include "src/kv/session_store.h"

namespace attn {

std::string RoutingHeader(grpc::CallbackServerContext* context) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("attn-session-id");
  return it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
}

absl::Status CheckRouting(const std::string& header, const std::string& id, bool route_only,
                          const std::string& field) {
  if (header.empty()) return absl::OkStatus();
  const bool agree = route_only ? SessionStore::RouteOf(header) == SessionStore::RouteOf(id)
                                : header == id;
  if (agree) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("the attn-session-id header (", header.substr(0, 80), ") does not ",
                   route_only ? "share the route of " : "name ", field, " (", id.substr(0, 80),
                   ")"));
}

}  // namespace attn
