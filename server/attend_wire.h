// The attention calls' messages to and from gRPC's bytes, for the handlers that take raw
// ByteBuffers (Attend, MultiHeadAttend, AttendStream and the session steps). gRPC's own serialisation copies every
// byte of a response into its slices -- for a response with maps that copy was 12% of the
// server's CPU -- so here each tensor's `data` (the output and maps the engine wrote in place)
// is handed to gRPC as a slice of its own, and only the small fields around it are encoded.
// The bytes are the ones SerializeAsString gives. Plain functions; thread-safe.
#ifndef ATTNSERVE_SERVER_ATTEND_WIRE_H_
#define ATTNSERVE_SERVER_ATTEND_WIRE_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "attention/v1/attention.pb.h"

namespace attn {

// Parses `bytes` into `request`; INVALID_ARGUMENT (with the byte count and the message type)
// when they are not one.
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, google::protobuf::MessageLite* request);

// The wire form of `response`, each non-empty tensor `data` moved out of it into a slice that
// gRPC frees when sent (those fields are left empty).
grpc::ByteBuffer SerializeMovingTensorData(attention::v1::AttendResponse& response);

// The wire form of a SessionAttendResponse: `tensors` (its fields 1-4 are AttendResponse's,
// moved as above), then position and first_position.
grpc::ByteBuffer SerializeSessionAttendResponse(attention::v1::AttendResponse& tensors,
                                                int64_t position, int64_t first_position);

// A SessionAttendBatchResponse of such responses' bytes, in order (their slices shared).
grpc::ByteBuffer SerializeSessionAttendBatch(std::span<const grpc::ByteBuffer> results);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_ATTEND_WIRE_H_
