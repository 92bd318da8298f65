// A dense copy of a strided V (see dense_value.h).
#include "src/dense_value.h"

#include "absl/strings/str_cat.h"
#include "src/onednn_util.h"

namespace attn {

using dnnl::memory;

absl::Status MakeValueDense(AttentionInputs& in, PrimitiveCache& cache,
                            const dnnl::engine& engine, std::unique_ptr<float[]>& copy) {
  const AttentionDims& d = in.dims;
  const OperandStrides& s = in.value_strides;
  if (s.dense() || s.row == d.value_dim) return absl::OkStatus();  // rows already dense
  const memory::dims dims = {d.batch, d.kv_heads, d.kv_len, d.value_dim};
  const memory::desc from_md(dims, memory::data_type::f32,
                             memory::dims{s.batch, s.head, s.row, 1});
  const memory::desc to_md(dims, memory::data_type::f32, memory::format_tag::abcd);
  try {
    auto reorder = cache.GetOrCreate(
        absl::StrCat("dense_value:", d.batch, "x", d.kv_heads, "x", d.kv_len, "x", d.value_dim,
                     ":ld", s.batch, ",", s.head, ",", s.row, ThreadsKey()),
        [&] {
          return dnnl::reorder(dnnl::reorder::primitive_desc(engine, from_md, engine, to_md));
        });
    copy.reset(new float[d.batch * d.kv_heads * d.kv_len * d.value_dim]);  // all overwritten
    dnnl::stream stream(engine);
    reorder->execute(stream, {{DNNL_ARG_FROM, Wrap(from_md, engine, in.value)},
                              {DNNL_ARG_TO, Wrap(to_md, engine, copy.get())}});
    stream.wait();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
  }
  in.value = copy.get();
  in.value_strides = {};
  return absl::OkStatus();
}

}  // namespace attn
