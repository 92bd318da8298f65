// Dense copies of strided operands (see dense_operand.h).
#include "src/dense_operand.h"

#include "absl/strings/str_cat.h"
#include "src/onednn_util.h"

namespace attn {

using dnnl::memory;

absl::Status MakeDense(int64_t batch, int64_t heads, int64_t rows, int64_t cols,
                       const float*& data, OperandStrides& strides, PrimitiveCache& cache,
                       const dnnl::engine& engine, std::unique_ptr<float[]>& copy) {
  const OperandStrides s = strides.Resolved(heads, rows, cols);
  if (s == OperandStrides{}.Resolved(heads, rows, cols)) return absl::OkStatus();
  const memory::dims dims = {batch, heads, rows, cols};
  const memory::desc from_md(dims, memory::data_type::f32,
                             memory::dims{s.batch, s.head, s.row, 1});
  const memory::desc to_md(dims, memory::data_type::f32, memory::format_tag::abcd);
  try {
    auto reorder = cache.GetOrCreate(
        absl::StrCat("dense:", batch, "x", heads, "x", rows, "x", cols, ":ld", s.batch, ",",
                     s.head, ",", s.row, ThreadsKey()),
        [&] {
          return dnnl::reorder(dnnl::reorder::primitive_desc(engine, from_md, engine, to_md));
        });
    copy.reset(new float[batch * heads * rows * cols]);  // all overwritten
    dnnl::stream stream(engine);
    reorder->execute(stream, {{DNNL_ARG_FROM, Wrap(from_md, engine, data)},
                              {DNNL_ARG_TO, Wrap(to_md, engine, copy.get())}});
    stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
  }
  data = copy.get();
  strides = {};
  return absl::OkStatus();
}

}  // namespace attn
