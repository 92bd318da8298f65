// Linear and layer-normalization layers on oneDNN (see dense_layers.h).
#include "src/layer/dense_layers.h"

#include <bit>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/runtime/onednn_util.h"

namespace attn {
namespace {

using dnnl::memory;

absl::Status OneDnnError(const dnnl::error& e) {
  return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
}

}  // namespace

DenseLayers::DenseLayers(size_t primitive_cache_capacity)
    : cache_(primitive_cache_capacity), engine_(dnnl::engine::kind::cpu, 0) {}

absl::Status DenseLayers::Linear(const MatrixView& x, const MatrixView& w, const float* bias,
                                 const float* residual, const MutableMatrix& y) const {
  try {
    // y = x . w + bias (+ residual as a full-shape binary post-op: a broadcast operand would
    // make oneDNN 2.6 fall back to its reference kernel)
    const memory::desc x_md = RowMajor(x.rows, x.cols, x.row_stride);
    const memory::desc w_md = RowMajor(w.rows, w.cols, w.row_stride);
    const memory::desc b_md = RowMajor(1, w.cols);
    const memory::desc y_md = RowMajor(y.rows, y.cols, y.row_stride);
    const memory::desc r_md = RowMajor(y.rows, y.cols);
    auto matmul = cache_.GetOrCreate(
        absl::StrCat("linear:", x.rows, "x", x.cols, "x", w.cols, ":ld", x.row_stride, ",",
                     w.row_stride, ",", y.row_stride, residual != nullptr ? ":res" : "",
                     ThreadsKey()),
        [&] {
          dnnl::primitive_attr attr = UserScratchpadAttr();
          if (residual != nullptr) {
            dnnl::post_ops ops;
            ops.append_binary(dnnl::algorithm::binary_add, r_md);
            attr.set_post_ops(ops);
          }
          return dnnl::matmul(dnnl::matmul::primitive_desc(
              dnnl::matmul::desc(x_md, w_md, b_md, y_md), attr, engine_));
        });
    dnnl::stream stream(engine_);
    std::vector<uint8_t> scratchpad;
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, Wrap(x_md, engine_, x.data)},
        {DNNL_ARG_WEIGHTS, Wrap(w_md, engine_, w.data)},
        {DNNL_ARG_BIAS, Wrap(b_md, engine_, bias)},
        {DNNL_ARG_DST, Wrap(y_md, engine_, y.data)},
        {DNNL_ARG_SCRATCHPAD, Scratchpad(*matmul, engine_, scratchpad)}};
    if (residual != nullptr) {
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                   Wrap(r_md, engine_, residual));
    }
    matmul->execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& e) {
    return OneDnnError(e);
  }
  return absl::OkStatus();
}

absl::Status DenseLayers::LayerNorm(const float* x, int64_t rows, int64_t cols, const float* gamma,
                                    const float* beta, float epsilon, float* y) const {
  try {
    // y = (x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta, per row
    const memory::desc data_md = RowMajor(rows, cols);
    const memory::desc param_md({cols}, memory::data_type::f32, memory::format_tag::x);
    const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    auto norm = cache_.GetOrCreate(
        absl::StrCat("layer_norm:", rows, "x", cols, ":eps", std::bit_cast<uint32_t>(epsilon), ThreadsKey()), [&] {
          return dnnl::layer_normalization_forward(dnnl::layer_normalization_forward::primitive_desc(
              dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference,
                                                      data_md, epsilon, flags),
              UserScratchpadAttr(), engine_));
        });
    dnnl::stream stream(engine_);
    std::vector<uint8_t> scratchpad;
    norm->execute(stream, {{DNNL_ARG_SRC, Wrap(data_md, engine_, x)},
                           {DNNL_ARG_DST, Wrap(data_md, engine_, y)},
                           {DNNL_ARG_SCALE, Wrap(param_md, engine_, gamma)},
                           {DNNL_ARG_SHIFT, Wrap(param_md, engine_, beta)},
                           {DNNL_ARG_SCRATCHPAD, Scratchpad(*norm, engine_, scratchpad)}});
    stream.wait();
  } catch (const dnnl::error& e) {
    return OneDnnError(e);
  }
  return absl::OkStatus();
}

}  // namespace attn
