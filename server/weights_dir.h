// Start-up loading of `--weights_dir`: every *.safetensors file there becomes a registry entry
// named after its stem. A file that cannot be read or is not a valid weight set is logged with
// its name and the reason and skipped; the rest still load. Not thread-safe with itself (runs
// once at start-up); the registry is thread-safe.
#ifndef ATTNSERVE_SERVER_WEIGHTS_DIR_H_
#define ATTNSERVE_SERVER_WEIGHTS_DIR_H_

#include <string>

#include "absl/status/statusor.h"
#include "src/weights/weight_registry.h"

namespace attn {

// Returns how many files loaded; an error only when `dir` itself cannot be listed.
absl::StatusOr<int> LoadWeightsDir(const std::string& dir, WeightRegistry& registry);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_WEIGHTS_DIR_H_
