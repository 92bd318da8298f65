// KvSession and its Turns (see kv_session.h).
#include "src/kv/kv_session.h"

#include "absl/strings/str_cat.h"

namespace attn {

int64_t Turns::Take() {
  std::lock_guard lock(mu_);
  return next_++;
}

absl::Status Turns::Wait(int64_t ticket, absl::Time deadline) {
  std::unique_lock lock(mu_);
  const auto until = absl::ToChronoTime(deadline);
  while (serving_ != ticket) {
    if (deadline == absl::InfiniteFuture()) {
      changed_.wait(lock);
    } else if (changed_.wait_until(lock, until) == std::cv_status::timeout &&
               serving_ != ticket) {
      lock.unlock();
      End(ticket);
      return absl::DeadlineExceededError(
          "the deadline passed while earlier steps of the session ran");
    }
  }
  return absl::OkStatus();
}

void Turns::End(int64_t ticket) {
  std::lock_guard lock(mu_);
  ended_.insert(ticket);
  while (!ended_.empty() && *ended_.begin() == serving_) {
    ended_.erase(ended_.begin());
    ++serving_;
  }
  changed_.notify_all();
}

KvSession::KvSession(std::string id, std::string owner, const SessionConfig& config,
                     const KvLayout& layout)
    : id(std::move(id)),
      owner(std::move(owner)),
      config(config),
      layers(config.num_layers, KvLayerCache(layout)) {}

int64_t KvSession::bytes() const {
  int64_t total = 0;
  for (const KvLayerCache& layer : layers) total += layer.bytes();
  return total;
}

}  // namespace attn
