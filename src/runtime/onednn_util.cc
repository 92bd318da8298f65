// Helpers shared by the oneDNN-based layers (see onednn_util.h).
#include "src/runtime/onednn_util.h"

#include <omp.h>

#include "absl/strings/str_cat.h"

namespace attn {

dnnl::memory::desc RowMajor(int64_t rows, int64_t cols, int64_t row_stride) {
  return dnnl::memory::desc({rows, cols}, dnnl::memory::data_type::f32,
                            dnnl::memory::dims{row_stride, 1});
}

dnnl::memory Wrap(const dnnl::memory::desc& md, const dnnl::engine& engine, const void* data) {
  return dnnl::memory(md, engine, const_cast<void*>(data));
}

dnnl::primitive_attr UserScratchpadAttr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

size_t ScratchpadBytes(const dnnl::primitive& primitive) {
  const dnnl_memory_desc_t* md =
      dnnl_primitive_desc_query_md(primitive.get_primitive_desc(), dnnl_query_scratchpad_md, 0);
  return md == nullptr ? 0 : dnnl_memory_desc_get_size(md);
}

dnnl::memory::desc ScratchpadDesc(size_t bytes) {
  return dnnl::memory::desc({static_cast<int64_t>(bytes)}, dnnl::memory::data_type::u8,
                            dnnl::memory::format_tag::x);
}

dnnl::memory Scratchpad(const dnnl::primitive& primitive, const dnnl::engine& engine,
                        std::vector<uint8_t>& buffer) {
  const size_t bytes = ScratchpadBytes(primitive);
  if (buffer.size() < bytes) buffer.resize(bytes);
  return dnnl::memory(ScratchpadDesc(bytes), engine, buffer.data());
}

std::string ThreadsKey() {
  return absl::StrCat(":t", omp_in_parallel() ? 1 : omp_get_max_threads());
}

}  // namespace attn
