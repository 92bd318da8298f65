// Named multi-head weight sets held by the server (PutWeights / ListWeights / DeleteWeights and
// `weights_name` in MultiHeadAttend), with a cap on the bytes held. Entries are shared pointers
// to immutable weights: a request that fetched a set keeps it alive, so replacing or deleting a
// name never breaks a request already running. Thread-safe.
#ifndef ATTNSERVE_SRC_WEIGHTS_WEIGHT_REGISTRY_H_
#define ATTNSERVE_SRC_WEIGHTS_WEIGHT_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/layer/multi_head_weights.h"

namespace attn {

class WeightRegistry {
 public:
  using Entry = std::pair<std::string, std::shared_ptr<const MultiHeadWeights>>;

  explicit WeightRegistry(int64_t max_bytes);

  // A usable name: 1 to 128 characters of [A-Za-z0-9._-]. INVALID_ARGUMENT naming `field`.
  static absl::Status CheckName(const std::string& field, const std::string& name);

  // Adds `name`, or replaces it. RESOURCE_EXHAUSTED (with the numbers) when the total held would
  // exceed max_bytes; the registry is then unchanged.
  absl::Status Put(const std::string& name, std::shared_ptr<const MultiHeadWeights> weights);
  // NOT_FOUND when absent.
  absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> Get(const std::string& name) const;
  absl::Status Delete(const std::string& name);
  // Every entry, by name.
  std::vector<Entry> List() const;
  int64_t bytes() const;
  int64_t max_bytes() const { return max_bytes_; }

 private:
  const int64_t max_bytes_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const MultiHeadWeights>> entries_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_WEIGHTS_WEIGHT_REGISTRY_H_
