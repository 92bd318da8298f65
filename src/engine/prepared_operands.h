// The operands of one AttentionEngine::Run as its matmuls read them, prepared once per call.
//
// K is either copied transposed, per (batch, KV head) a K^T [D, Sk] in oneDNN's blocked weights
// layout (KeyTransposedTag: blocks of 64 keys, one after the other, each holding all of D padded
// with zeros to 16 rows, 32 in bf16) -- oneDNN 2.6 runs Q K^T on its brgemm kernels only when
// the weights are dense row-major or in that layout; transposed or strided weights go to
// gemm:jit, in f32 about half as fast, in bf16 over 10x slower. In that layout the keys
// [k, k + w) from any multiple of 64 k are themselves a [D, w] matrix of the layout, so a
// matmul reads any run of keys in place, as wide as the keys it needs (causal blocks end on the
// diagonal). Or, for units of few query rows (decode), K is read in place (f32, or bf16 inputs
// computed in bf16; Q and V too): the engine then computes S^T = K Q^T with a transposed copy
// of the few Q rows instead, which spares a whole pass over K. Otherwise, for bf16 compute, Q
// and V are dense bf16 copies too, made from f32 or bf16 inputs of any strides. For f32, Q and
// V are read in place, except a V whose rows are not dense (a projection's [B,S,H*D] output
// seen head by head): oneDNN 2.6's brgemm reads only dense matrices, a strided V as P V's
// weights runs gemm:jit at about half speed, and every block of query rows reads all of its
// head's V, so V is copied dense once per call. (A strided Q is copied a block of rows at a
// time by the pieces instead: each row is read once.) When every (batch, KV head) is read by a
// single piece (its rows make one block: a group's heads count together when they merge into
// one matrix), that piece makes the head's copies itself right before it reads them, into
// buffers of its own that stay in its caches: no copy of the whole call is written and read
// back.
//
// Below the AVX-512 tiers oneDNN 2.6 has no brgemm matmul, and its gemm:jit reads the blocked
// layout only through its reference kernel: there K^T is not blocked but a transposed view of
// K's rows (a strided matrix gemm:jit takes as it is) -- of the input itself for f32 (no copy),
// of a dense copy of each head's K rounded to bfloat16 for bf16 compute emulated in f32. For
// that emulation (AttentionInputs::bf16_in_f32) the K^T copy rounds too, and V is always copied
// dense and rounded. Plain data; not thread-safe to fill, read-only after.
#ifndef ATTNSERVE_SRC_ENGINE_PREPARED_OPERANDS_H_
#define ATTNSERVE_SRC_ENGINE_PREPARED_OPERANDS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "dnnl.hpp"
#include "src/engine/attention_layout.h"
#include "src/engine/attention_types.h"
#include "src/engine/kernels/operand_copies.h"

namespace attn {

// The layout of each head's K^T [D, Sk]: BA16a64b, or BA16a64b2a (pairs of rows interleaved)
// for bf16.
dnnl::memory::format_tag KeyTransposedTag(bool bf16);

// Where one head's K^T elements go, read off oneDNN's desc `head_t` of that layout.
KeyTransposedLayout KeyTransposedLayoutOf(const dnnl::memory::desc& head_t);

// Where one (batch, KV head)'s copies go: its K^T (f32 or bf16) and, for bf16 compute, its V and
// its group's G query heads, each dense; for f32, its V made dense when dense_value is set.
// For bf16_in_f32, key_t and dense_value hold values rounded to bf16; without a blocked K^T,
// key_t holds K's rows [Sk, D], dense.
struct HeadCopies {
  float* key_t = nullptr;
  uint16_t* key_t_bf16 = nullptr;
  uint16_t* query = nullptr;
  uint16_t* value = nullptr;
  float* dense_value = nullptr;
};

struct PreparedOperands {
  int64_t tile_keys = 0;        // keys per tile: the key tile, or Sk when shorter
  bool keys_transposed = true;  // K as K^T; false: K rows as given (S^T = K Q^T)
  // K not transposed, bf16 inputs computed in f32: the pieces widen each tile of K and V, and
  // their Q rows, to f32 as they read them.
  bool widen_tiles = false;
  // K^T in the blocked layout (AVX-512 tiers); false: a transposed view of K's rows.
  bool key_t_blocked = true;
  // Each (batch, KV head) is read by one piece only: that piece makes its own copies just
  // before it reads them (so they are still in its caches), by prepare_head(b * Hkv + g, to),
  // and none of the arrays below is made.
  bool copies_by_pieces = false;
  std::function<void(int64_t head, const HeadCopies& to)> prepare_head;
  int64_t key_t_head = 0;       // elements of one head's K^T or K copy (keys_transposed)
  int64_t key_t_block = 0;      // elements of one block of kKeyBlock keys in it
  std::unique_ptr<float[]> key_t;          // f32 compute, keys_transposed (blocked or rounded)
  std::unique_ptr<uint16_t[]> key_t_bf16;  // bf16 compute, keys_transposed
  std::unique_ptr<uint16_t[]> query;       // bf16 compute: scale * Q [B,H,Sq,D], dense
  std::unique_ptr<uint16_t[]> value;       // bf16 compute: V [B,Hkv,Sk,Dv], dense
  // f32, keys_transposed: V dense, where the rows are strided and K^T blocked, or rounded
  std::unique_ptr<float[]> dense_value;
};

// Dense f32 copies of bf16 inputs, for calls computed in f32.
struct WidenedInputs {
  std::unique_ptr<float[]> query, key, value;
};

// `in` with its bf16 inputs (laid out as `layout`) widened into `widened`, dense [B,H,S,C]
// (exact): the f32 pointers set to them, the bf16 ones cleared, the strides dense. The calling
// thread's OpenMP threads share the heads.
AttentionInputs WidenBf16Inputs(const AttentionInputs& in, const Layout& layout,
                                WidenedInputs& widened);

// Fills `prepared` (whose tile_keys, keys_transposed, key_t_blocked and copies_by_pieces are
// set; tile_keys a multiple of kKeyBlock or Sk) from `in`, laid out as `layout`, one (batch, KV
// head) at a time (operand_copies.h), the calling thread's OpenMP threads sharing the heads --
// or, with copies_by_pieces, only sets prepare_head and the sizes. INTERNAL when oneDNN fails.
absl::Status PrepareOperands(const AttentionInputs& in, const Layout& layout,
                             PreparedOperands& prepared);

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_PREPARED_OPERANDS_H_
