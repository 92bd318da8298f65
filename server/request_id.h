// Request ids and trace context of a call: the caller's `x-request-id` metadata when it is a sane
// token (1-128 printable ASCII characters without spaces or quotes), otherwise a fresh random
// id; and W3C `traceparent` when present and well-formed (55 characters, version-traceid-
// parentid-flags in lowercase hex). Values that fail the checks are never logged. Thread-safe.
#ifndef ATTNSERVE_SERVER_REQUEST_ID_H_
#define ATTNSERVE_SERVER_REQUEST_ID_H_

#include <map>
#include <string>

#include <grpcpp/grpcpp.h>

namespace attn {

struct RequestTrace {
  std::string request_id;
  std::string traceparent;  // empty when absent or malformed
};

// From a call's client metadata (or HTTP headers looked up the same way).
RequestTrace TraceFromMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);
RequestTrace TraceFromValues(const std::string* request_id, const std::string* traceparent);

// 32 random lowercase hex characters.
std::string NewRequestId();

}  // namespace attn

#endif  // ATTNSERVE_SERVER_REQUEST_ID_H_
