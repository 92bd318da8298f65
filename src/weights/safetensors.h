// A reader of the safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}),
// then the tensor bytes, offsets relative to their start. Every length, offset, shape and dtype
// is checked against the file before use; errors are INVALID_ARGUMENT saying what is wrong and
// where. Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_WEIGHTS_SAFETENSORS_H_
#define ATTNSERVE_SRC_WEIGHTS_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "src/runtime/dtype.h"

namespace attn {

struct SafetensorsTensor {
  DType dtype = DType::kFloat32;  // F32, BF16 or F16 (others are rejected)
  std::vector<int64_t> shape;
  int64_t count = 0;
  int64_t offset = 0;  // into SafetensorsFile::data
};

struct SafetensorsFile {
  std::map<std::string, SafetensorsTensor> tensors;
  std::map<std::string, std::string> metadata;
  std::vector<uint8_t> bytes;  // the whole file
  int64_t data_start = 0;      // where tensor bytes begin

  // The tensor's elements as f32.
  std::vector<float> ToFloat(const SafetensorsTensor& tensor) const;
};

// Parses a whole file's bytes.
absl::StatusOr<SafetensorsFile> ParseSafetensors(std::vector<uint8_t> bytes);

// Reads and parses `path`; files over `max_bytes` are refused before reading.
absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path, int64_t max_bytes);

}  // namespace attn

#endif  // ATTNSERVE_SRC_WEIGHTS_SAFETENSORS_H_
