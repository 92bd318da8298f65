// Loading a directory of safetensors weight files at start-up (see weights_dir.h).
#include "server/weights_dir.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/request_log.h"
#include "src/weights/weights_file.h"

namespace attn {

absl::StatusOr<int> LoadWeightsDir(const std::string& dir, WeightRegistry& registry) {
  std::error_code error;
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() == ".safetensors") files.push_back(entry.path());
  }
  if (error) {
    return absl::NotFoundError(absl::StrCat("--weights_dir ", dir, ": ", error.message()));
  }
  std::sort(files.begin(), files.end());
  int loaded = 0;
  for (const std::filesystem::path& path : files) {
    const std::string name = path.stem().string();
    absl::Status status = WeightRegistry::CheckName("file stem", name);
    if (status.ok()) {
      absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> weights =
          LoadWeightsFile(path.string(), registry.max_bytes() - registry.bytes());
      status = weights.ok() ? registry.Put(name, *weights) : weights.status();
    }
    LogFields fields;
    fields.Add("file", path.string()).Add("name", name);
    if (status.ok()) {
      ++loaded;
      LogEvent(spdlog::level::info, "weights loaded", fields);
    } else {
      fields.Add("reason", std::string(status.message()));
      LogEvent(spdlog::level::warn, "weights file skipped", fields);
    }
  }
  return loaded;
}

}  // namespace attn
