// Primitives bound to reusable argument memories (see bound_primitive.h).
#include "src/runtime/bound_primitive.h"

#include "src/runtime/onednn_util.h"

namespace attn {

BoundPrimitive::BoundPrimitive(std::shared_ptr<const dnnl::primitive> primitive,
                               const dnnl::engine& engine,
                               std::initializer_list<std::pair<int, dnnl::memory::desc>> args,
                               std::vector<uint8_t>& scratchpad)
    : primitive_(std::move(primitive)), scratchpad_(scratchpad) {
  for (const auto& [arg, md] : args) args_.emplace(arg, dnnl::memory(md, engine, nullptr));
  scratchpad_bytes_ = ScratchpadBytes(*primitive_);
  if (scratchpad_bytes_ > 0) {
    args_.emplace(DNNL_ARG_SCRATCHPAD,
                  dnnl::memory(ScratchpadDesc(scratchpad_bytes_), engine, nullptr));
  }
}

void BoundPrimitive::Run(dnnl::stream& stream,
                         std::initializer_list<std::pair<int, const void*>> data) {
  for (const auto& [arg, pointer] : data) {
    args_.at(arg).set_data_handle(const_cast<void*>(pointer));
  }
  if (scratchpad_bytes_ > 0) {
    if (scratchpad_.size() < scratchpad_bytes_) scratchpad_.resize(scratchpad_bytes_);
    args_.at(DNNL_ARG_SCRATCHPAD).set_data_handle(scratchpad_.data());
  }
  primitive_->execute(stream, args_);
  stream.wait();
}

}  // namespace attn
