// Operand preparation for the attention engine (see prepared_operands.h).
#include "src/prepared_operands.h"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "src/onednn_util.h"

namespace attn {
namespace {

using dnnl::memory;
using dt = memory::data_type;

// K (any strides) -> each (batch, KV head)'s K^T [D, Sk] in the blocked layout, one after the
// other, `head_bytes` apart. One cached reorder run per (batch, KV head). The reorder writes
// the layout's padding (rows past D, keys past Sk) with zeros.
void TransposeKeys(const AttentionInputs& in, const OperandStrides& k, dt type,
                   int64_t head_bytes, void* key_t, PrimitiveCache& cache,
                   const dnnl::engine& engine) {
  const AttentionDims& d = in.dims;
  const memory::dims dims = {d.head_dim, d.kv_len};
  const memory::desc from(dims, dt::f32, memory::dims{1, k.row});
  const memory::desc to(dims, type, KeyTransposedTag(type == dt::bf16));
  // Reorders the heads [first, last) (numbered b * Hkv + g) with the calling thread's threads.
  auto reorder_heads = [&](int64_t first, int64_t last) {
    auto reorder = cache.GetOrCreate(
        absl::StrCat("key_t:", d.head_dim, "x", d.kv_len, ":ld", k.row,
                     type == dt::bf16 ? ":bf16" : "", ThreadsKey()),
        [&] { return dnnl::reorder(dnnl::reorder::primitive_desc(engine, from, engine, to)); });
    dnnl::stream stream(engine);
    for (int64_t head = first; head < last; ++head) {
      const int64_t b = head / d.kv_heads, g = head % d.kv_heads;
      const float* head_keys = in.key + b * k.batch + g * k.head;
      char* head_key_t = static_cast<char*>(key_t) + head * head_bytes;
      reorder->execute(stream, {{DNNL_ARG_FROM, Wrap(from, engine, head_keys)},
                                {DNNL_ARG_TO, Wrap(to, engine, head_key_t)}});
    }
    stream.wait();
  };
  const int64_t heads = d.batch * d.kv_heads;
  const int threads = omp_get_max_threads();
  if (threads == 1 || heads < threads) {
    reorder_heads(0, heads);  // each reorder uses every thread
    return;
  }
  // Enough heads: an even share per thread, each reorder single-threaded inside (one OpenMP
  // team for all of them, not one per head).
  std::exception_ptr error;
  std::mutex error_mu;
#pragma omp parallel num_threads(threads)
  {
    const int64_t share = (heads + threads - 1) / threads;
    const int64_t first = std::min(heads, omp_get_thread_num() * share);
    try {
      reorder_heads(first, std::min(heads, first + share));
    } catch (...) {
      std::lock_guard lock(error_mu);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// The strides of [B, heads, rows, cols] seen through `s` (all zero: dense).
memory::dims StridesOf(const OperandStrides& s, int64_t heads, int64_t rows, int64_t cols) {
  const OperandStrides r = s.Resolved(heads, rows, cols);
  return {r.batch, r.head, r.row, 1};
}

}  // namespace

memory::format_tag KeyTransposedTag(bool bf16) {
  return bf16 ? memory::format_tag::BA16a64b2a : memory::format_tag::BA16a64b;
}

absl::Status PrepareOperands(const AttentionInputs& in, const OperandStrides& key_strides,
                             PrimitiveCache& cache, const dnnl::engine& engine,
                             PreparedOperands& prepared) {
  const AttentionDims& d = in.dims;
  if (in.bf16_compute && !prepared.keys_transposed) {
    return absl::InternalError("bf16 compute reads K transposed");
  }
  if (!prepared.keys_transposed) return absl::OkStatus();  // f32 K, Q and V read in place
  try {
    const dt type = in.bf16_compute ? dt::bf16 : dt::f32;
    // One head's K^T as its desc lays it out: the block stride is that of the key dimension.
    const memory::desc head_t({d.head_dim, d.kv_len}, type, KeyTransposedTag(in.bf16_compute));
    const int64_t element_bytes = in.bf16_compute ? sizeof(uint16_t) : sizeof(float);
    prepared.key_t_head = static_cast<int64_t>(head_t.get_size()) / element_bytes;
    prepared.key_t_block = head_t.data.format_desc.blocking.strides[1];
    const int64_t key_elements = d.batch * d.kv_heads * prepared.key_t_head;
    const int64_t head_bytes = prepared.key_t_head * element_bytes;
    if (in.bf16_compute) {
      // The scale goes into the Q copy: as the QK^T matmul's output scale it cost a pass over
      // every bf16 score tile.
      prepared.query = ToBFloat16(in.query, {d.batch, d.heads, d.q_len, d.head_dim},
                                  StridesOf(in.query_strides, d.heads, d.q_len, d.head_dim),
                                  in.scale, engine);
      prepared.value =
          ToBFloat16(in.value, {d.batch, d.kv_heads, d.kv_len, d.value_dim},
                     StridesOf(in.value_strides, d.kv_heads, d.kv_len, d.value_dim), 1.0f, engine);
      prepared.key_t_bf16.reset(new uint16_t[key_elements]);  // no zeroing: all overwritten
      TransposeKeys(in, key_strides, type, head_bytes, prepared.key_t_bf16.get(), cache, engine);
    } else {
      prepared.key_t.reset(new float[key_elements]);
      TransposeKeys(in, key_strides, type, head_bytes, prepared.key_t.get(), cache, engine);
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace attn
