// Bounded LRU cache of oneDNN primitives (see primitive_cache.h).
#include "src/runtime/primitive_cache.h"

namespace attn {

PrimitiveCache::PrimitiveCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

std::shared_ptr<const dnnl::primitive> PrimitiveCache::GetOrCreate(
    const std::string& key, const std::function<dnnl::primitive()>& make) {
  {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it != index_.end()) {
      ++hits_;
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
    ++misses_;
  }
  // Two threads may build the same primitive at once; the first to insert wins, both are valid.
  auto made = std::make_shared<const dnnl::primitive>(make());
  std::lock_guard lock(mu_);
  auto it = index_.find(key);
  if (it != index_.end()) return it->second->second;
  lru_.emplace_front(key, made);
  index_[key] = lru_.begin();
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return made;
}

int64_t PrimitiveCache::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}

int64_t PrimitiveCache::misses() const {
  std::lock_guard lock(mu_);
  return misses_;
}

size_t PrimitiveCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

}  // namespace attn
