// Operand preparation for the attention engine (see prepared_operands.h).
#include "src/engine/prepared_operands.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/engine/kernels/operand_copies.h"

namespace attn {
namespace {

using dnnl::memory;
using dt = memory::data_type;

// Makes (batch, KV head) `head`'s (b * Hkv + g) copies for bf16 compute from inputs of type T
// (f32 or bf16): its K^T, its V and its group's G query heads (times the scale) in dense bf16.
template <typename T>
void PrepareHeadInBf16(const T* query, const T* key, const T* value, const AttentionInputs& in,
                       const Layout& l, const KeyTransposedLayout& key_t, int64_t head,
                       CopyKernel kernel, const HeadCopies& to) {
  const AttentionDims& d = in.dims;
  const int64_t b = head / d.kv_heads, g = head % d.kv_heads;
  TransposeKeys(key + b * l.k.batch + g * l.k.head, d.kv_len, d.head_dim, l.k.row, key_t,
                to.key_t_bf16, kernel);
  ConvertRowsToBf16(value + b * l.v.batch + g * l.v.head, d.kv_len, d.value_dim, l.v.row, 1.0f,
                    to.value, d.value_dim, kernel);
  // The scale goes into the Q copy: as the QK^T matmul's output scale it cost a pass over
  // every bf16 score tile.
  for (int64_t i = 0; i < d.group_size(); ++i) {
    const int64_t h = g * d.group_size() + i;
    ConvertRowsToBf16(query + b * l.q.batch + h * l.q.head, d.q_len, d.head_dim, l.q.row,
                      in.scale, to.query + i * d.q_len * d.head_dim, d.head_dim, kernel);
  }
}

// Makes (batch, KV head) `head`'s (b * Hkv + g) copies: its K^T (blocked, or for bf16 emulated
// in f32 without a blocked K^T its rows, dense) and, for bf16 compute, its V and its group's G
// query heads (times the scale) in dense bf16; for f32, its V in dense f32 when `to` has room
// for it. For bf16_in_f32 the K and V copies are rounded to bf16.
void PrepareHead(const AttentionInputs& in, const Layout& l, const KeyTransposedLayout& key_t,
                 bool key_t_blocked, int64_t head, CopyKernel kernel, const HeadCopies& to) {
  if (in.bf16_compute && in.bf16_inputs()) {
    PrepareHeadInBf16(in.query_bf16, in.key_bf16, in.value_bf16, in, l, key_t, head, kernel, to);
    return;
  }
  if (in.bf16_compute) {
    PrepareHeadInBf16(in.query, in.key, in.value, in, l, key_t, head, kernel, to);
    return;
  }
  const AttentionDims& d = in.dims;
  const int64_t b = head / d.kv_heads, g = head % d.kv_heads;
  const float* key = in.key + b * l.k.batch + g * l.k.head;
  if (key_t_blocked) {
    TransposeKeys(key, d.kv_len, d.head_dim, l.k.row, key_t, to.key_t, kernel, in.bf16_in_f32);
  } else {
    RoundRowsToBf16(key, d.kv_len, d.head_dim, l.k.row, 1.0f, to.key_t, d.head_dim, kernel);
  }
  if (to.dense_value == nullptr) return;
  const float* value = in.value + b * l.v.batch + g * l.v.head;
  if (in.bf16_in_f32) {
    RoundRowsToBf16(value, d.kv_len, d.value_dim, l.v.row, 1.0f, to.dense_value, d.value_dim,
                    kernel);
    return;
  }
  for (int64_t k = 0; k < d.kv_len; ++k) {
    std::memcpy(to.dense_value + k * d.value_dim, value + k * l.v.row,
                d.value_dim * sizeof(float));
  }
}

}  // namespace

memory::format_tag KeyTransposedTag(bool bf16) {
  return bf16 ? memory::format_tag::BA16a64b2a : memory::format_tag::BA16a64b;
}

KeyTransposedLayout KeyTransposedLayoutOf(const memory::desc& head_t) {
  const dnnl_memory_desc_t& md = head_t.data;
  return {.padded_rows = md.padded_dims[0],
          .padded_keys = md.padded_dims[1],
          .row_block_stride = md.format_desc.blocking.strides[0],
          .key_block_stride = md.format_desc.blocking.strides[1]};
}

AttentionInputs WidenBf16Inputs(const AttentionInputs& in, const Layout& layout,
                                WidenedInputs& widened) {
  const AttentionDims& d = in.dims;
  // Each operand's heads (batch x heads of rows x cols) into a dense copy.
  auto widen = [](const uint16_t* from, const OperandStrides& at, int64_t batch, int64_t heads,
                  int64_t rows, int64_t cols, std::unique_ptr<float[]>& to) {
    to.reset(new float[batch * heads * rows * cols]);
#pragma omp parallel for schedule(static) if (batch * heads > 1)
    for (int64_t head = 0; head < batch * heads; ++head) {
      ConvertRowsToF32(from + head / heads * at.batch + head % heads * at.head, rows, cols, at.row,
                       to.get() + head * rows * cols);
    }
    return to.get();
  };
  AttentionInputs out = in;
  out.query = widen(in.query_bf16, layout.q, d.batch, d.heads, d.q_len, d.head_dim,
                    widened.query);
  out.key = widen(in.key_bf16, layout.k, d.batch, d.kv_heads, d.kv_len, d.head_dim, widened.key);
  out.value = widen(in.value_bf16, layout.v, d.batch, d.kv_heads, d.kv_len, d.value_dim,
                    widened.value);
  out.query_bf16 = out.key_bf16 = out.value_bf16 = nullptr;
  out.query_strides = out.key_strides = out.value_strides = {};
  return out;
}

absl::Status PrepareOperands(const AttentionInputs& in, const Layout& layout,
                             PreparedOperands& prepared) {
  const AttentionDims& d = in.dims;
  if (!prepared.keys_transposed) return absl::OkStatus();  // K, Q and V read in place
  // Without a blocked K^T, f32 reads K, Q and V in place too (gemm:jit takes any strides).
  const bool blocked = prepared.key_t_blocked;
  if (!blocked && !in.bf16_in_f32) return absl::OkStatus();
  const int64_t heads = d.batch * d.kv_heads;
  KeyTransposedLayout key_t;
  if (blocked) {
    try {
      // One head's K^T as oneDNN lays it out (the matmuls read it through the same desc).
      const memory::desc head_t({d.head_dim, d.kv_len}, in.bf16_compute ? dt::bf16 : dt::f32,
                                KeyTransposedTag(in.bf16_compute));
      key_t = KeyTransposedLayoutOf(head_t);
      const int64_t element_bytes = in.bf16_compute ? sizeof(uint16_t) : sizeof(float);
      prepared.key_t_head = static_cast<int64_t>(head_t.get_size()) / element_bytes;
      prepared.key_t_block = key_t.key_block_stride;
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
    }
  } else {
    prepared.key_t_head = d.kv_len * d.head_dim;  // K's rows, rounded
  }
  const CopyKernel kernel = BestCopyKernel();
  if (prepared.copies_by_pieces) {
    // The inputs and layout as they are now: the engine changes its own afterwards.
    prepared.prepare_head = [in, layout, key_t, blocked, kernel](int64_t head,
                                                                 const HeadCopies& to) {
      PrepareHead(in, layout, key_t, blocked, head, kernel, to);
    };
    return absl::OkStatus();
  }
  // No zeroing: every element is written, the layout's padding too.
  if (in.bf16_compute) {
    prepared.key_t_bf16.reset(new uint16_t[heads * prepared.key_t_head]);
    prepared.value.reset(new uint16_t[heads * d.kv_len * d.value_dim]);
    prepared.query.reset(new uint16_t[d.batch * d.heads * d.q_len * d.head_dim]);
  } else {
    prepared.key_t.reset(new float[heads * prepared.key_t_head]);
    // A head's V as a matrix is dense when its rows are; how heads lie apart does not matter.
    if (layout.v.row != d.value_dim || in.bf16_in_f32) {
      prepared.dense_value.reset(new float[heads * d.kv_len * d.value_dim]);
    }
  }
  // One OpenMP team for every head, an even share of them per thread.
#pragma omp parallel for schedule(static) if (heads > 1)
  for (int64_t head = 0; head < heads; ++head) {
    HeadCopies to;
    if (in.bf16_compute) {
      to.key_t_bf16 = prepared.key_t_bf16.get() + head * prepared.key_t_head;
      to.value = prepared.value.get() + head * d.kv_len * d.value_dim;
      to.query = prepared.query.get() + head * d.group_size() * d.q_len * d.head_dim;
    } else {
      to.key_t = prepared.key_t.get() + head * prepared.key_t_head;
      if (prepared.dense_value != nullptr) {
        to.dense_value = prepared.dense_value.get() + head * d.kv_len * d.value_dim;
      }
    }
    PrepareHead(in, layout, key_t, blocked, head, kernel, to);
  }
  return absl::OkStatus();
}

}  // namespace attn
