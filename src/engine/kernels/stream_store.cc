// Copies and fills, ordinary or non-temporal (see stream_store.h).
#include "src/engine/kernels/stream_store.h"

#include <algorithm>
#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace attn {
namespace {

#if defined(__SSE2__)
// Elements before `to + i` is 16-byte aligned (as _mm_stream_ps needs), at most n.
int64_t UnalignedHead(const float* to, int64_t n) {
  const auto misaligned = reinterpret_cast<uintptr_t>(to) % 16;
  if (misaligned % sizeof(float) != 0) return n;  // never aligns: store element by element
  return std::min<int64_t>(n, (16 - misaligned) % 16 / sizeof(float));
}
#endif

}  // namespace

void StoreCopy(const float* from, int64_t n, float* to, StoreMode mode) {
  int64_t i = 0;
#if defined(__SSE2__)
  if (mode == StoreMode::kStreaming) {
    i = UnalignedHead(to, n);
    std::copy_n(from, i, to);
    for (; i + 4 <= n; i += 4) _mm_stream_ps(to + i, _mm_loadu_ps(from + i));
  }
#endif
  std::copy(from + i, from + n, to + i);
}

void StoreCopyScaled(const float* from, int64_t n, float scale, float* to, StoreMode mode) {
  int64_t i = 0;
#if defined(__SSE2__)
  if (mode == StoreMode::kStreaming) {
    for (const int64_t head = UnalignedHead(to, n); i < head; ++i) to[i] = from[i] * scale;
    const __m128 scales = _mm_set1_ps(scale);
    for (; i + 4 <= n; i += 4) _mm_stream_ps(to + i, _mm_mul_ps(_mm_loadu_ps(from + i), scales));
  }
#endif
  for (; i < n; ++i) to[i] = from[i] * scale;
}

void StoreFill(float value, int64_t n, float* to, StoreMode mode) {
  int64_t i = 0;
#if defined(__SSE2__)
  if (mode == StoreMode::kStreaming) {
    i = UnalignedHead(to, n);
    std::fill_n(to, i, value);
    const __m128 values = _mm_set1_ps(value);
    for (; i + 4 <= n; i += 4) _mm_stream_ps(to + i, values);
  }
#endif
  std::fill(to + i, to + n, value);
}

void StreamStoreFence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace attn
