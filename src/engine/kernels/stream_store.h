// Copies and fills of float outputs, with ordinary stores or with non-temporal ones. Streaming
// (non-temporal) stores suit large outputs written once and not read back soon (big attention
// maps): they bypass the cache, so they neither read each line before writing it nor evict the
// working set. Ordinary stores suit outputs read again soon (small maps, serialised right after):
// those stay in the cache. Streaming stores are SSE2's (in every x86-64 CPU); elsewhere all
// stores are ordinary. Call StreamStoreFence() before another thread reads what was streamed.
// Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_ENGINE_KERNELS_STREAM_STORE_H_
#define ATTNSERVE_SRC_ENGINE_KERNELS_STREAM_STORE_H_

#include <cstdint>

namespace attn {

enum class StoreMode { kCached, kStreaming };

// to[i] = from[i] for i < n. `to` and `from` must not overlap; any alignment.
void StoreCopy(const float* from, int64_t n, float* to, StoreMode mode);

// to[i] = from[i] * scale for i < n (float products), as StoreCopy.
void StoreCopyScaled(const float* from, int64_t n, float scale, float* to, StoreMode mode);

// to[i] = value for i < n; any alignment.
void StoreFill(float value, int64_t n, float* to, StoreMode mode);

// Orders the streaming stores before every later store (sfence).
void StreamStoreFence();

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_KERNELS_STREAM_STORE_H_
