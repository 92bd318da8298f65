// glibc malloc settings that keep freed memory for reuse (see memory_reuse.h).
#include "src/runtime/memory_reuse.h"

#include <malloc.h>

#include <algorithm>
#include <thread>

namespace attn {

void KeepFreedMemoryForReuse() {
  constexpr int kMmapThreshold = 32 << 20;  // glibc's largest allowed value
  constexpr int kTrimThreshold = 128 << 20;
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
  mallopt(M_ARENA_MAX, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

int64_t HeapBytesInUse() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<int64_t>(info.uordblks + info.hblkhd);
}

}  // namespace attn
