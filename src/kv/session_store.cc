// SessionStore (see session_store.h).
#include "src/kv/session_store.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace attn {
namespace {

// Dropped ids remembered (the oldest forgotten first).
constexpr size_t kRememberedDrops = 16384;

}  // namespace

SessionLease& SessionLease::operator=(SessionLease&& other) noexcept {
  if (this != &other) {
    if (store_ != nullptr && session_ != nullptr) store_->Release(session_.get());
    store_ = std::exchange(other.store_, nullptr);
    session_ = std::move(other.session_);
  }
  return *this;
}

SessionLease::~SessionLease() {
  if (store_ != nullptr && session_ != nullptr) store_->Release(session_.get());
}

SessionStore::SessionStore(Options options)
    : options_(std::move(options)), pool_(options_.capacity_bytes) {}

const KvLayout SessionStore::LayoutOf(const SessionConfig& config) const {
  return {.kv_heads = config.num_kv_heads,
          .head_dim = config.head_dim,
          .value_dim = config.value_dim,
          .page_tokens = options_.page_tokens,
          .bf16 = config.bf16};
}

absl::Status SessionStore::CheckConfig(SessionConfig& c) const {
  constexpr int64_t kMaxDim = 1 << 16;
  auto positive = [](const char* field, int64_t value, int64_t most) -> absl::Status {
    if (value < 1 || value > most) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " must be in [1, ", most, "]; got ", value));
    }
    return absl::OkStatus();
  };
  if (c.num_kv_heads == 0) c.num_kv_heads = c.num_heads;
  if (c.value_dim == 0) c.value_dim = c.head_dim;
  if (c.max_tokens == 0) c.max_tokens = options_.default_max_tokens;
  if (c.idle_timeout == absl::ZeroDuration()) c.idle_timeout = options_.default_idle_timeout;
  for (absl::Status s : {positive("num_layers", c.num_layers, 4096),
                         positive("num_heads", c.num_heads, 4096),
                         positive("num_kv_heads", c.num_kv_heads, 4096),
                         positive("head_dim", c.head_dim, kMaxDim),
                         positive("value_dim", c.value_dim, kMaxDim),
                         positive("max_tokens", c.max_tokens, options_.max_tokens)}) {
    if (!s.ok()) return s;
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_heads (", c.num_heads,
                                                   ") must be a multiple of num_kv_heads (",
                                                   c.num_kv_heads, ")"));
  }
  if (c.idle_timeout < absl::ZeroDuration() || c.idle_timeout > options_.max_idle_timeout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "idle_timeout_s must be in [0, ", absl::ToInt64Seconds(options_.max_idle_timeout),
        "]; got ", absl::ToInt64Seconds(c.idle_timeout)));
  }
  return absl::OkStatus();
}

std::string SessionStore::RandomHex() {
  // 128 bits from the OS's random source: ids cannot be guessed.
  static thread_local std::random_device random;
  uint64_t high = (uint64_t{random()} << 32) | random();
  uint64_t low = (uint64_t{random()} << 32) | random();
  return absl::StrFormat("%016x%016x", high, low);
}

SessionInfo SessionStore::InfoOf(KvSession& session, const KvLayout& layout,
                                 absl::Time last_used) {
  SessionInfo info{.id = session.id,
                   .config = session.config,
                   .page_tokens = layout.page_tokens,
                   .last_used = last_used};
  std::lock_guard lock(session.mu);
  for (const KvLayerCache& layer : session.layers) info.layer_tokens.push_back(layer.tokens());
  info.bytes = session.bytes();
  return info;
}

absl::StatusOr<SessionInfo> SessionStore::Insert(std::shared_ptr<KvSession> session) {
  if (static_cast<int64_t>(sessions_.size()) >= options_.max_sessions) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the server holds its maximum of ", options_.max_sessions,
                     " sessions; close one first"));
  }
  const absl::Time now = options_.now();
  sessions_[session->id] = Entry{.session = session, .leases = 0, .last_used = now};
  return SessionInfo{.id = session->id,
                     .config = session->config,
                     .layer_tokens = {},
                     .page_tokens = options_.page_tokens,
                     .bytes = 0,
                     .last_used = now};
}

bool SessionStore::IsSessionId(absl::string_view id) {
  auto hex = [](absl::string_view digits) {
    return digits.size() == kRouteDigits &&
           digits.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
  };
  if (id.size() == kRouteDigits) return hex(id);
  return id.size() == 2 * kRouteDigits + 1 && id[kRouteDigits] == '-' &&
         hex(id.substr(0, kRouteDigits)) && hex(id.substr(kRouteDigits + 1));
}

absl::StatusOr<SessionInfo> SessionStore::Create(SessionConfig config, const std::string& owner,
                                                 const std::string& requested_id) {
  if (!requested_id.empty() && !IsSessionId(requested_id)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "session_id must be 32 lowercase hex digits (128 random bits), or a route of 32, '-' "
        "and 32 more (a session routed with others), or empty; got \"",
        requested_id.substr(0, 80), "\""));
  }
  if (absl::Status s = CheckConfig(config); !s.ok()) return s;
  auto session = std::make_shared<KvSession>(requested_id.empty() ? RandomHex() : requested_id,
                                             owner, config, LayoutOf(config));
  std::lock_guard lock(mu_);
  ExpireIdleLocked(options_.now());
  if (sessions_.contains(session->id)) {
    return absl::AlreadyExistsError(absl::StrCat("session ", session->id, " already exists"));
  }
  dropped_.erase(session->id);  // created again (e.g. prefilled again after an eviction)
  absl::StatusOr<SessionInfo> info = Insert(session);
  if (info.ok()) info->layer_tokens.assign(config.num_layers, 0);
  return info;
}

absl::Status SessionStore::NotFound(const std::string& id, const std::string& owner) const {
  auto it = dropped_.find(id);
  if (it != dropped_.end() && it->second.owner == owner) {
    return absl::NotFoundError(absl::StrCat("session ", id, " ", it->second.reason));
  }
  return absl::NotFoundError(absl::StrCat("session ", id, " does not exist"));
}

SessionStore::Entry* SessionStore::Find(const std::string& id, const std::string& owner) {
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.session->owner != owner) return nullptr;
  return &it->second;
}

absl::StatusOr<SessionLease> SessionStore::Lease(const std::string& id,
                                                 const std::string& owner) {
  std::lock_guard lock(mu_);
  const absl::Time now = options_.now();
  ExpireIdleLocked(now);
  Entry* entry = Find(id, owner);
  if (entry == nullptr) return NotFound(id, owner);
  ++entry->leases;
  entry->last_used = now;
  return SessionLease(this, entry->session);
}

void SessionStore::Release(KvSession* session) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(session->id);
  if (it == sessions_.end() || it->second.session.get() != session) return;
  --it->second.leases;
  it->second.last_used = options_.now();
}

absl::StatusOr<SessionInfo> SessionStore::Get(const std::string& id, const std::string& owner) {
  std::shared_ptr<KvSession> session;
  absl::Time last_used;
  {
    std::lock_guard lock(mu_);
    ExpireIdleLocked(options_.now());
    Entry* entry = Find(id, owner);
    if (entry == nullptr) return NotFound(id, owner);
    session = entry->session;
    last_used = entry->last_used;
  }
  return InfoOf(*session, LayoutOf(session->config), last_used);
}

std::vector<SessionInfo> SessionStore::List(const std::string& owner) {
  std::vector<std::pair<std::shared_ptr<KvSession>, absl::Time>> mine;
  {
    std::lock_guard lock(mu_);
    ExpireIdleLocked(options_.now());
    for (const auto& [id, entry] : sessions_) {
      if (entry.session->owner == owner) mine.emplace_back(entry.session, entry.last_used);
    }
  }
  std::vector<SessionInfo> infos;
  for (const auto& [session, last_used] : mine) {
    infos.push_back(InfoOf(*session, LayoutOf(session->config), last_used));
  }
  std::sort(infos.begin(), infos.end(),
            [](const SessionInfo& a, const SessionInfo& b) { return a.id < b.id; });
  return infos;
}

absl::Status SessionStore::Close(const std::string& id, const std::string& owner) {
  std::lock_guard lock(mu_);
  if (Find(id, owner) == nullptr) return NotFound(id, owner);
  Drop(id, "was closed");
  return absl::OkStatus();
}

absl::StatusOr<SessionInfo> SessionStore::Fork(const std::string& id,
                                               std::optional<int64_t> tokens,
                                               const std::string& owner) {
  absl::StatusOr<SessionLease> source = Lease(id, owner);
  if (!source.ok()) return source.status();
  auto fork = std::make_shared<KvSession>(absl::StrCat(RouteOf(id), "-", RandomHex()), owner,
                                          (*source)->config,
                                          LayoutOf((*source)->config));
  {
    std::scoped_lock lock((*source)->mu, fork->mu);
    const std::vector<KvLayerCache>& layers = (*source)->layers;
    for (size_t l = 0; l < layers.size(); ++l) {
      const int64_t keep = tokens.value_or(layers[l].tokens());
      if (keep < 0 || keep > layers[l].tokens()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tokens must be in [0, ", layers[l].tokens(), "] (the positions layer ", l,
            " holds); got ", keep));
      }
      fork->layers[l] = layers[l].Fork(keep);
    }
  }
  SessionInfo info = InfoOf(*fork, LayoutOf(fork->config), options_.now());
  std::lock_guard lock(mu_);
  absl::StatusOr<SessionInfo> inserted = Insert(fork);
  if (!inserted.ok()) return inserted.status();
  return info;
}

absl::StatusOr<SessionInfo> SessionStore::Truncate(const std::string& id, int64_t tokens,
                                                   const std::string& owner) {
  absl::StatusOr<SessionLease> session = Lease(id, owner);
  if (!session.ok()) return session.status();
  if (tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("tokens must be >= 0; got ", tokens));
  }
  {
    std::lock_guard lock((*session)->mu);
    for (size_t l = 0; l < (*session)->layers.size(); ++l) {
      const KvLayerCache& layer = (*session)->layers[l];
      if (tokens > 0 && tokens < layer.tokens() && tokens < layer.first_position()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "layer ", l, " no longer holds positions < ", layer.first_position(),
            " (dropped under its sliding window): cannot truncate to ", tokens));
      }
    }
    for (KvLayerCache& layer : (*session)->layers) layer.Truncate(tokens);
  }
  return InfoOf(**session, LayoutOf((*session)->config), options_.now());
}

absl::Status SessionStore::Reserve(int64_t bytes) {
  if (bytes <= 0 || pool_.TryReserve(bytes)) return absl::OkStatus();
  std::lock_guard lock(mu_);
  ExpireIdleLocked(options_.now());
  while (!pool_.TryReserve(bytes)) {
    auto victim = sessions_.end();
    if (options_.evict_lru) {
      for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
        if (it->second.leases > 0) continue;
        if (victim == sessions_.end() || it->second.last_used < victim->second.last_used) {
          victim = it;
        }
      }
    }
    if (victim == sessions_.end()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the KV cache pool cannot give ", bytes, " bytes: ", pool_.used_bytes(), " of ",
          pool_.capacity_bytes(), " bytes (--kv_cache_bytes) are in use",
          options_.evict_lru ? " by sessions in use" : " and --kv_evict=none"));
    }
    ++evicted_;
    Drop(victim->first, "was evicted under memory pressure");
  }
  return absl::OkStatus();
}

void SessionStore::Drop(const std::string& id, std::string reason) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  dropped_[id] = Dropped{.owner = it->second.session->owner, .reason = std::move(reason)};
  dropped_order_.push_back(id);
  if (dropped_order_.size() > kRememberedDrops) {
    dropped_.erase(dropped_order_.front());
    dropped_order_.pop_front();
  }
  sessions_.erase(it);
}

void SessionStore::ExpireIdle() {
  std::lock_guard lock(mu_);
  last_expiry_ = absl::InfinitePast();
  ExpireIdleLocked(options_.now());
}

void SessionStore::ExpireIdleLocked(absl::Time now) {
  if (now - last_expiry_ < absl::Seconds(1)) return;
  last_expiry_ = now;
  std::vector<std::pair<std::string, absl::Duration>> idle;
  for (const auto& [id, entry] : sessions_) {
    if (entry.leases == 0 && now - entry.last_used >= entry.session->config.idle_timeout) {
      idle.emplace_back(id, entry.session->config.idle_timeout);
    }
  }
  for (const auto& [id, timeout] : idle) {
    ++expired_;
    Drop(id, absl::StrCat("expired after ", absl::ToInt64Seconds(timeout), " s idle"));
  }
}

SessionStoreStats SessionStore::Stats() {
  std::lock_guard lock(mu_);
  ExpireIdleLocked(options_.now());
  const KvPagePool::Sharing shared = pool_.Shared();
  return {.sessions = static_cast<int64_t>(sessions_.size()),
          .pool_capacity_bytes = pool_.capacity_bytes(),
          .pool_used_bytes = pool_.used_bytes(),
          .pool_pages = pool_.pages(),
          .pool_shared_pages = shared.pages,
          .pool_shared_bytes = shared.bytes,
          .evicted = evicted_,
          .expired = expired_};
}

}  // namespace attn
