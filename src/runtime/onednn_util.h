// Small helpers shared by the oneDNN-based layers: memory descriptors for strided row-major
// matrices, wrapping caller buffers, user-managed scratchpads and the cache key suffix for the
// calling thread's OpenMP thread count. Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_RUNTIME_ONEDNN_UTIL_H_
#define ATTNSERVE_SRC_RUNTIME_ONEDNN_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dnnl.hpp"

namespace attn {

// f32 rows x cols matrix whose rows are `row_stride` elements apart.
dnnl::memory::desc RowMajor(int64_t rows, int64_t cols, int64_t row_stride);
inline dnnl::memory::desc RowMajor(int64_t rows, int64_t cols) {
  return RowMajor(rows, cols, cols);
}

// A oneDNN memory over a caller's buffer (oneDNN never writes inputs).
dnnl::memory Wrap(const dnnl::memory::desc& md, const dnnl::engine& engine, const void* data);

// Attributes with a user-managed scratchpad: oneDNN's library-managed scratchpad may be shared
// between primitives, which corrupts results when they run concurrently.
dnnl::primitive_attr UserScratchpadAttr();

// Bytes of user scratchpad `primitive` needs (0 if none).
size_t ScratchpadBytes(const dnnl::primitive& primitive);

// The memory descriptor of a `bytes`-byte scratchpad.
dnnl::memory::desc ScratchpadDesc(size_t bytes);

// Grows `buffer` to what `primitive` needs and returns it as the primitive's scratchpad.
dnnl::memory Scratchpad(const dnnl::primitive& primitive, const dnnl::engine& engine,
                        std::vector<uint8_t>& buffer);

// ":t<n>" for the OpenMP threads a primitive created now may use (1 inside a parallel region).
// oneDNN sizes a primitive and its scratchpad for that count when it is created, so cached
// primitives are keyed by it.
std::string ThreadsKey();

}  // namespace attn

#endif  // ATTNSERVE_SRC_RUNTIME_ONEDNN_UTIL_H_
