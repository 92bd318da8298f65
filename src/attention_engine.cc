// Scaled dot-product attention on oneDNN primitives (see attention_engine.h).
//
// A unit of work is one query head, or, when Q and O are laid out head after head, the G = H / Hkv
// query heads that share KV head g: their rows then form one [G*Sq, D] matrix against the same
// K_g and V_g. A unit's rows are cut into blocks of at most kBlockRows; a piece of work is one
// (batch, unit, row block). Q, K, V and O may be strided views (a projection's [B,S,H*D] output
// seen head by head), so nothing is copied apart.
#include "src/attention_engine.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
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
constexpr int64_t kKeyGranule = 64;

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

// bfloat16 copies of dense Q, K, V for bf16 compute (empty otherwise).
struct Bf16Operands {
  std::vector<uint16_t> query, key, value;
};

// Runs pieces with its own scratch and stream; one per thread.
class PieceRunner {
 public:
  PieceRunner(const AttentionInputs& in, const AttentionOutputs& out, const Layout& layout,
              const Bf16Operands& bf16, int64_t key_tile, PrimitiveCache& cache,
              const dnnl::engine& engine)
      : in_(in),
        out_(out),
        layout_(layout),
        bf16_(bf16),
        maps_(out.probabilities != nullptr || out.scores != nullptr),
        key_tile_(key_tile),
        online_softmax_step_(BestOnlineSoftmaxStep()),
        cache_(cache),
        engine_(engine),
        stream_(engine),
        threads_key_(ThreadsKey()) {
    const AttentionDims& d = in.dims;
    const int64_t rows = std::min(kBlockRows, layout.rows_per_unit);
    // Without maps no more than key_tile keys are computed at once (more go tile by tile).
    const int64_t width = maps_ ? d.kv_len : std::min(d.kv_len, key_tile);
    if (!in.mask.empty()) {
      tile_.resize(rows * width);
      row_has_key_ = std::make_unique<bool[]>(rows);
    }
    if (out.probabilities == nullptr || out.scores == nullptr) scratch_.resize(rows * width);
    if (in.bf16_compute) probs_bf16_.resize(rows * width);
    if (!maps_ && d.kv_len > key_tile) {
      acc_.resize(rows * d.value_dim);
      row_max_.resize(rows);
      row_sum_.resize(rows);
    }
  }

  void Run(const Piece& piece) {
    const AttentionDims& d = in_.dims;
    const int64_t m = piece.rows;
    const Layout& l = layout_;
    const int64_t head = piece.first_row / d.q_len;
    const int64_t query = piece.first_row % d.q_len;
    const int64_t q_at = piece.batch * l.q.batch + head * l.q.head + query * l.q.row;
    const int64_t k_at = piece.batch * l.k.batch + piece.kv_head * l.k.head;
    const int64_t v_at = piece.batch * l.v.batch + piece.kv_head * l.v.head;
    const bool bf16 = in_.bf16_compute;
    const Operands ops = {
        .q = bf16 ? static_cast<const void*>(bf16_.query.data() + q_at) : in_.query + q_at,
        .k = bf16 ? static_cast<const void*>(bf16_.key.data() + k_at) : in_.key + k_at,
        .v = bf16 ? static_cast<const void*>(bf16_.value.data() + v_at) : in_.value + v_at,
        .o = out_.output + piece.batch * l.o.batch + head * l.o.head + query * l.o.row};
    const bool masked = !in_.mask.empty();
    // Keys this piece computes: all of them when maps are returned; otherwise only up to the
    // last key any of its rows may see (causal, key_lengths), rounded up to kKeyGranule so few
    // primitive shapes arise. Blocks of keys no row can see are skipped, not computed.
    int64_t keys = d.kv_len;
    if (masked && !maps_) {
      keys = VisibleKeysOfBlock(in_.mask, d, piece.batch, piece.first_row, m);
      if (keys == 0) {  // every row fully masked: output 0
        for (int64_t r = 0; r < m; ++r) std::fill_n(ops.o + r * l.o.row, d.value_dim, 0.0f);
        return;
      }
      keys = std::min(d.kv_len, (keys + kKeyGranule - 1) / kKeyGranule * kKeyGranule);
    }
    if (!maps_ && keys > key_tile_) {
      RunTiled(piece, ops, keys);
      return;
    }

    const int64_t map_offset = (piece.batch * d.heads * d.q_len + piece.first_row) * d.kv_len;
    float* scores = out_.scores != nullptr        ? out_.scores + map_offset
                    : out_.probabilities != nullptr ? out_.probabilities + map_offset
                                                    : scratch_.data();
    float* probs = out_.probabilities != nullptr ? out_.probabilities + map_offset
                   : out_.scores != nullptr      ? scratch_.data()
                                                 : scores;
    if (masked) {
      FillMaskTile(in_.mask, d, piece.batch, piece.first_row, m, 0, keys, tile_.data(),
                   row_has_key_.get());
    }
    // scores = scale * Q K^T + mask_tile
    ComputeScores(ops, m, 0, keys, scores);

    // P = softmax_j(scores), in place unless both maps are returned.
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
    if (bf16) {
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
    MultiplyByValues(ops, p, m, 0, keys, ops.o, l.o.row, /*accumulate=*/false);
  }

 private:
  // Where one piece's operands start (bf16 copies when computing in bf16).
  struct Operands {
    const void* q;
    const void* k;
    const void* v;
    float* o;
  };

  // The key-tiled path (no maps, more than key_tile keys): per tile of keys,
  //   S_t = scale * Q K_t^T + mask_t;  P_t = exp(S_t - m), m, l and acc updated (online softmax);
  //   acc += P_t V_t;  and at the end O = acc / l.
  void RunTiled(const Piece& piece, const Operands& ops, int64_t keys) {
    const int64_t m = piece.rows;
    const bool bf16 = in_.bf16_compute;
    std::fill_n(row_max_.begin(), m, -std::numeric_limits<float>::infinity());
    std::fill_n(row_sum_.begin(), m, 0.0f);
    std::fill_n(acc_.begin(), m * in_.dims.value_dim, 0.0f);
    const OnlineSoftmaxState state = {.row_max = row_max_.data(), .row_sum = row_sum_.data(),
                                      .acc = acc_.data(), .acc_cols = in_.dims.value_dim};
    for (int64_t first_key = 0; first_key < keys; first_key += key_tile_) {
      const int64_t width = std::min(key_tile_, keys - first_key);
      if (!in_.mask.empty()) {
        FillMaskTile(in_.mask, in_.dims, piece.batch, piece.first_row, m, first_key, width,
                     tile_.data(), nullptr);
      }
      ComputeScores(ops, m, first_key, width, scratch_.data());
      online_softmax_step_(scratch_.data(), m, width, state,
                           bf16 ? probs_bf16_.data() : nullptr);
      const void* p = bf16 ? static_cast<const void*>(probs_bf16_.data()) : scratch_.data();
      MultiplyByValues(ops, p, m, first_key, width, acc_.data(), in_.dims.value_dim,
                       /*accumulate=*/true);
    }
    OnlineSoftmaxFinish(state, m, ops.o, layout_.o.row);
  }

  // Bytes from one row of a K or V operand to the next.
  int64_t OperandRowBytes(int64_t row_stride) const {
    return row_stride * (in_.bf16_compute ? sizeof(uint16_t) : sizeof(float));
  }

  // scores[m x keys] = scale * Q K^T (+ tile_ when masked) for keys [first_key, first_key + keys).
  void ComputeScores(const Operands& ops, int64_t m, int64_t first_key, int64_t keys,
                     float* scores) {
    const AttentionDims& d = in_.dims;
    const Layout& l = layout_;
    const bool masked = !in_.mask.empty();
    const dt operand_type = in_.bf16_compute ? dt::bf16 : dt::f32;
    const memory::desc q_md({m, d.head_dim}, operand_type, memory::dims{l.q.row, 1});
    const memory::desc kt_md({d.head_dim, keys}, operand_type, memory::dims{1, l.k.row});
    const memory::desc s_md = RowMajor(m, keys);
    auto qk = cache_.GetOrCreate(
        absl::StrCat("qk:", m, "x", d.head_dim, "x", keys, ":ld", l.q.row, ",", l.k.row,
                     masked ? ":mask" : "", in_.bf16_compute ? ":bf16" : "", threads_key_),
        [&] {
          dnnl::primitive_attr attr = UserScratchpadAttr();
          attr.set_output_scales(0, {DNNL_RUNTIME_F32_VAL});
          if (masked) {
            dnnl::post_ops post;
            post.append_binary(dnnl::algorithm::binary_add, s_md);
            attr.set_post_ops(post);
          }
          return dnnl::matmul(dnnl::matmul::primitive_desc(
              dnnl::matmul::desc(q_md, kt_md, s_md), attr, engine_));
        });
    const float scale = in_.scale;
    const void* k = static_cast<const char*>(ops.k) + first_key * OperandRowBytes(l.k.row);
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, Wrap(q_md, engine_, ops.q)},
        {DNNL_ARG_WEIGHTS, Wrap(kt_md, engine_, k)},
        {DNNL_ARG_DST, Wrap(s_md, engine_, scores)},
        {DNNL_ARG_ATTR_OUTPUT_SCALES,
         Wrap(memory::desc({1}, dt::f32, tag::x), engine_, &scale)}};
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
    const void* v = static_cast<const char*>(ops.v) + first_key * OperandRowBytes(v_row);
    pv->execute(stream_, {{DNNL_ARG_SRC, Wrap(p_md, engine_, p)},
                          {DNNL_ARG_WEIGHTS, Wrap(v_md, engine_, v)},
                          {DNNL_ARG_DST, Wrap(o_md, engine_, o)},
                          {DNNL_ARG_SCRATCHPAD, Scratchpad(*pv, engine_, scratchpad_)}});
    stream_.wait();
  }

  const AttentionInputs& in_;
  const AttentionOutputs& out_;
  const Layout& layout_;
  const Bf16Operands& bf16_;
  const bool maps_;  // probabilities or scores returned
  const int64_t key_tile_;
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
    : key_tile_(options.key_tile > 0 ? options.key_tile : kDefaultKeyTile),
      cache_(options.primitive_cache_capacity),
      engine_(dnnl::engine::kind::cpu, 0) {}

absl::Status AttentionEngine::Run(const AttentionInputs& inputs, const AttentionOutputs& outputs,
                                  const StopCheck& stop) const {
  const AttentionDims& d = inputs.dims;
  const Layout layout(inputs, outputs);
  Bf16Operands bf16;
  if (inputs.bf16_compute) {
    if (!inputs.query_strides.dense() || !inputs.key_strides.dense() ||
        !inputs.value_strides.dense()) {
      return absl::UnimplementedError("bf16 compute needs dense query, key and value");
    }
    try {
      bf16.query = ToBFloat16(inputs.query, d.batch * d.heads * d.q_len * d.head_dim, engine_);
      bf16.key = ToBFloat16(inputs.key, d.batch * d.kv_heads * d.kv_len * d.head_dim, engine_);
      bf16.value = ToBFloat16(inputs.value, d.batch * d.kv_heads * d.kv_len * d.value_dim, engine_);
    } catch (const dnnl::error& e) {
      return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
    }
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
        PieceRunner runner(inputs, outputs, layout, bf16, key_tile_, cache_, engine_);
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
      PieceRunner runner(inputs, outputs, layout, bf16, key_tile_, cache_, engine_);
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
