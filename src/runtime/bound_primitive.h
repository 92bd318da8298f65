// A cached oneDNN primitive bound to dnnl::memory objects for each of its arguments, made once,
// so running it again only points them at new data: no memory objects, argument maps or cache
// keys are built per execution (for small attention blocks that overhead rivals the matmuls).
// Not thread-safe: one per worker thread (the engine's PieceRunner).
#ifndef ATTNSERVE_SRC_RUNTIME_BOUND_PRIMITIVE_H_
#define ATTNSERVE_SRC_RUNTIME_BOUND_PRIMITIVE_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dnnl.hpp"

namespace attn {

class BoundPrimitive {
 public:
  // `args`: every argument (DNNL_ARG_*) but the scratchpad, with its memory descriptor. The
  // scratchpad comes from `scratchpad`, grown as needed, shared with the thread's other
  // primitives.
  BoundPrimitive(std::shared_ptr<const dnnl::primitive> primitive, const dnnl::engine& engine,
                 std::initializer_list<std::pair<int, dnnl::memory::desc>> args,
                 std::vector<uint8_t>& scratchpad);

  // Points the arguments at `data` (every argument given at construction, any order) and runs
  // the primitive on `stream`, waiting for it.
  void Run(dnnl::stream& stream, std::initializer_list<std::pair<int, const void*>> data);

 private:
  std::shared_ptr<const dnnl::primitive> primitive_;
  std::unordered_map<int, dnnl::memory> args_;
  std::vector<uint8_t>& scratchpad_;
  size_t scratchpad_bytes_ = 0;
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_RUNTIME_BOUND_PRIMITIVE_H_
