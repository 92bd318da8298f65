// KvPagePool (see kv_page_pool.h).
#include "src/kv/kv_page_pool.h"

#include <cstdlib>
#include <new>

namespace attn {

bool KvPagePool::TryReserve(int64_t bytes) {
  int64_t used = used_bytes_.load(std::memory_order_relaxed);
  do {
    if (bytes > capacity_bytes_ - used) return false;
  } while (!used_bytes_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return true;
}

void KvPagePool::Unreserve(int64_t bytes) {
  used_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
}

std::shared_ptr<KvPage> KvPagePool::NewPage(int64_t bytes) {
  constexpr int64_t kAlign = 64;
  void* data = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  if (data == nullptr) throw std::bad_alloc();
  pages_.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<KvPage> page(new KvPage{data, bytes}, [this](KvPage* dropped) {
    {
      std::lock_guard lock(mu_);
      live_.erase(dropped);
    }
    std::free(dropped->data);
    pages_.fetch_sub(1, std::memory_order_relaxed);
    Unreserve(dropped->bytes);
    delete dropped;
  });
  std::lock_guard lock(mu_);
  live_.emplace(page.get(), page);
  return page;
}

KvPagePool::Sharing KvPagePool::Shared() const {
  Sharing sharing;
  std::lock_guard lock(mu_);
  for (const auto& [page, holders] : live_) {
    if (holders.use_count() > 1) {
      ++sharing.pages;
      sharing.bytes += page->bytes;
    }
  }
  return sharing;
}

}  // namespace attn
