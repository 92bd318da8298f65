// KvSession: one sequence of a decoder held by the server -- its configuration, one
// KvLayerCache per attention layer, who owns it, when it was last used -- and the turns that
// apply its steps in arrival order. Thread-safe: `mu` guards the caches, Turns order the
// callers (see SessionStore for the rest).
#ifndef ATTNSERVE_SRC_KV_KV_SESSION_H_
#define ATTNSERVE_SRC_KV_KV_SESSION_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "src/kv/kv_layer_cache.h"

namespace attn {

// What a session is: its decoder's attention shape and limits.
struct SessionConfig {
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t value_dim = 0;
  bool bf16 = false;            // pages hold bfloat16 (else f32)
  int64_t max_tokens = 0;       // positions per layer, at most
  absl::Duration idle_timeout = absl::ZeroDuration();  // dropped when idle this long
};

// Tickets taken in arrival order; each holder waits for its turn, then ends it (or abandons a
// ticket it will not use, without waiting). Thread-safe.
class Turns {
 public:
  int64_t Take();
  // Waits until every earlier ticket has ended or been abandoned; DEADLINE_EXCEEDED at
  // `deadline` (the ticket is then abandoned).
  absl::Status Wait(int64_t ticket, absl::Time deadline);
  void End(int64_t ticket);

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int64_t next_ ABSL_GUARDED_BY(mu_) = 0;     // the next ticket to hand out
  int64_t serving_ ABSL_GUARDED_BY(mu_) = 0;  // the ticket whose turn it is
  std::set<int64_t> ended_ ABSL_GUARDED_BY(mu_);  // ended out of order, after serving_
};

struct KvSession {
  KvSession(std::string id, std::string owner, const SessionConfig& config,
            const KvLayout& layout);

  const std::string id;
  const std::string owner;  // the auth token that created it ("" without auth)
  const SessionConfig config;
  Turns turns;

  std::mutex mu;
  std::vector<KvLayerCache> layers ABSL_GUARDED_BY(mu);
  // Pool bytes of its pages (shared ones counted by every holder).
  int64_t bytes() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_KV_KV_SESSION_H_
