// Scaled dot-product attention on oneDNN primitives (see attention_engine.h): one call's
// preparation, then its pieces of work (piece_runner.h).
//
// Q, K, V and O may be strided views (a projection's [B,S,H*D] output seen head by head); the
// layout (attention_layout.h) says where each lives. At the AVX-512 tiers K is copied once,
// transposed, and a strided V made dense (see PreparedOperands; brgemm reads only dense
// matrices), a strided Q a piece's rows at a time; below them (gemm:jit) all three are read in
// place -- as they are in units of few rows at every tier. In bf16 the dense bf16 copies of Q
// and V are made from any strides, from f32 or bf16 inputs; emulated bf16 rounds its copies;
// bf16 inputs computed in f32 are widened first, or a tile at a time in units of few rows.
#include "src/engine/attention_engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "src/engine/attention_layout.h"
#include "src/engine/piece_runner.h"
#include "src/engine/prepared_operands.h"
#include "src/runtime/cpu_tier.h"

namespace attn {
namespace {

// Units of at most kFewRows rows are bound by memory bandwidth, so they compute in f32 when
// bf16 is asked for of f32 inputs (bf16 copies of K and V would cost another pass over both and
// save nothing), and, where bf16 matmuls are native, in bf16 from bf16 inputs, read as they are
// (half the bytes of f32).
constexpr int64_t kFewRows = AttentionEngine::kFewRows;

// The scores of one tile of keys for units of few rows take up to this many bytes (by default;
// at least kDefaultKeyTile keys): 2048 keys for decode with 4 query heads per KV head. Chosen by
// measurement (docs/performance.md).
constexpr int64_t kFewRowsTileBytes = 32 << 10;

}  // namespace

AttentionEngine::AttentionEngine(Options options)
    : key_tile_(options.key_tile),
      tier_(ActiveCpuTier()),
      bf16_matmuls_(ActiveBf16Matmuls()),
      cache_(options.primitive_cache_capacity),
      engine_(dnnl::engine::kind::cpu, 0) {}

absl::Status AttentionEngine::Run(const AttentionInputs& inputs, const AttentionOutputs& outputs,
                                  const StopCheck& stop) const {
  if (inputs.pages != nullptr) return RunPaged(inputs, outputs, stop);
  const AttentionDims& d = inputs.dims;
  // As computed: Q and V as the matmuls read them, few-row units of f32 inputs in f32 (see
  // kFewRows).
  AttentionInputs in = inputs;
  Layout layout(in, outputs);
  const bool bf16 =
      inputs.bf16_compute && (layout.rows_per_unit > kFewRows || inputs.bf16_inputs());
  // Without native bf16 matmuls, bf16 is emulated in f32 (few-row units compute in f32: their
  // inputs, when bf16, are exact in f32).
  in.bf16_compute = bf16 && bf16_matmuls_ == Bf16Matmuls::kNative;
  in.bf16_in_f32 = bf16 && !in.bf16_compute && layout.rows_per_unit > kFewRows;
  PreparedOperands prepared;
  prepared.keys_transposed = layout.rows_per_unit > kFewRows;
  // bf16 inputs computed in f32: widened first, or, in units of few rows (which read their
  // operands in place), a tile at a time by the pieces (a whole copy would cost more than it).
  WidenedInputs widened;
  if (in.bf16_inputs() && !in.bf16_compute && prepared.keys_transposed) {
    in = WidenBf16Inputs(in, layout, widened);
    layout = Layout(in, outputs);
  }
  prepared.widen_tiles = in.bf16_inputs() && !in.bf16_compute;
  prepared.key_t_blocked = tier_ >= CpuTier::kAvx512;
  int64_t key_tile = key_tile_ > 0 ? key_tile_ : kDefaultKeyTile;
  if (key_tile_ == 0 && !prepared.keys_transposed && !prepared.widen_tiles) {
    // Few rows: tiles as wide as kFewRowsTileBytes of their scores allow (fewer matmul calls).
    // (Not when the pieces widen bf16 tiles: those must stay in L2 -- 2048-key tiles of
    // (16,32,1,4096,128) took 37.6 ms where 512-key ones take 31.0.)
    key_tile = std::max(key_tile, kFewRowsTileBytes / static_cast<int64_t>(sizeof(float)) /
                                      layout.rows_per_unit / kKeyBlock * kKeyBlock);
  }
  // Tiles start on the K^T layout's blocks.
  prepared.tile_keys =
      std::min((key_tile + kKeyBlock - 1) / kKeyBlock * kKeyBlock, d.kv_len);
  // The pieces read bf16 Q and V from dense copies (Q's heads may then merge into units), or
  // with K not transposed as they are; emulated bf16 reads V from a dense rounded copy (Q is
  // rounded a piece's rows at a time).
  AttentionInputs as_read = in;
  if (in.bf16_compute && prepared.keys_transposed) {
    as_read.query_strides = as_read.value_strides = {};
  } else if (in.bf16_in_f32) {
    as_read.value_strides = {};
  }
  const Layout read_layout(as_read, outputs);
  // When each (batch, KV head) is one piece -- its unit one block of rows, and a unit per KV
  // head -- that piece makes its own copies (an f32 V that is not dense is copied once per call
  // instead). f32 with K^T not blocked copies nothing.
  prepared.copies_by_pieces =
      prepared.keys_transposed && (prepared.key_t_blocked || in.bf16_in_f32) &&
      read_layout.rows_per_unit <= kBlockRows &&
      (read_layout.merge_group_heads || d.group_size() == 1) &&
      (in.bf16_compute || in.bf16_in_f32 || layout.v.row == d.value_dim);
  if (absl::Status status = PrepareOperands(in, layout, prepared); !status.ok()) {
    return status;
  }
  if (in.bf16_compute || (in.bf16_in_f32 && prepared.copies_by_pieces)) {
    in = as_read;
    layout = read_layout;
  } else if (prepared.dense_value != nullptr) {
    in.value = prepared.dense_value.get();
    in.value_strides = {};
    layout = Layout(in, outputs);
  }
  return RunPieces(in, outputs, layout, prepared, cache_, engine_, stop);
}

absl::Status AttentionEngine::RunPaged(const AttentionInputs& inputs,
                                       const AttentionOutputs& outputs,
                                       const StopCheck& stop) const {
  const KvPages& pages = *inputs.pages;
  AttentionInputs in = inputs;
  const Layout layout(in, outputs);
  if (layout.rows_per_unit > kFewRows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "paged keys and values are read by units of at most ", kFewRows, " query rows; got ",
        layout.rows_per_unit));
  }
  if (pages.page_tokens <= 0 || pages.page_tokens % kKeyBlock != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_tokens must be a positive multiple of ", kKeyBlock, "; got ",
                     pages.page_tokens));
  }
  // A tile is a page, computed by the page product kernels (page_products.h) in f32 -- bf16
  // pages read as bf16 -- whatever the compute dtype asked (as units of few rows of f32 inputs
  // are: bound by memory bandwidth, they gain nothing from bf16 arithmetic).
  in.bf16_compute = false;
  in.bf16_in_f32 = false;
  in.query_bf16 = in.key_bf16 = in.value_bf16 = nullptr;
  PreparedOperands prepared;
  prepared.keys_transposed = false;
  prepared.tile_keys = std::min(pages.page_tokens, inputs.dims.kv_len);
  return RunPieces(in, outputs, layout, prepared, cache_, engine_, stop);
}

std::string AttentionEngine::OneDnnVersion() {
  const dnnl_version_t* v = dnnl_version();
  return absl::StrCat(v->major, ".", v->minor, ".", v->patch);
}

std::string AttentionEngine::OneDnnIsa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

}  // namespace attn
