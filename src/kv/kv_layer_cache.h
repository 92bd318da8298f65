// KvLayerCache: the keys and values of one attention layer of one sequence, in pages of
// page_tokens positions per KV head (K's page [page_tokens, D], V's [page_tokens, Dv]), f32 or
// bf16. Appending fills the last page and adds new ones: what is stored is never moved. A copy
// (Fork) shares the pages; a shared page is copied before it is written (only a partly filled
// last page ever is). Pages wholly before a sliding window are dropped (their slots stay, empty,
// so positions keep their page). Not thread-safe: its session serialises access.
#ifndef ATTNSERVE_SRC_KV_KV_LAYER_CACHE_H_
#define ATTNSERVE_SRC_KV_KV_LAYER_CACHE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "src/kv/kv_page_pool.h"

namespace attn {

// The shape of one layer's cache.
struct KvLayout {
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t value_dim = 0;
  int64_t page_tokens = 0;
  bool bf16 = false;

  int64_t element_bytes() const { return bf16 ? 2 : 4; }
  int64_t key_page_bytes() const { return page_tokens * head_dim * element_bytes(); }
  int64_t value_page_bytes() const { return page_tokens * value_dim * element_bytes(); }
};

// New keys and values [Hkv, n, D] / [Hkv, n, Dv], dense: f32, or bf16 when the *_bf16 pointers
// are set instead. f32 is rounded to bf16 for bf16 pages.
struct KvRows {
  int64_t tokens = 0;
  const float* key = nullptr;
  const float* value = nullptr;
  const uint16_t* key_bf16 = nullptr;
  const uint16_t* value_bf16 = nullptr;
};

class KvLayerCache {
 public:
  explicit KvLayerCache(const KvLayout& layout);

  // Positions stored: [first_position(), tokens()).
  int64_t tokens() const { return tokens_; }
  // The first position still held (pages before it were dropped under a sliding window).
  int64_t first_position() const { return dropped_pages_ * layout_.page_tokens; }
  const KvLayout& layout() const { return layout_; }

  // Bytes of the pages Append(rows of n tokens) would make: new pages, and a copy of a shared
  // partly filled last page.
  int64_t BytesToAppend(int64_t n) const;
  // Appends the rows at positions [tokens(), tokens() + n), making pages from `pool` whose
  // bytes the caller reserved (BytesToAppend(n)); returns the bytes made, which are fewer when
  // a shared page stopped being shared in between (the caller gives the rest back).
  int64_t Append(const KvRows& rows, KvPagePool& pool);
  // Keeps positions < tokens (at most tokens()); pages no one holds any more go back to the pool.
  void Truncate(int64_t tokens);
  // Drops the pages wholly before `position`.
  void DropBefore(int64_t position);
  // A cache holding this one's positions < tokens (at most tokens()), sharing its pages.
  KvLayerCache Fork(int64_t tokens) const;

  // Pages held (per KV head, from the first held one): how many, and their bytes.
  int64_t pages_per_head() const;
  int64_t bytes() const;
  // For each KV head g, its held pages at [g * pages_per_head() + p] of `keys` and `values`.
  void PageTable(std::vector<const void*>& keys, std::vector<const void*>& values) const;
  // Dense f32 copies of the held positions, [Hkv, tokens() - first_position(), D] and Dv.
  void Gather(float* keys, float* values) const;

 private:
  using Pages = std::vector<std::shared_ptr<KvPage>>;  // one KV head's; null = dropped

  // Whether the last page of the heads is partly filled and shared (so copied before a write).
  bool LastPageShared() const;
  static void CopyRows(const float* f32, const uint16_t* bf16, int64_t rows, int64_t cols,
                       int64_t src_row, bool to_bf16, void* dst);

  KvLayout layout_;
  int64_t tokens_ = 0;
  int64_t dropped_pages_ = 0;
  std::vector<Pages> keys_, values_;  // per KV head
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_KV_KV_LAYER_CACHE_H_
