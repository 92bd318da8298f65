// KvPagePool: the memory every KV-cache page comes from, capped at a number of bytes. A caller
// first reserves the bytes of the pages it is about to make (TryReserve, which fails instead of
// passing the cap), then makes them (NewPage); a page is shared by whoever holds it (sessions
// forked from one another share pages) and its bytes return to the pool when the last holder
// drops it. It knows its live pages, to tell how many are shared. Thread-safe; the pool must
// outlive its pages.
#ifndef ATTNSERVE_SRC_KV_KV_PAGE_POOL_H_
#define ATTNSERVE_SRC_KV_KV_PAGE_POOL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"

namespace attn {

// One page: `bytes` of memory aligned to 64 bytes. Its contents are written by its only holder
// (a shared page is copied before it is written: copy on write).
struct KvPage {
  void* data = nullptr;
  int64_t bytes = 0;
};

class KvPagePool {
 public:
  explicit KvPagePool(int64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {}
  KvPagePool(const KvPagePool&) = delete;
  KvPagePool& operator=(const KvPagePool&) = delete;

  // Counts `bytes` as used if that keeps the pool within its capacity; false otherwise.
  bool TryReserve(int64_t bytes);
  // Gives back reserved bytes that no page was made of.
  void Unreserve(int64_t bytes);
  // A page of `bytes` (already reserved); they are given back when the last holder drops it.
  // Its contents are uninitialised.
  std::shared_ptr<KvPage> NewPage(int64_t bytes);

  int64_t capacity_bytes() const { return capacity_bytes_; }
  // Bytes reserved or held by pages.
  int64_t used_bytes() const { return used_bytes_.load(std::memory_order_relaxed); }
  // Pages alive.
  int64_t pages() const { return pages_.load(std::memory_order_relaxed); }
  // Pages held by more than one holder (sessions forked from one another), and their bytes:
  // what forks save. O(pages alive).
  struct Sharing {
    int64_t pages = 0;
    int64_t bytes = 0;
  };
  Sharing Shared() const;

 private:
  const int64_t capacity_bytes_;
  std::atomic<int64_t> used_bytes_{0};
  std::atomic<int64_t> pages_{0};
  mutable std::mutex mu_;
  absl::flat_hash_map<const KvPage*, std::weak_ptr<KvPage>> live_ ABSL_GUARDED_BY(mu_);
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_KV_KV_PAGE_POOL_H_
