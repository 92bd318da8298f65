// ResizeUninitialized (see uninitialized_resize.h). This file alone is compiled as C++23 for
// std::string::resize_and_overwrite, which GCC 12's libstdc++ offers only there; std::string's
// layout and the members it calls are the same in every -std mode.
#include "proto/uninitialized_resize.h"

namespace attn {

void ResizeUninitialized(std::string* s, size_t size) {
  // The operation returns `size`, not the length it is handed: GCC 12 hands it the grown
  // capacity instead of the requested size (fixed in GCC 13), e.g. 30 for 24 bytes.
  s->resize_and_overwrite(size, [size](char*, size_t) { return size; });
}

}  // namespace attn
