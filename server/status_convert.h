// Maps the engine's absl::Status onto grpc::Status, keeping the code and the message, and names
// status codes for logs.
#ifndef ATTNSERVE_SERVER_STATUS_CONVERT_H_
#define ATTNSERVE_SERVER_STATUS_CONVERT_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace attn {

grpc::Status ToGrpcStatus(const absl::Status& status);

// "OK", "INVALID_ARGUMENT", ...
std::string GrpcCodeName(grpc::StatusCode code);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_STATUS_CONVERT_H_
