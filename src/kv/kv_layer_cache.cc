// KvLayerCache (see kv_layer_cache.h).
#include "src/kv/kv_layer_cache.h"

#include <algorithm>
#include <cstring>

#include "src/runtime/dtype.h"

namespace attn {

KvLayerCache::KvLayerCache(const KvLayout& layout)
    : layout_(layout), keys_(layout.kv_heads), values_(layout.kv_heads) {}

bool KvLayerCache::LastPageShared() const {
  if (tokens_ % layout_.page_tokens == 0 || keys_.empty() || keys_[0].empty()) return false;
  for (int64_t g = 0; g < layout_.kv_heads; ++g) {
    if (keys_[g].back().use_count() > 1 || values_[g].back().use_count() > 1) return true;
  }
  return false;
}

int64_t KvLayerCache::BytesToAppend(int64_t n) const {
  const int64_t p = layout_.page_tokens;
  const int64_t filled = tokens_ % p;  // of the last page; 0 when it is full or there is none
  const int64_t room = filled == 0 ? 0 : p - filled;
  int64_t pages = (std::max<int64_t>(0, n - room) + p - 1) / p;
  if (n > 0 && room > 0 && LastPageShared()) ++pages;
  return pages * layout_.kv_heads * (layout_.key_page_bytes() + layout_.value_page_bytes());
}

void KvLayerCache::CopyRows(const float* f32, const uint16_t* bf16, int64_t rows, int64_t cols,
                            int64_t src_row, bool to_bf16, void* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    if (to_bf16 && bf16 != nullptr) {
      std::memcpy(static_cast<uint16_t*>(dst) + r * cols, bf16 + r * src_row, cols * 2);
    } else if (to_bf16) {
      uint16_t* out = static_cast<uint16_t*>(dst) + r * cols;
      for (int64_t c = 0; c < cols; ++c) out[c] = FloatToBFloat16(f32[r * src_row + c]);
    } else if (bf16 != nullptr) {
      float* out = static_cast<float*>(dst) + r * cols;
      for (int64_t c = 0; c < cols; ++c) out[c] = BFloat16ToFloat(bf16[r * src_row + c]);
    } else {
      std::memcpy(static_cast<float*>(dst) + r * cols, f32 + r * src_row, cols * 4);
    }
  }
}

int64_t KvLayerCache::Append(const KvRows& rows, KvPagePool& pool) {
  const int64_t p = layout_.page_tokens, n = rows.tokens;
  const int64_t dk = layout_.head_dim, dv = layout_.value_dim, eb = layout_.element_bytes();
  int64_t made = 0;
  auto new_page = [&](int64_t bytes) {
    made += bytes;
    return pool.NewPage(bytes);
  };
  const bool copy_last = LastPageShared();
  for (int64_t g = 0; g < layout_.kv_heads; ++g) {
    Pages& k_pages = keys_[g];
    Pages& v_pages = values_[g];
    if (copy_last) {  // copy on write
      for (Pages* pages : {&k_pages, &v_pages}) {
        std::shared_ptr<KvPage> copy = new_page(pages->back()->bytes);
        std::memcpy(copy->data, pages->back()->data, copy->bytes);
        pages->back() = std::move(copy);
      }
    }
    const float* k32 = rows.key ? rows.key + g * n * dk : nullptr;
    const float* v32 = rows.value ? rows.value + g * n * dv : nullptr;
    const uint16_t* k16 = rows.key_bf16 ? rows.key_bf16 + g * n * dk : nullptr;
    const uint16_t* v16 = rows.value_bf16 ? rows.value_bf16 + g * n * dv : nullptr;
    for (int64_t done = 0; done < n;) {
      const int64_t position = tokens_ + done;
      const int64_t in_page = position % p;
      if (in_page == 0) {
        // Zeroed, so that no uninitialised memory is ever visible (the engine reads only the
        // positions held).
        for (Pages* pages : {&k_pages, &v_pages}) {
          pages->push_back(new_page(pages == &k_pages ? layout_.key_page_bytes()
                                                       : layout_.value_page_bytes()));
          std::memset(pages->back()->data, 0, pages->back()->bytes);
        }
      }
      const int64_t count = std::min(n - done, p - in_page);
      CopyRows(k32 ? k32 + done * dk : nullptr, k16 ? k16 + done * dk : nullptr, count, dk, dk,
               layout_.bf16, static_cast<char*>(k_pages.back()->data) + in_page * dk * eb);
      CopyRows(v32 ? v32 + done * dv : nullptr, v16 ? v16 + done * dv : nullptr, count, dv, dv,
               layout_.bf16, static_cast<char*>(v_pages.back()->data) + in_page * dv * eb);
      done += count;
    }
  }
  tokens_ += n;
  return made;
}

void KvLayerCache::Truncate(int64_t tokens) {
  tokens_ = std::min(tokens_, tokens);
  const int64_t pages = (tokens_ + layout_.page_tokens - 1) / layout_.page_tokens;
  for (int64_t g = 0; g < layout_.kv_heads; ++g) {
    if (static_cast<int64_t>(keys_[g].size()) > pages) keys_[g].resize(pages);
    if (static_cast<int64_t>(values_[g].size()) > pages) values_[g].resize(pages);
  }
  dropped_pages_ = std::min(dropped_pages_, pages);
}

void KvLayerCache::DropBefore(int64_t position) {
  const int64_t drop = std::min(position / layout_.page_tokens,
                                static_cast<int64_t>(keys_.empty() ? 0 : keys_[0].size()));
  for (int64_t g = 0; g < layout_.kv_heads; ++g) {
    for (int64_t p = dropped_pages_; p < drop; ++p) {
      keys_[g][p].reset();
      values_[g][p].reset();
    }
  }
  dropped_pages_ = std::max(dropped_pages_, drop);
}

KvLayerCache KvLayerCache::Fork(int64_t tokens) const {
  KvLayerCache fork = *this;
  fork.Truncate(tokens);
  return fork;
}

int64_t KvLayerCache::pages_per_head() const {
  return keys_.empty() ? 0 : static_cast<int64_t>(keys_[0].size()) - dropped_pages_;
}

int64_t KvLayerCache::bytes() const {
  return pages_per_head() * layout_.kv_heads *
         (layout_.key_page_bytes() + layout_.value_page_bytes());
}

void KvLayerCache::PageTable(std::vector<const void*>& keys,
                             std::vector<const void*>& values) const {
  const int64_t pages = pages_per_head();
  keys.resize(layout_.kv_heads * pages);
  values.resize(layout_.kv_heads * pages);
  for (int64_t g = 0; g < layout_.kv_heads; ++g) {
    for (int64_t p = 0; p < pages; ++p) {
      keys[g * pages + p] = keys_[g][dropped_pages_ + p]->data;
      values[g * pages + p] = values_[g][dropped_pages_ + p]->data;
    }
  }
}

void KvLayerCache::Gather(float* keys, float* values) const {
  const int64_t p = layout_.page_tokens, first = first_position();
  const int64_t held = tokens_ - first, dk = layout_.head_dim, dv = layout_.value_dim;
  const bool bf16 = layout_.bf16;
  for (int64_t g = 0; g < layout_.kv_heads; ++g) {
    for (int64_t position = first; position < tokens_; position += p) {
      const int64_t count = std::min(p, tokens_ - position);
      const KvPage& k = *keys_[g][position / p];
      const KvPage& v = *values_[g][position / p];
      float* k_out = keys + (g * held + position - first) * dk;
      float* v_out = values + (g * held + position - first) * dv;
      CopyRows(bf16 ? nullptr : static_cast<const float*>(k.data),
               bf16 ? static_cast<const uint16_t*>(k.data) : nullptr, count, dk, dk, false,
               k_out);
      CopyRows(bf16 ? nullptr : static_cast<const float*>(v.data),
               bf16 ? static_cast<const uint16_t*>(v.data) : nullptr, count, dv, dv, false,
               v_out);
    }
  }
}

}  // namespace attn
