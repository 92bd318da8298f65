// SessionStore: the server's KV-cache sessions, by id, with the page pool they share. Creates,
// finds (for their owner only), forks, truncates, lists and closes sessions; drops sessions
// idle past their timeout; and, when a step needs pages the pool cannot give, evicts the least
// recently used idle session (with eviction allowed) until it can. A session in use (leased) is
// never dropped. A dropped id is remembered with its reason (evicted under memory pressure,
// expired, closed) so a later call learns why it is gone. Thread-safe.
#ifndef ATTNSERVE_SRC_KV_SESSION_STORE_H_
#define ATTNSERVE_SRC_KV_SESSION_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/kv/kv_page_pool.h"
#include "src/kv/kv_session.h"

namespace attn {

// A session as its callers see it.
struct SessionInfo {
  std::string id;
  SessionConfig config;
  std::vector<int64_t> layer_tokens = {};  // positions stored per layer
  int64_t page_tokens = 0;
  int64_t bytes = 0;  // pool bytes of its pages (shared pages counted by every holder)
  absl::Time last_used;
};

// Counters of the store's life (for metrics and tests).
struct SessionStoreStats {
  int64_t sessions = 0;
  int64_t pool_capacity_bytes = 0;
  int64_t pool_used_bytes = 0;
  int64_t pool_pages = 0;
  int64_t pool_shared_pages = 0;  // held by more than one session (forks)
  int64_t pool_shared_bytes = 0;
  int64_t evicted = 0;  // under memory pressure
  int64_t expired = 0;  // idle past their timeout
};

class SessionStore;

// A session held in use: neither evicted nor expired until the lease is gone. Movable.
class SessionLease {
 public:
  SessionLease() = default;
  SessionLease(SessionLease&& other) noexcept { *this = std::move(other); }
  SessionLease& operator=(SessionLease&& other) noexcept;
  ~SessionLease();

  KvSession* operator->() const { return session_.get(); }
  KvSession& operator*() const { return *session_; }
  KvSession* get() const { return session_.get(); }

 private:
  friend class SessionStore;
  SessionLease(SessionStore* store, std::shared_ptr<KvSession> session)
      : store_(store), session_(std::move(session)) {}

  SessionStore* store_ = nullptr;
  std::shared_ptr<KvSession> session_;
};

class SessionStore {
 public:
  struct Options {
    int64_t capacity_bytes = int64_t{4} << 30;  // --kv_cache_bytes
    int64_t page_tokens = 128;                  // --kv_page_tokens (a multiple of 64)
    bool evict_lru = true;                      // --kv_evict=lru (else none)
    int64_t max_sessions = 10000;
    int64_t max_tokens = 1 << 20;         // the largest max_tokens a session may ask for
    int64_t default_max_tokens = 65536;   // a session's max_tokens when it asks 0
    absl::Duration default_idle_timeout = absl::Seconds(300);
    absl::Duration max_idle_timeout = absl::Hours(24);
    std::function<absl::Time()> now = absl::Now;  // the clock (tests move it)
  };

  explicit SessionStore(Options options);
  SessionStore(const SessionStore&) = delete;
  SessionStore& operator=(const SessionStore&) = delete;

  // A new empty session of `config` (0 fields take the defaults: num_kv_heads = num_heads,
  // value_dim = head_dim, max_tokens and idle_timeout the store's) owned by `owner`, with id
  // `requested_id` when one is given (a client that routes by id draws it: 32 lowercase hex
  // digits, or another session's route, '-' and 32 more to be routed with it; an id dropped
  // before may be created again) or 128 random bits. INVALID_ARGUMENT naming the field;
  // ALREADY_EXISTS for an id in use; RESOURCE_EXHAUSTED past max_sessions.
  absl::StatusOr<SessionInfo> Create(SessionConfig config, const std::string& owner,
                                     const std::string& requested_id = "");
  // The session `id` of `owner`, leased. NOT_FOUND (saying why when it was dropped) otherwise.
  absl::StatusOr<SessionLease> Lease(const std::string& id, const std::string& owner);
  absl::StatusOr<SessionInfo> Get(const std::string& id, const std::string& owner);
  std::vector<SessionInfo> List(const std::string& owner);
  absl::Status Close(const std::string& id, const std::string& owner);
  // A new session sharing the first `tokens` positions (all when absent) of every layer of
  // `id`, whose id has the same route (RouteOf) and 128 random bits of its own.
  // INVALID_ARGUMENT when tokens exceeds a layer's positions.
  absl::StatusOr<SessionInfo> Fork(const std::string& id, std::optional<int64_t> tokens,
                                   const std::string& owner);
  // Drops the positions >= tokens of every layer of `id`. FAILED_PRECONDITION when a layer no
  // longer holds positions just below `tokens` (dropped under a sliding window; 0 always works).
  absl::StatusOr<SessionInfo> Truncate(const std::string& id, int64_t tokens,
                                       const std::string& owner);

  // Reserves `bytes` of the pool for `for_session`'s new pages, evicting idle sessions (least
  // recently used first; never a leased one) when allowed. RESOURCE_EXHAUSTED with the numbers
  // when they cannot be had (nothing reserved then).
  absl::Status Reserve(int64_t bytes);
  KvPagePool& pool() { return pool_; }
  const KvLayout LayoutOf(const SessionConfig& config) const;

  // Session ids: a session created is "<32 hex>" (its route), a fork "<its source's route>-<32
  // hex>", so that a load balancer hashing the route sends a session and its forks to the
  // replica that holds them (docs/sessions.md).
  static bool IsSessionId(absl::string_view id);
  static absl::string_view RouteOf(absl::string_view id) { return id.substr(0, kRouteDigits); }
  static constexpr size_t kRouteDigits = 32;

  // Drops the sessions idle past their timeout (every call does so too, at most once a second).
  void ExpireIdle();
  SessionStoreStats Stats();
  const Options& options() const { return options_; }

 private:
  friend class SessionLease;
  struct Entry {
    std::shared_ptr<KvSession> session;
    int64_t leases = 0;
    absl::Time last_used;
  };
  struct Dropped {
    std::string owner;
    std::string reason;
  };

  void Release(KvSession* session);
  absl::Status CheckConfig(SessionConfig& config) const;
  // NOT_FOUND for `id` (with the reason it was dropped, when its owner asks).
  absl::Status NotFound(const std::string& id, const std::string& owner) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Entry* Find(const std::string& id, const std::string& owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes `id`, remembering why.
  void Drop(const std::string& id, std::string reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireIdleLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<SessionInfo> Insert(std::shared_ptr<KvSession> session)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static SessionInfo InfoOf(KvSession& session, const KvLayout& layout, absl::Time last_used);
  static std::string RandomHex();

  const Options options_;
  KvPagePool pool_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, Entry> sessions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Dropped> dropped_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> dropped_order_ ABSL_GUARDED_BY(mu_);  // oldest first, bounded
  absl::Time last_expiry_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t evicted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t expired_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_KV_SESSION_STORE_H_
