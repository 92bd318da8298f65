// Reads an attnserve weights file (.safetensors, layout in src/weights_file.h) into the
// attention.v1.Weights message that PutWeights takes, after checking it is a valid weight set.
// Pure function; thread-safe.
#ifndef ATTNSERVE_CLIENT_WEIGHTS_FILE_PROTO_H_
#define ATTNSERVE_CLIENT_WEIGHTS_FILE_PROTO_H_

#include <string>

#include "absl/status/statusor.h"
#include "attention/v1/attention.pb.h"

namespace attn {

absl::StatusOr<attention::v1::Weights> WeightsProtoFromFile(const std::string& path);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_WEIGHTS_FILE_PROTO_H_
