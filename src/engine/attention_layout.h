// Layout: where one AttentionEngine::Run's operands live (their strides, the views' own or
// dense [B, heads, rows, cols]) and how its query rows are grouped into units of work: one
// query head, or, when Q and O are laid out head after head, the G = H / Hkv query heads that
// share KV head g, whose rows then form one [G*Sq, D] matrix against the same K_g and V_g.
// A plain value, computed again whenever the engine replaces an operand by a copy.
#ifndef ATTNSERVE_SRC_ENGINE_ATTENTION_LAYOUT_H_
#define ATTNSERVE_SRC_ENGINE_ATTENTION_LAYOUT_H_

#include <cstdint>

#include "src/engine/attention_types.h"

namespace attn {

struct Layout {
  OperandStrides q, k, v, o;
  bool merge_group_heads = false;  // a unit is a KV group's G heads, not a single head
  int64_t units_per_batch = 0;
  int64_t rows_per_unit = 0;

  Layout(const AttentionInputs& in, const AttentionOutputs& out) {
    const AttentionDims& d = in.dims;
    q = in.query_strides.Resolved(d.heads, d.q_len, d.head_dim);
    k = in.key_strides.Resolved(d.kv_heads, d.kv_len, d.head_dim);
    v = in.value_strides.Resolved(d.kv_heads, d.kv_len, d.value_dim);
    o = out.output_strides.Resolved(d.heads, d.q_len, d.value_dim);
    merge_group_heads = q.head == d.q_len * q.row && o.head == d.q_len * o.row;
    units_per_batch = merge_group_heads ? d.kv_heads : d.heads;
    rows_per_unit = merge_group_heads ? d.group_size() * d.q_len : d.q_len;
  }

  int64_t KvHeadOfUnit(int64_t unit, int64_t group_size) const {
    return merge_group_heads ? unit : unit / group_size;
  }
};

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_ATTENTION_LAYOUT_H_
