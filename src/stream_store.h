// Copies and fills with non-temporal stores, for large outputs written once and not read back
// soon (the attention maps): the stores bypass the cache, so they neither read each line before
// writing it nor evict the working set. On x86-64 they are SSE2 streaming stores (in every
// x86-64 CPU); elsewhere plain copies. Call StreamStoreFence() before another thread reads what
// was stored. Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_STREAM_STORE_H_
#define ATTNSERVE_SRC_STREAM_STORE_H_

#include <cstdint>

namespace attn {

// to[i] = from[i] for i < n. `to` and `from` must not overlap; any alignment.
void StreamCopy(const float* from, int64_t n, float* to);

// to[i] = from[i] * scale for i < n (float products), as StreamCopy.
void StreamCopyScaled(const float* from, int64_t n, float scale, float* to);

// to[i] = value for i < n; any alignment.
void StreamFill(float value, int64_t n, float* to);

// Orders the streaming stores before every later store (sfence).
void StreamStoreFence();

}  // namespace attn

#endif  // ATTNSERVE_SRC_STREAM_STORE_H_
