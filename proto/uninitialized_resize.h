// Growing a std::string without zero-filling the new bytes, for response tensors that are
// written in full right after (a 1 MB map's memset cost 7% of a small call in process).
#ifndef ATTNSERVE_PROTO_UNINITIALIZED_RESIZE_H_
#define ATTNSERVE_PROTO_UNINITIALIZED_RESIZE_H_

#include <cstddef>
#include <string>

namespace attn {

// Resizes `s` to `size` bytes; bytes past the old size are left unwritten (indeterminate) and
// the caller must overwrite every one of them before they are read.
void ResizeUninitialized(std::string* s, size_t size);

}  // namespace attn

#endif  // ATTNSERVE_PROTO_UNINITIALIZED_RESIZE_H_
