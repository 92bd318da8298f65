// The named weight registry (see weight_registry.h).
#include "src/weights/weight_registry.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace attn {

WeightRegistry::WeightRegistry(int64_t max_bytes) : max_bytes_(max_bytes) {}

absl::Status WeightRegistry::CheckName(const std::string& field, const std::string& name) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError(absl::StrCat(field, " has ", name.size(),
                                                   " characters; it needs 1 to 128"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " = \"", absl::CHexEscape(name), "\" may only use letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::Status WeightRegistry::Put(const std::string& name,
                                 std::shared_ptr<const MultiHeadWeights> weights) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  const int64_t replaced = it == entries_.end() ? 0 : it->second->bytes();
  const int64_t total = bytes_ - replaced + weights->bytes();
  if (total > max_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "weights \"", name, "\" need ", weights->bytes(), " bytes; ", bytes_ - replaced,
        " are held by other weights and the limit is ", max_bytes_, " (--max_weights_bytes)"));
  }
  bytes_ = total;
  entries_[name] = std::move(weights);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> WeightRegistry::Get(
    const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("no weights named \"", name, "\""));
  }
  return it->second;
}

absl::Status WeightRegistry::Delete(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("no weights named \"", name, "\""));
  }
  bytes_ -= it->second->bytes();
  entries_.erase(it);
  return absl::OkStatus();
}

std::vector<WeightRegistry::Entry> WeightRegistry::List() const {
  std::lock_guard lock(mu_);
  return {entries_.begin(), entries_.end()};
}

int64_t WeightRegistry::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

}  // namespace attn
