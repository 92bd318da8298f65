// Keeps freed memory in the process for reuse. By default glibc serves blocks above its mmap
// threshold with fresh mappings and gives the top of each heap back to the kernel once more
// than twice that is free, so every call that allocates and frees megabyte-sized message
// buffers page-faults all of them in again (measured by bench/server_overhead.sh: page faults
// were the largest cost of a 1.2 MB Attend call on these VMs). The price: the process keeps up
// to its peak working set instead of shrinking after a burst, so its RSS says little about
// leaks: HeapBytesInUse does. Each malloc arena keeps its own peak, and glibc makes up to 8 per
// core as threads contend, so arenas are capped at one per core: the soak's RSS went from
// 56-63 MiB growing 7-21% to a flat 41-46 MiB, and through the server small requests at
// concurrency 4 went 5-10% faster. Call KeepFreedMemoryForReuse once, early in main; both are
// thread-safe.
#ifndef ATTNSERVE_SRC_RUNTIME_MEMORY_REUSE_H_
#define ATTNSERVE_SRC_RUNTIME_MEMORY_REUSE_H_

#include <cstdint>

namespace attn {

// Blocks up to 32 MiB come from the heaps (not fresh mappings), up to 128 MiB free at the top
// of a heap stays there, and there are at most as many arenas as cores.
void KeepFreedMemoryForReuse();

// Bytes malloc has handed out and not got back, over all arenas and mmapped blocks (glibc's
// mallinfo2: uordblks + hblkhd). Freed memory kept for reuse does not count.
int64_t HeapBytesInUse();

}  // namespace attn

#endif  // ATTNSERVE_SRC_RUNTIME_MEMORY_REUSE_H_
