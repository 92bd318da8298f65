// Scaled dot-product attention on oneDNN primitives (see attention_engine.h).
//
// A unit of work is one query head, or, when Q and O are laid out head after head, the G = H / Hkv
// query heads that share KV head g: their rows then form one [G*Sq, D] matrix against the same
// K_g and V_g. A unit's rows are cut into blocks of at most kBlockRows; a piece of work is one
// (batch, unit, row block). Q, V and O may be strided views (a projection's [B,S,H*D] output
// seen head by head), so they are not copied apart; K is copied once, transposed (see
// PreparedOperands).
//
// With maps, a piece computes all Sk keys at once (the maps hold them anyway). Without maps it
// goes tile of keys by tile of keys with an online softmax, skipping tiles no row of the piece
// can see (causal, key_lengths).
#include "src/attention_engine.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <limits>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/mask_tile.h"
#include "src/online_softmax.h"
#include "src/onednn_util.h"

namespace attn {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

constexpr int64_t kBlockRows = 128;

OperandStrides Resolve(const OperandStrides& given, int64_t heads, int64_t rows, int64_t cols) {
  if (!given.dense()) return given;
  return {.batch = heads * rows * cols, .head = rows * cols, .row = cols};
}

// Where every operand lives, and how query rows are grouped into units of work.
struct Layout {
  OperandStrides q, k, v, o;
  bool merge_group_heads = false;  // a unit is a KV group's G heads, not a single head
  int64_t units_per_batch = 0;
  int64_t rows_per_unit = 0;

  Layout(const AttentionInputs& in, const AttentionOutputs& out) {
    const AttentionDims& d = in.dims;
    q = Resolve(in.query_strides, d.heads, d.q_len, d.head_dim);
    k = Resolve(in.key_strides, d.kv_heads, d.kv_len, d.head_dim);
    v = Resolve(in.value_strides, d.kv_heads, d.kv_len, d.value_dim);
    o = Resolve(out.output_strides, d.heads, d.q_len, d.value_dim);
    merge_group_heads = q.head == d.q_len * q.row && o.head == d.q_len * o.row;
    units_per_batch = merge_group_heads ? d.kv_heads : d.heads;
    rows_per_unit = merge_group_heads ? d.group_size() * d.q_len : d.q_len;
  }

  int64_t KvHeadOfUnit(int64_t unit, int64_t group_size) const {
    return merge_group_heads ? unit : unit / group_size;
  }
};

// One piece of work.
struct Piece {
  int64_t batch = 0;
  int64_t kv_head = 0;
  int64_t first_row = 0;  // row within the batch item, across heads (head * Sq + query)
  int64_t rows = 0;
};

// The operands as the matmuls read them. K is always copied transposed, per (batch, KV head)
// as tiles of `tile_keys` keys (the last one narrower when Sk is not a multiple), each a dense
// K_t^T [D, width]: oneDNN 2.6 runs QK^T on its brgemm kernels only when the weights are dense
// row-major; transposed or strided weights go to gemm:jit (in f32 about half as fast, in bf16
// over 10x slower). For bf16 compute Q and V are bf16 copies too and K^T is bf16; otherwise Q
// and V are read in place.
struct PreparedOperands {
  int64_t tile_keys = 0;                           // Sk with maps; the key tile (or Sk) without
  std::vector<float> key_t;                        // f32 compute
  std::vector<uint16_t> key_t_bf16, query, value;  // bf16 compute
};

// Reorders `tiles` tiles of `tile_keys` keys, from key first_key on, of every (batch, KV head)
// of K (any strides) into consecutive dense [D, tile_keys] tiles of the K^T copy. One cached
// reorder run per (batch, KV head): a single reorder over [B, Hkv, tiles, keys, D] with the
// heads' gaps for a narrower last tile in its strides put the second head wrong here.
void TransposeKeyTiles(const AttentionInputs& in, const OperandStrides& k, dt type,
                       int64_t first_key, int64_t tiles, int64_t tile_keys, void* key_t,
                       PrimitiveCache& cache, const dnnl::engine& engine) {
  const AttentionDims& d = in.dims;
  // dims [tile, key in tile, d]
  const memory::dims dims = {tiles, tile_keys, d.head_dim};
  const memory::desc from(dims, dt::f32, memory::dims{tile_keys * k.row, k.row, 1});
  const memory::desc to(dims, type, memory::dims{d.head_dim * tile_keys, 1, tile_keys});
  auto reorder = cache.GetOrCreate(
      absl::StrCat("key_t:", tiles, "x", tile_keys, "x", d.head_dim, ":ld", k.row,
                   type == dt::bf16 ? ":bf16" : "", ThreadsKey()),
      [&] { return dnnl::reorder(dnnl::reorder::primitive_desc(engine, from, engine, to)); });
  const int64_t element_bytes = type == dt::bf16 ? sizeof(uint16_t) : sizeof(float);
  dnnl::stream stream(engine);
  for (int64_t b = 0; b < d.batch; ++b) {
    for (int64_t g = 0; g < d.kv_heads; ++g) {
      const float* head_keys = in.key + b * k.batch + g * k.head + first_key * k.row;
      char* head_key_t = static_cast<char*>(key_t) +
                         ((b * d.kv_heads + g) * d.kv_len + first_key) * d.head_dim * element_bytes;
      reorder->execute(stream, {{DNNL_ARG_FROM, Wrap(from, engine, head_keys)},
                                {DNNL_ARG_TO, Wrap(to, engine, head_key_t)}});
    }
  }
  stream.wait();
}

// K -> K^T tiles of `type` (see PreparedOperands): the full tiles, then the narrower last one.
void TransposeKeys(const AttentionInputs& in, const OperandStrides& k, dt type,
                   int64_t tile_keys, void* key_t, PrimitiveCache& cache,
                   const dnnl::engine& engine) {
  const int64_t full_tiles = in.dims.kv_len / tile_keys;
  const int64_t rest = in.dims.kv_len - full_tiles * tile_keys;
  if (full_tiles > 0) {
    TransposeKeyTiles(in, k, type, 0, full_tiles, tile_keys, key_t, cache, engine);
  }
  if (rest > 0) {
    TransposeKeyTiles(in, k, type, full_tiles * tile_keys, 1, rest, key_t, cache, engine);
  }
}

// Runs pieces with its own scratch and stream; one per thread.
class PieceRunner {
 public:
  PieceRunner(const AttentionInputs& in, const AttentionOutputs& out, const Layout& layout,
              const PreparedOperands& prepared, PrimitiveCache& cache, const dnnl::engine& engine)
      : in_(in),
        out_(out),
        layout_(layout),
        prepared_(prepared),
        maps_(out.probabilities != nullptr || out.scores != nullptr),
        online_softmax_step_(BestOnlineSoftmaxStep()),
        cache_(cache),
        engine_(engine),
        stream_(engine),
        threads_key_(ThreadsKey()) {
    const AttentionDims& d = in.dims;
    const int64_t rows = std::min(kBlockRows, layout.rows_per_unit);
    const int64_t width = prepared.tile_keys;  // keys computed at once
    if (!in.mask.empty()) {
      tile_.resize(rows * width);
      row_has_key_ = std::make_unique<bool[]>(rows);
    }
    if (out.probabilities == nullptr || out.scores == nullptr) scratch_.resize(rows * width);
    if (in.bf16_compute) probs_bf16_.resize(rows * width);
    if (!maps_) {
      acc_.resize(rows * d.value_dim);
      row_max_.resize(rows);
      row_sum_.resize(rows);
    }
  }

  void Run(const Piece& piece) {
    const AttentionDims& d = in_.dims;
    const Layout& l = layout_;
    const int64_t head = piece.first_row / d.q_len;
    const int64_t query = piece.first_row % d.q_len;
    const int64_t q_at = piece.batch * l.q.batch + head * l.q.head + query * l.q.row;
    const int64_t k_at = (piece.batch * d.kv_heads + piece.kv_head) * d.head_dim * d.kv_len;
    const int64_t v_at = piece.batch * l.v.batch + piece.kv_head * l.v.head;
    const bool bf16 = in_.bf16_compute;
    const Operands ops = {
        .q = bf16 ? static_cast<const void*>(prepared_.query.data() + q_at) : in_.query + q_at,
        .k_t = bf16 ? static_cast<const void*>(prepared_.key_t_bf16.data() + k_at)
                    : prepared_.key_t.data() + k_at,
        .v = bf16 ? static_cast<const void*>(prepared_.value.data() + v_at) : in_.value + v_at,
        .o = out_.output + piece.batch * l.o.batch + head * l.o.head + query * l.o.row};
    if (maps_) {
      RunWithMaps(piece, ops);
    } else {
      RunTiled(piece, ops);
    }
  }

 private:
  // Where one piece's operands start (bf16 copies when computing in bf16).
  struct Operands {
    const void* q;
    const void* k_t;  // the K^T tiles of the piece's KV head
    const void* v;
    float* o;
  };

  // With maps: all Sk keys at once, into the maps' rows.
  void RunWithMaps(const Piece& piece, const Operands& ops) {
    const AttentionDims& d = in_.dims;
    const int64_t m = piece.rows;
    const int64_t keys = d.kv_len;
    const int64_t map_offset = (piece.batch * d.heads * d.q_len + piece.first_row) * keys;
    float* scores = out_.scores != nullptr ? out_.scores + map_offset
                                           : out_.probabilities + map_offset;
    float* probs = out_.probabilities != nullptr ? out_.probabilities + map_offset
                                                 : scratch_.data();
    const bool masked = !in_.mask.empty();
    if (masked) {
      FillMaskTile(in_.mask, d, piece.batch, piece.first_row, m, 0, keys, tile_.data(),
                   row_has_key_.get());
    }
    // scores = scale * Q K^T + mask_tile
    ComputeScores(ops, m, 0, keys, masked, scores);

    // P = softmax_j(scores), in place when only the probabilities are returned.
    const memory::desc s_md = RowMajor(m, keys);
    auto softmax = cache_.GetOrCreate(absl::StrCat("softmax:", m, "x", keys, threads_key_), [&] {
      return dnnl::softmax_v2_forward(dnnl::softmax_v2_forward::primitive_desc(
          dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                         dnnl::algorithm::softmax_accurate, s_md, s_md, 1),
          UserScratchpadAttr(), engine_));
    });
    softmax->execute(stream_, {{DNNL_ARG_SRC, Wrap(s_md, engine_, scores)},
                               {DNNL_ARG_DST, Wrap(s_md, engine_, probs)},
                               {DNNL_ARG_SCRATCHPAD, Scratchpad(*softmax, engine_, scratchpad_)}});
    stream_.wait();
    // A row with every key forbidden has P = 0 (softmax of all -inf would be NaN).
    if (masked) {
      for (int64_t r = 0; r < m; ++r) {
        if (!row_has_key_[r]) std::fill_n(probs + r * keys, keys, 0.0f);
      }
    }

    // P in bfloat16 for the P V matmul when computing in bf16
    const void* p = probs;
    if (in_.bf16_compute) {
      const memory::desc p_md({m, keys}, dt::bf16, memory::dims{keys, 1});
      auto to_bf16 = cache_.GetOrCreate(absl::StrCat("p_bf16:", m, "x", keys, threads_key_), [&] {
        return dnnl::reorder(dnnl::reorder::primitive_desc(engine_, s_md, engine_, p_md,
                                                           UserScratchpadAttr()));
      });
      to_bf16->execute(stream_, {{DNNL_ARG_FROM, Wrap(s_md, engine_, probs)},
                                 {DNNL_ARG_TO, Wrap(p_md, engine_, probs_bf16_.data())},
                                 {DNNL_ARG_SCRATCHPAD, Scratchpad(*to_bf16, engine_, scratchpad_)}});
      p = probs_bf16_.data();
    }

    // O = P V
    MultiplyByValues(ops, p, m, 0, keys, ops.o, layout_.o.row, /*accumulate=*/false);
  }

  // Without maps: per tile of keys (the K^T tiles), up to the last key any row of the piece
  // may see (causal, key_lengths; tiles past it are skipped),
  //   S_t = scale * Q K_t^T + mask_t;  P_t = exp(S_t - m), m, l and acc updated (online softmax);
  //   acc += P_t V_t;  and at the end O = acc / l.
  void RunTiled(const Piece& piece, const Operands& ops) {
    const AttentionDims& d = in_.dims;
    const int64_t m = piece.rows;
    const bool masked = !in_.mask.empty();
    const int64_t keys =
        masked ? VisibleKeysOfBlock(in_.mask, d, piece.batch, piece.first_row, m) : d.kv_len;
    // Keys [0, open_keys) are visible to every row: tiles within need no mask.
    const int64_t open_keys =
        !masked ? d.kv_len
        : in_.mask.allowed != nullptr || in_.mask.bias != nullptr
            ? 0
            : KeysVisibleToAllRowsOfBlock(in_.mask, d, piece.batch, piece.first_row, m);
    std::fill_n(row_max_.begin(), m, -std::numeric_limits<float>::infinity());
    std::fill_n(row_sum_.begin(), m, 0.0f);
    std::fill_n(acc_.begin(), m * d.value_dim, 0.0f);
    const OnlineSoftmaxState state = {.row_max = row_max_.data(), .row_sum = row_sum_.data(),
                                      .acc = acc_.data(), .acc_cols = d.value_dim};
    const bool bf16 = in_.bf16_compute;
    const int64_t tile_keys = prepared_.tile_keys;
    for (int64_t first_key = 0; first_key < keys; first_key += tile_keys) {
      const int64_t width = std::min(tile_keys, d.kv_len - first_key);
      const bool tile_masked = first_key + width > open_keys;
      if (tile_masked) {
        FillMaskTile(in_.mask, d, piece.batch, piece.first_row, m, first_key, width,
                     tile_.data(), nullptr);
      }
      ComputeScores(ops, m, first_key, width, tile_masked, scratch_.data());
      online_softmax_step_(scratch_.data(), m, width, state,
                           bf16 ? probs_bf16_.data() : nullptr);
      const void* p = bf16 ? static_cast<const void*>(probs_bf16_.data()) : scratch_.data();
      MultiplyByValues(ops, p, m, first_key, width, acc_.data(), d.value_dim,
                       /*accumulate=*/true);
    }
    // Rows that saw no key (all tiles skipped or -inf) have l = 0: O = 0.
    OnlineSoftmaxFinish(state, m, ops.o, layout_.o.row);
  }

  // Bytes of `elements` operand elements.
  int64_t OperandBytes(int64_t elements) const {
    return elements * (in_.bf16_compute ? sizeof(uint16_t) : sizeof(float));
  }

  // scores[m x keys] = scale * Q K^T (+ tile_ when masked) for keys [first_key, first_key + keys),
  // one K^T tile (first_key a multiple of tile_keys, keys its width).
  void ComputeScores(const Operands& ops, int64_t m, int64_t first_key, int64_t keys, bool masked,
                     float* scores) {
    const AttentionDims& d = in_.dims;
    const Layout& l = layout_;
    const dt operand_type = in_.bf16_compute ? dt::bf16 : dt::f32;
    const memory::desc q_md({m, d.head_dim}, operand_type, memory::dims{l.q.row, 1});
    const memory::desc kt_md({d.head_dim, keys}, operand_type, memory::dims{keys, 1});
    const memory::desc s_md = RowMajor(m, keys);
    auto qk = cache_.GetOrCreate(
        // The scale is part of the primitive (brgemm takes constant output scales; runtime
        // ones send it to gemm:jit): keyed by its exact bits.
        absl::StrCat("qk:", m, "x", d.head_dim, "x", keys, ":ld", l.q.row,
                     ":scale", std::bit_cast<uint32_t>(in_.scale), masked ? ":mask" : "",
                     in_.bf16_compute ? ":bf16" : "", threads_key_),
        [&] {
          dnnl::primitive_attr attr = UserScratchpadAttr();
          attr.set_output_scales(0, {in_.scale});
          if (masked) {
            dnnl::post_ops post;
            post.append_binary(dnnl::algorithm::binary_add, s_md);
            attr.set_post_ops(post);
          }
          return dnnl::matmul(dnnl::matmul::primitive_desc(
              dnnl::matmul::desc(q_md, kt_md, s_md), attr, engine_));
        });
    const void* k_t = static_cast<const char*>(ops.k_t) + OperandBytes(first_key * d.head_dim);
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, Wrap(q_md, engine_, ops.q)},
        {DNNL_ARG_WEIGHTS, Wrap(kt_md, engine_, k_t)},
        {DNNL_ARG_DST, Wrap(s_md, engine_, scores)}};
    if (masked) {
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                   Wrap(s_md, engine_, tile_.data()));
    }
    args.emplace(DNNL_ARG_SCRATCHPAD, Scratchpad(*qk, engine_, scratchpad_));
    qk->execute(stream_, args);
    stream_.wait();
  }

  // o[m x Dv] (row stride o_stride) = P V, or += P V when accumulating, for P [m x keys]
  // (row-major; bf16 when computing in bf16) and V's rows [first_key, first_key + keys).
  void MultiplyByValues(const Operands& ops, const void* p, int64_t m, int64_t first_key,
                        int64_t keys, float* o, int64_t o_stride, bool accumulate) {
    const AttentionDims& d = in_.dims;
    const int64_t v_row = layout_.v.row;
    const dt operand_type = in_.bf16_compute ? dt::bf16 : dt::f32;
    const memory::desc p_md({m, keys}, operand_type, memory::dims{keys, 1});
    const memory::desc v_md({keys, d.value_dim}, operand_type, memory::dims{v_row, 1});
    const memory::desc o_md = RowMajor(m, d.value_dim, o_stride);
    auto pv = cache_.GetOrCreate(
        absl::StrCat("pv:", m, "x", keys, "x", d.value_dim, ":ld", v_row, ",", o_stride,
                     accumulate ? ":sum" : "", in_.bf16_compute ? ":bf16" : "", threads_key_),
        [&] {
          dnnl::primitive_attr attr = UserScratchpadAttr();
          if (accumulate) {
            dnnl::post_ops post;
            post.append_sum(1.0f);
            attr.set_post_ops(post);
          }
          return dnnl::matmul(dnnl::matmul::primitive_desc(
              dnnl::matmul::desc(p_md, v_md, o_md), attr, engine_));
        });
    const void* v = static_cast<const char*>(ops.v) + OperandBytes(first_key * v_row);
    pv->execute(stream_, {{DNNL_ARG_SRC, Wrap(p_md, engine_, p)},
                          {DNNL_ARG_WEIGHTS, Wrap(v_md, engine_, v)},
                          {DNNL_ARG_DST, Wrap(o_md, engine_, o)},
                          {DNNL_ARG_SCRATCHPAD, Scratchpad(*pv, engine_, scratchpad_)}});
    stream_.wait();
  }

  const AttentionInputs& in_;
  const AttentionOutputs& out_;
  const Layout& layout_;
  const PreparedOperands& prepared_;
  const bool maps_;  // probabilities or scores returned
  const OnlineSoftmaxStepFn online_softmax_step_;
  PrimitiveCache& cache_;
  const dnnl::engine& engine_;
  dnnl::stream stream_;
  const std::string threads_key_;
  std::vector<float> tile_;
  std::unique_ptr<bool[]> row_has_key_;
  std::vector<float> scratch_;
  std::vector<uint16_t> probs_bf16_;
  std::vector<float> acc_, row_max_, row_sum_;  // the online softmax's running state
  std::vector<uint8_t> scratchpad_;
};

// Collects the first error raised on any thread.
class FirstError {
 public:
  void Record(const dnnl::error& e) {
    Record(absl::InternalError(absl::StrCat("oneDNN: ", e.what())));
  }
  void Record(absl::Status status) {
    std::lock_guard lock(mu_);
    if (status_.ok()) status_ = std::move(status);
    failed_.store(true, std::memory_order_relaxed);
  }
  // True once anything was recorded: the remaining pieces are skipped.
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  absl::Status Take() {
    std::lock_guard lock(mu_);
    return status_;
  }

 private:
  std::mutex mu_;
  absl::Status status_;
  std::atomic<bool> failed_{false};
};

// Whether piece work should go on: no earlier failure, and `stop` (if any) says OK.
bool KeepGoing(const StopCheck& stop, FirstError& error) {
  if (error.failed()) return false;
  if (!stop) return true;
  absl::Status status = stop();
  if (status.ok()) return true;
  error.Record(std::move(status));
  return false;
}

}  // namespace

AttentionEngine::AttentionEngine(Options options)
    : key_tile_(options.key_tile),
      cache_(options.primitive_cache_capacity),
      engine_(dnnl::engine::kind::cpu, 0) {}

absl::Status AttentionEngine::Run(const AttentionInputs& inputs, const AttentionOutputs& outputs,
                                  const StopCheck& stop) const {
  const AttentionDims& d = inputs.dims;
  const Layout layout(inputs, outputs);
  PreparedOperands prepared;
  const bool maps = outputs.probabilities != nullptr || outputs.scores != nullptr;
  const int64_t key_tile = key_tile_ > 0                                ? key_tile_
                           : inputs.mask.causal != CausalKind::kNone ? kCausalKeyTile
                                                                     : kDefaultKeyTile;
  prepared.tile_keys = maps ? d.kv_len : std::min(key_tile, d.kv_len);
  if (inputs.bf16_compute &&
      (!inputs.query_strides.dense() || !inputs.value_strides.dense())) {
    return absl::UnimplementedError("bf16 compute needs dense query and value");
  }
  try {
    const int64_t key_elements = d.batch * d.kv_heads * d.kv_len * d.head_dim;
    if (inputs.bf16_compute) {
      prepared.query = ToBFloat16(inputs.query, d.batch * d.heads * d.q_len * d.head_dim, engine_);
      prepared.value = ToBFloat16(inputs.value, d.batch * d.kv_heads * d.kv_len * d.value_dim,
                                  engine_);
      prepared.key_t_bf16.resize(key_elements);
      TransposeKeys(inputs, layout.k, dt::bf16, prepared.tile_keys, prepared.key_t_bf16.data(),
                    cache_, engine_);
    } else {
      prepared.key_t.resize(key_elements);
      TransposeKeys(inputs, layout.k, dt::f32, prepared.tile_keys, prepared.key_t.data(),
                    cache_, engine_);
    }
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
  }
  const int64_t rows_per_unit = layout.rows_per_unit;
  const int64_t block = std::min(kBlockRows, rows_per_unit);
  const int64_t blocks_per_unit = (rows_per_unit + block - 1) / block;
  const int64_t pieces = d.batch * layout.units_per_batch * blocks_per_unit;
  auto piece_at = [&](int64_t p) {
    Piece piece;
    piece.batch = p / (layout.units_per_batch * blocks_per_unit);
    const int64_t unit = (p / blocks_per_unit) % layout.units_per_batch;
    piece.kv_head = layout.KvHeadOfUnit(unit, d.group_size());
    const int64_t block_row = (p % blocks_per_unit) * block;
    piece.first_row = unit * rows_per_unit + block_row;
    piece.rows = std::min(block, rows_per_unit - block_row);
    return piece;
  };

  FirstError error;
  const int threads = omp_get_max_threads();
  if (threads > 1 && pieces >= threads) {
    // Enough independent pieces: one per thread, each primitive single-threaded inside.
#pragma omp parallel num_threads(threads)
    {
      try {
        PieceRunner runner(inputs, outputs, layout, prepared, cache_, engine_);
#pragma omp for schedule(dynamic)
        for (int64_t p = 0; p < pieces; ++p) {
          if (!KeepGoing(stop, error)) continue;
          try {
            runner.Run(piece_at(p));
          } catch (const dnnl::error& e) {
            error.Record(e);
          }
        }
      } catch (const dnnl::error& e) {
        error.Record(e);
      }
    }
  } else {
    // Few pieces: run them in turn and let each primitive use every thread.
    try {
      PieceRunner runner(inputs, outputs, layout, prepared, cache_, engine_);
      for (int64_t p = 0; p < pieces && KeepGoing(stop, error); ++p) runner.Run(piece_at(p));
    } catch (const dnnl::error& e) {
      error.Record(e);
    }
  }
  return error.Take();
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
