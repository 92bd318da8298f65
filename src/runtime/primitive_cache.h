// A bounded least-recently-used cache of oneDNN primitives keyed by a string that encodes
// everything the primitive depends on (kind, shapes, dtypes, attributes). Creating a primitive
// costs far more than running a small one, so each is made once and reused. Thread-safe.
#ifndef ATTNSERVE_SRC_RUNTIME_PRIMITIVE_CACHE_H_
#define ATTNSERVE_SRC_RUNTIME_PRIMITIVE_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "dnnl.hpp"

namespace attn {

class PrimitiveCache {
 public:
  explicit PrimitiveCache(size_t capacity);

  // The cached primitive for `key`, or the one `make` builds (then cached, evicting the least
  // recently used entry when full). `make` runs outside the lock.
  std::shared_ptr<const dnnl::primitive> GetOrCreate(
      const std::string& key, const std::function<dnnl::primitive()>& make);

  int64_t hits() const;
  int64_t misses() const;
  size_t size() const;

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const dnnl::primitive>>;

  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_ ABSL_GUARDED_BY(mu_);  // most recent first
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_ ABSL_GUARDED_BY(mu_);
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_RUNTIME_PRIMITIVE_CACHE_H_
