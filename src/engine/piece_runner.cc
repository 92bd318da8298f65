// Pieces of attention work, each tile of keys by tile of keys (see piece_runner.h).
#include "src/engine/piece_runner.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <limits>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "src/engine/kernels/online_softmax.h"
#include "src/engine/kernels/page_products.h"
#include "src/engine/kernels/stream_store.h"
#include "src/engine/mask_tile.h"
#include "src/runtime/bound_primitive.h"
#include "src/runtime/dtype.h"
#include "src/runtime/onednn_util.h"

namespace attn {
namespace {

using dnnl::memory;
using dt = memory::data_type;

// The QK^T matmul's mask operand (its binary post-op's second source).
constexpr int kMaskArg = DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1;

// Maps larger than the caches are stored with streaming stores (written once, not read back
// soon); smaller ones stay in the cache, where the server serialises them right after.
constexpr int64_t kStreamedMapBytes = int64_t{8} << 20;

StoreMode MapStoreMode(const AttentionDims& d, const AttentionOutputs& out) {
  const int64_t maps = (out.probabilities != nullptr) + (out.scores != nullptr);
  const int64_t bytes = maps * d.batch * d.heads * d.q_len * d.kv_len * int64_t{sizeof(float)};
  return bytes > kStreamedMapBytes ? StoreMode::kStreaming : StoreMode::kCached;
}

// One piece of work.
struct Piece {
  int64_t batch = 0;
  int64_t kv_head = 0;
  int64_t first_row = 0;  // row within the batch item, across heads (head * Sq + query)
  int64_t rows = 0;
};

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
        map_store_(MapStoreMode(in.dims, out)),
        mask_by_row_keys_(in.mask.allowed == nullptr && in.mask.bias == nullptr &&
                          out.scores == nullptr),
        softmax_(BestOnlineSoftmaxKernels()),
        page_(BestPageProductKernels()),
        copy_query_rows_(prepared.keys_transposed &&
                         ((prepared.key_t_blocked && layout.q.row != in.dims.head_dim) ||
                          in.bf16_in_f32)),
        copy_kernel_(BestCopyKernel()),
        q_row_(copy_query_rows_ ? in.dims.head_dim : layout.q.row),
        cache_(cache),
        engine_(engine),
        stream_(engine),
        threads_key_(ThreadsKey()) {
    const AttentionDims& d = in.dims;
    const int64_t rows = std::min(kBlockRows, layout.rows_per_unit);
    const int64_t width = prepared.tile_keys;  // keys computed at once
    if (!in.mask.empty() && mask_by_row_keys_) {
      row_keys_.resize(rows);
    } else if (!in.mask.empty()) {
      tile_.resize(rows * width);
    }
    // With maps the scratch keeps every tile of the piece, else one.
    scratch_.resize(rows * (maps_ ? d.kv_len : width));
    if (maps_) {
      tile_max_.resize(rows * ((d.kv_len + width - 1) / width));
      factors_.resize(rows);
    }
    if (in.bf16_compute) probs_bf16_.resize(rows * width);
    acc_.resize(rows * d.value_dim);
    row_max_.resize(rows);
    row_sum_.resize(rows);
    if (prepared.widen_tiles) {
      key_tile_f32_.resize(width * d.head_dim);
      value_tile_f32_.resize(width * d.value_dim);
    }
    if (!prepared.keys_transposed && in.pages == nullptr) {
      scores_t_.resize(rows * width);
      if (in.bf16_compute) {
        query_t_bf16_.resize(rows * d.head_dim);
      } else {
        query_t_.resize(rows * d.head_dim);
      }
    }
    if (copy_query_rows_) query_rows_.resize(rows * d.head_dim);
    if (prepared.copies_by_pieces && in.bf16_compute) {
      own_key_t_bf16_.resize(prepared.key_t_head);
      own_query_.resize(d.group_size() * d.q_len * d.head_dim);
      own_value_.resize(d.kv_len * d.value_dim);
    } else if (prepared.copies_by_pieces) {
      own_key_t_.resize(prepared.key_t_head);
      if (in.bf16_in_f32) own_value_f32_.resize(d.kv_len * d.value_dim);
    }
  }

  void Run(const Piece& piece) {
    const AttentionDims& d = in_.dims;
    const Layout& l = layout_;
    const int64_t head = piece.first_row / d.q_len;
    const int64_t query = piece.first_row % d.q_len;
    const int64_t q_at = piece.batch * l.q.batch + head * l.q.head + query * l.q.row;
    const int64_t v_at = piece.batch * l.v.batch + piece.kv_head * l.v.head;
    const bool bf16 = in_.bf16_compute;
    // In bf16, Q and V from their copies: the call's, or the piece's own (of its head alone).
    const uint16_t* query_bf16 = nullptr;
    const uint16_t* value_bf16 = nullptr;
    const bool paged = in_.pages != nullptr;
    const void* value = paged                   ? nullptr  // a page per tile (PageOf)
                        : prepared_.widen_tiles ? static_cast<const void*>(in_.value_bf16 + v_at)
                                                : in_.value + v_at;
    if (prepared_.copies_by_pieces) {
      prepared_.prepare_head(piece.batch * d.kv_heads + piece.kv_head,
                             {.key_t = own_key_t_.data(),
                              .key_t_bf16 = own_key_t_bf16_.data(),
                              .query = own_query_.data(),
                              .value = own_value_.data(),
                              .dense_value = in_.bf16_in_f32 ? own_value_f32_.data() : nullptr});
      if (in_.bf16_in_f32) value = own_value_f32_.data();
      query_bf16 = own_query_.data() + (piece.first_row - piece.kv_head * l.rows_per_unit) *
                                           d.head_dim;
      value_bf16 = own_value_.data();
    } else if (bf16 && prepared_.keys_transposed) {
      query_bf16 = prepared_.query.get() + q_at;
      value_bf16 = prepared_.value.get() + v_at;
    } else if (bf16) {  // bf16 inputs read as they are
      query_bf16 = in_.query_bf16 + q_at;
      value_bf16 = in_.value_bf16 + v_at;
    }
    // (Paged: Q is f32, read in place; K and V come a page per tile.)
    const void* q = bf16                     ? static_cast<const void*>(query_bf16)
                    : prepared_.widen_tiles ? static_cast<const void*>(in_.query_bf16 + q_at)
                    : copy_query_rows_      ? CopyQueryRows(in_.query + q_at, piece.rows)
                                            : in_.query + q_at;
    const Operands ops = {
        .q = q,
        .k = paged ? nullptr : KeysOf(piece),
        .v = bf16 ? static_cast<const void*>(value_bf16) : value,
        .o = out_.output + piece.batch * l.o.batch + head * l.o.head + query * l.o.row,
        .first_page = paged ? (piece.batch * d.kv_heads + piece.kv_head) *
                                  in_.pages->pages_per_head
                            : 0};
    if (!prepared_.keys_transposed && !paged) TransposeQuery(ops.q, piece.rows);
    RunTiles(piece, ops);
  }

 private:
  // Where one piece's operands start (bf16 copies when computing in bf16).
  struct Operands {
    const void* q;
    const void* k;  // the piece's KV head: its K^T tiles, or K's rows when not transposed
    const void* v;
    float* o;
    int64_t first_page;  // paged: the index of the piece's KV head's first page
  };

  // Paged: the K (or V) page holding key first_key, a multiple of the page size (a tile is a
  // page).
  const void* PageOf(const Operands& ops, int64_t first_key, bool values) const {
    const KvPages& pages = *in_.pages;
    const void* const* table = values ? pages.value_pages : pages.key_pages;
    return table[ops.first_page + first_key / pages.page_tokens];
  }

  // Where the piece's KV head starts in the K^T tiles or, when not transposed or K^T is a view
  // of K itself, in K.
  const void* KeysOf(const Piece& piece) const {
    const AttentionDims& d = in_.dims;
    if (!prepared_.keys_transposed || (!prepared_.key_t_blocked && !in_.bf16_in_f32)) {
      const int64_t at = piece.batch * layout_.k.batch + piece.kv_head * layout_.k.head;
      if (in_.bf16_compute || prepared_.widen_tiles) return in_.key_bf16 + at;
      return in_.key + at;
    }
    if (prepared_.copies_by_pieces && in_.bf16_compute) return own_key_t_bf16_.data();
    if (prepared_.copies_by_pieces) return own_key_t_.data();
    const int64_t at = (piece.batch * d.kv_heads + piece.kv_head) * prepared_.key_t_head;
    if (in_.bf16_compute) return prepared_.key_t_bf16.get() + at;
    return prepared_.key_t.get() + at;
  }

  // query_rows_ = the piece's m query rows from `q` (row stride the layout's), dense (for
  // bf16_in_f32 times the scale, rounded to bf16); returns it.
  const float* CopyQueryRows(const float* q, int64_t m) {
    const int64_t dim = in_.dims.head_dim;
    if (in_.bf16_in_f32) {
      RoundRowsToBf16(q, m, dim, layout_.q.row, in_.scale, query_rows_.data(), dim, copy_kernel_);
      return query_rows_.data();
    }
    for (int64_t r = 0; r < m; ++r) {
      std::copy_n(q + r * layout_.q.row, dim, query_rows_.begin() + r * dim);
    }
    return query_rows_.data();
  }

  // query_t_ (bf16: query_t_bf16_) = Q^T [D, m] of the piece's m query rows (K not
  // transposed), widened from bf16 with widen_tiles.
  void TransposeQuery(const void* q, int64_t m) {
    if (in_.bf16_compute) {
      TransposeRows(static_cast<const uint16_t*>(q), m, query_t_bf16_.data(),
                    [](uint16_t x) { return x; });
    } else if (prepared_.widen_tiles) {
      TransposeRows(static_cast<const uint16_t*>(q), m, query_t_.data(), BFloat16ToFloat);
    } else {
      TransposeRows(static_cast<const float*>(q), m, query_t_.data(), [](float x) { return x; });
    }
  }
  template <typename From, typename To, typename Convert>
  void TransposeRows(const From* from, int64_t m, To* to, Convert convert) const {
    const int64_t dim = in_.dims.head_dim, row = layout_.q.row;
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t c = 0; c < dim; ++c) to[c * m + r] = convert(from[r * row + c]);
    }
  }

  // With widen_tiles: rows [first_key, first_key + keys) of a bf16 operand (rows `row` apart)
  // widened into `tile`, dense; returns it.
  const float* WidenTile(const void* operand, int64_t first_key, int64_t keys, int64_t cols,
                         int64_t row, std::vector<float>& tile) const {
    ConvertRowsToF32(static_cast<const uint16_t*>(operand) + first_key * row, keys, cols, row,
                     tile.data());
    return tile.data();
  }

  // Per tile of keys (the K^T tiles), up to the last key any row of the piece may see (causal,
  // key_lengths; tiles past it are skipped):
  //   S_t = scale * Q K_t^T + mask_t;  p_t = exp(S_t - m_t), with m_t, l and acc updated (online
  //   softmax);  acc += p_t V_t;  and at the end O = acc / l.
  // With maps every tile's p_t stays in the worker's scratch, and at the end each map row is
  // stored once, P_t = p_t * exp(m_t - m) / l; S_t is stored to the scores as it comes.
  // (A matmul writing straight into the maps' cold memory ran at half speed.)
  // When the piece's keys fit one tile: P = softmax(S) row by row instead of a step (written
  // straight into the probabilities when they are kept in the cache; P V then reads it there),
  // and O = P V straight into the output (no accumulator to clear, add to and divide).
  void RunTiles(const Piece& piece, const Operands& ops) {
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
    const bool bf16 = in_.bf16_compute;
    const int64_t tile_keys = prepared_.tile_keys;
    const bool one_tile = keys > 0 && keys <= tile_keys;
    const OnlineSoftmaxState state = one_tile ? OnlineSoftmaxState{} : StartOnlineSoftmax(m);
    const int64_t map_offset = (piece.batch * d.heads * d.q_len + piece.first_row) * d.kv_len;
    int64_t end_key = 0;  // keys [0, end_key) computed
    for (int64_t first_key = 0; first_key < keys; first_key += tile_keys) {
      const int64_t width = TileWidth(first_key, keys);
      const bool tile_masked = first_key + width > open_keys;
      // A mask tile and the QK^T post-op, or no post-op and each row's visible keys.
      const bool by_row_keys = tile_masked && mask_by_row_keys_;
      if (by_row_keys) {
        VisibleKeysOfRows(in_.mask, d, piece.batch, piece.first_row, m, first_key, width,
                          row_keys_.data());
      } else if (tile_masked) {
        FillMaskTile(in_.mask, d, piece.batch, piece.first_row, m, first_key, width,
                     tile_.data());
      }
      float* scores = scratch_.data() + (maps_ ? m * first_key : 0);
      ComputeScores(ops, m, first_key, width, tile_masked && !by_row_keys, scores);
      if (out_.scores != nullptr) {
        StoreTileToMap(scores, m, width, nullptr, out_.scores + map_offset + first_key);
      }
      uint16_t* probs_bf16 = bf16 ? probs_bf16_.data() : nullptr;
      const int64_t* row_keys = by_row_keys ? row_keys_.data() : nullptr;
      end_key = first_key + width;
      if (one_tile) {
        // P in f32 goes where it is read: into the probabilities when they stay in the cache
        // (P V reads it there), nowhere when only its bf16 copy is read, else in place.
        const bool into_map = out_.probabilities != nullptr && map_store_ == StoreMode::kCached;
        float* f32_p = scores;
        if (into_map) {
          f32_p = out_.probabilities + map_offset;
        } else if (bf16 && out_.probabilities == nullptr) {
          f32_p = nullptr;
        }
        const int64_t f32_p_row = into_map ? d.kv_len : width;
        softmax_.whole_rows(scores, m, width, row_keys, f32_p, f32_p_row, probs_bf16);
        MultiplyByValues(ops, bf16 ? static_cast<const void*>(probs_bf16) : f32_p,
                         bf16 ? width : f32_p_row, m, 0, width, ops.o, layout_.o.row,
                         /*accumulate=*/false);
        if (maps_) StoreMaps(m, end_key, map_offset, into_map ? PAt::kMap : PAt::kScratch);
        return;
      }
      softmax_.step(scores, m, width, row_keys, state, probs_bf16);
      if (maps_) {
        std::copy_n(row_max_.begin(), m, tile_max_.begin() + m * (first_key / tile_keys));
      }
      const void* p = bf16 ? static_cast<const void*>(probs_bf16) : scores;
      MultiplyByValues(ops, p, width, m, first_key, width, acc_.data(), d.value_dim,
                       /*accumulate=*/true);
    }
    // Rows that saw no key (all tiles skipped or -inf) have l = 0: O = 0.
    softmax_.finish(state, m, ops.o, layout_.o.row);
    if (maps_) StoreMaps(m, end_key, map_offset, PAt::kTiles);
  }

  // Where a piece's probabilities are once its tiles are done.
  enum class PAt {
    kTiles,    // each tile's p_t in the scratch, still to be rescaled and divided by l
    kScratch,  // P (one tile) in the scratch
    kMap,      // P (one tile) already in the probabilities
  };

  // The keys computed from first_key (a multiple of the tile) for a piece that sees `keys`: up
  // to the tile, rounded up to whole blocks of kKeyBlock past the last key it sees (so a causal
  // block stops near the diagonal, with a few widths of primitive only), and never past Sk.
  // Paged tiles end exactly at the last key seen (the page kernels take any width, and a
  // session's page past its last position holds nothing to read).
  int64_t TileWidth(int64_t first_key, int64_t keys) const {
    if (in_.pages != nullptr) return std::min(prepared_.tile_keys, keys - first_key);
    const int64_t needed = (keys - first_key + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
    return std::min({prepared_.tile_keys, needed, in_.dims.kv_len - first_key});
  }

  // With maps, after a piece's tiles: P_t = p_t * exp(m_t - m) / l (0 where l = 0) into the
  // probabilities' columns [0, end_key), or the scratch's P as it is (one tile; nothing when
  // it is already there), and past the computed keys 0 probabilities and -inf scores.
  void StoreMaps(int64_t m, int64_t end_key, int64_t map_offset, PAt p_at) {
    const int64_t sk = in_.dims.kv_len;
    const int64_t tile_keys = prepared_.tile_keys;
    if (out_.probabilities != nullptr) {
      float* map = out_.probabilities + map_offset;
      if (p_at == PAt::kScratch) StoreTileToMap(scratch_.data(), m, end_key, nullptr, map);
      for (int64_t first_key = 0; p_at == PAt::kTiles && first_key < end_key;
           first_key += tile_keys) {
        const int64_t width = std::min(tile_keys, end_key - first_key);
        const float* tile_max = tile_max_.data() + m * (first_key / tile_keys);
        for (int64_t r = 0; r < m; ++r) {
          factors_[r] = row_sum_[r] > 0.0f ? std::exp(tile_max[r] - row_max_[r]) / row_sum_[r]
                                          : 0.0f;
        }
        StoreTileToMap(scratch_.data() + m * first_key, m, width, factors_.data(),
                       map + first_key);
      }
      for (int64_t r = 0; r < m; ++r) {
        StoreFill(0.0f, sk - end_key, map + r * sk + end_key, map_store_);
      }
    }
    if (out_.scores != nullptr) {
      float* map = out_.scores + map_offset;
      for (int64_t r = 0; r < m; ++r) {
        StoreFill(-std::numeric_limits<float>::infinity(), sk - end_key, map + r * sk + end_key,
                  map_store_);
      }
    }
    StreamStoreFence();  // the maps' streaming stores done before other threads read them
  }

  // Rows of a map (row stride Sk) from the m x width tile, each row r times factors[r] (unless
  // factors is null).
  void StoreTileToMap(const float* tile, int64_t m, int64_t width, const float* factors,
                      float* map) const {
    const int64_t sk = in_.dims.kv_len;
    for (int64_t r = 0; r < m; ++r) {
      if (factors == nullptr) {
        StoreCopy(tile + r * width, width, map + r * sk, map_store_);
      } else {
        StoreCopyScaled(tile + r * width, width, factors[r], map + r * sk, map_store_);
      }
    }
  }

  // The online softmax's state for m rows, started: max -inf, sum 0 and acc 0.
  OnlineSoftmaxState StartOnlineSoftmax(int64_t m) {
    std::fill_n(row_max_.begin(), m, -std::numeric_limits<float>::infinity());
    std::fill_n(row_sum_.begin(), m, 0.0f);
    std::fill_n(acc_.begin(), m * in_.dims.value_dim, 0.0f);
    return {.row_max = row_max_.data(), .row_sum = row_sum_.data(), .acc = acc_.data(),
            .acc_cols = in_.dims.value_dim};
  }

  // Bytes of `elements` operand elements.
  int64_t OperandBytes(int64_t elements) const {
    return elements * (in_.bf16_compute ? sizeof(uint16_t) : sizeof(float));
  }

  // scores[m x keys] = scale * Q K^T (+ tile_ when masked) for keys [first_key, first_key + keys),
  // read in place from the K^T layout (first_key a multiple of kKeyBlock), or from K's rows
  // seen as K^T when K^T is not blocked.
  void ComputeScores(const Operands& ops, int64_t m, int64_t first_key, int64_t keys, bool masked,
                     float* scores) {
    if (in_.pages != nullptr) {
      ComputeScoresOfPage(ops, m, first_key, keys, masked, scores);
      return;
    }
    if (!prepared_.keys_transposed) {
      ComputeScoresKeyMajor(ops, m, first_key, keys, masked, scores);
      return;
    }
    const AttentionDims& d = in_.dims;
    const dt operand_type = in_.bf16_compute ? dt::bf16 : dt::f32;
    // Without a blocked K^T, K's rows (of the input, or of a dense rounded copy) as K^T.
    const bool blocked = prepared_.key_t_blocked;
    const int64_t k_row = in_.bf16_in_f32 ? d.head_dim : layout_.k.row;
    const void* k_t = static_cast<const char*>(ops.k) +
                      OperandBytes(blocked ? first_key / kKeyBlock * prepared_.key_t_block
                                           : first_key * k_row);
    // In bf16 the scale is already in the Q copy (PreparedOperands::query; emulated: the
    // piece's rounded rows).
    const float scale = in_.bf16_compute || in_.bf16_in_f32 ? 1.0f : in_.scale;
    BoundPrimitive& qk = Bound(Op::kQk, m, keys, masked, 0, [&] {
      const memory::desc q_md({m, d.head_dim}, operand_type, memory::dims{q_row_, 1});
      const memory::desc kt_md =
          blocked ? memory::desc({d.head_dim, keys}, operand_type,
                                 KeyTransposedTag(in_.bf16_compute))
                  : memory::desc({d.head_dim, keys}, operand_type, memory::dims{1, k_row});
      const memory::desc s_md = RowMajor(m, keys);
      auto primitive = cache_.GetOrCreate(
          // The scale is part of the primitive (brgemm takes constant output scales; runtime
          // ones send it to gemm:jit): keyed by its exact bits.
          absl::StrCat("qk:", m, "x", d.head_dim, "x", keys, ":ld", q_row_,
                       blocked ? "" : absl::StrCat(":kt", k_row),
                       ":scale", std::bit_cast<uint32_t>(scale), masked ? ":mask" : "",
                       in_.bf16_compute ? ":bf16" : "", threads_key_),
          [&] {
            dnnl::primitive_attr attr = UserScratchpadAttr();
            if (scale != 1.0f) attr.set_output_scales(0, {scale});
            if (masked) {
              dnnl::post_ops post;
              post.append_binary(dnnl::algorithm::binary_add, s_md);
              attr.set_post_ops(post);
            }
            return dnnl::matmul(dnnl::matmul::primitive_desc(
                dnnl::matmul::desc(q_md, kt_md, s_md), attr, engine_));
          });
      if (!masked) {
        return Bind(primitive,
                    {{DNNL_ARG_SRC, q_md}, {DNNL_ARG_WEIGHTS, kt_md}, {DNNL_ARG_DST, s_md}});
      }
      return Bind(primitive, {{DNNL_ARG_SRC, q_md},
                              {DNNL_ARG_WEIGHTS, kt_md},
                              {DNNL_ARG_DST, s_md},
                              {kMaskArg, s_md}});
    });
    if (masked) {
      qk.Run(stream_, {{DNNL_ARG_SRC, ops.q}, {DNNL_ARG_WEIGHTS, k_t}, {DNNL_ARG_DST, scores},
                       {kMaskArg, tile_.data()}});
    } else {
      qk.Run(stream_, {{DNNL_ARG_SRC, ops.q}, {DNNL_ARG_WEIGHTS, k_t}, {DNNL_ARG_DST, scores}});
    }
  }

  // ComputeScores for K not transposed (f32, or bf16 inputs read as they are): S^T [keys x m] =
  // scale * K Q^T (K's rows as the matmul's source, the piece's Q^T as its weights: both
  // row-major), then scores = (S^T)^T + mask_tile.
  void ComputeScoresKeyMajor(const Operands& ops, int64_t m, int64_t first_key, int64_t keys,
                             bool masked, float* scores) {
    const AttentionDims& d = in_.dims;
    const bool widen = prepared_.widen_tiles;
    const int64_t k_row = widen ? d.head_dim : layout_.k.row;
    const dt operand_type = in_.bf16_compute ? dt::bf16 : dt::f32;
    BoundPrimitive& kq = Bound(Op::kKq, m, keys, false, 0, [&] {
      const memory::desc k_md({keys, d.head_dim}, operand_type, memory::dims{k_row, 1});
      const memory::desc qt_md({d.head_dim, m}, operand_type, memory::dims{m, 1});
      const memory::desc st_md = RowMajor(keys, m);
      auto primitive = cache_.GetOrCreate(
          absl::StrCat("kq:", keys, "x", d.head_dim, "x", m, ":ld", k_row, ":scale",
                       std::bit_cast<uint32_t>(in_.scale), in_.bf16_compute ? ":bf16" : "",
                       threads_key_),
          [&] {
            dnnl::primitive_attr attr = UserScratchpadAttr();
            attr.set_output_scales(0, {in_.scale});
            return dnnl::matmul(dnnl::matmul::primitive_desc(
                dnnl::matmul::desc(k_md, qt_md, st_md), attr, engine_));
          });
      return Bind(primitive,
                  {{DNNL_ARG_SRC, k_md}, {DNNL_ARG_WEIGHTS, qt_md}, {DNNL_ARG_DST, st_md}});
    });
    const void* query_t = in_.bf16_compute ? static_cast<const void*>(query_t_bf16_.data())
                                           : query_t_.data();
    const void* k = widen ? static_cast<const void*>(WidenTile(ops.k, first_key, keys, d.head_dim,
                                                               layout_.k.row, key_tile_f32_))
                          : static_cast<const char*>(ops.k) + OperandBytes(first_key * k_row);
    kq.Run(stream_,
           {{DNNL_ARG_SRC, k}, {DNNL_ARG_WEIGHTS, query_t}, {DNNL_ARG_DST, scores_t_.data()}});
    for (int64_t r = 0; r < m; ++r) {
      float* row = scores + r * keys;
      for (int64_t j = 0; j < keys; ++j) row[j] = scores_t_[j * m + r];
      if (masked) {
        const float* mask = tile_.data() + r * keys;
        for (int64_t j = 0; j < keys; ++j) row[j] += mask[j];
      }
    }
  }

  // ComputeScores for paged keys: the page holding first_key (a tile is a page), by the page
  // product kernel (page_products.h), plus the mask tile.
  void ComputeScoresOfPage(const Operands& ops, int64_t m, int64_t first_key, int64_t keys,
                           bool masked, float* scores) {
    page_.scores(static_cast<const float*>(ops.q), layout_.q.row, m,
                 PageOf(ops, first_key, false), in_.pages->bf16, keys, in_.dims.head_dim,
                 in_.scale, scores);
    if (!masked) return;
    for (int64_t e = 0; e < m * keys; ++e) scores[e] += tile_[e];
  }

  // o[m x Dv] (row stride o_stride) = P V, or += P V when accumulating, for P [m x keys]
  // (rows p_stride apart; bf16 when computing in bf16) and V's rows [first_key, first_key +
  // keys).
  void MultiplyByValues(const Operands& ops, const void* p, int64_t p_stride, int64_t m,
                        int64_t first_key, int64_t keys, float* o, int64_t o_stride,
                        bool accumulate) {
    const AttentionDims& d = in_.dims;
    if (in_.pages != nullptr) {
      page_.values(static_cast<const float*>(p), p_stride, m, PageOf(ops, first_key, true),
                   in_.pages->bf16, keys, d.value_dim, o, o_stride, accumulate);
      return;
    }
    const bool widen = prepared_.widen_tiles;
    const int64_t v_row = widen ? d.value_dim : layout_.v.row;
    const dt operand_type = in_.bf16_compute ? dt::bf16 : dt::f32;
    // o_stride is the output's row stride or Dv (the accumulator): fixed per accumulate.
    BoundPrimitive& pv = Bound(Op::kPv, m, keys, accumulate, p_stride, [&] {
      const memory::desc p_md({m, keys}, operand_type, memory::dims{p_stride, 1});
      const memory::desc v_md({keys, d.value_dim}, operand_type, memory::dims{v_row, 1});
      const memory::desc o_md = RowMajor(m, d.value_dim, o_stride);
      auto primitive = cache_.GetOrCreate(
          absl::StrCat("pv:", m, "x", keys, "x", d.value_dim, ":ld", p_stride, ",", v_row, ",",
                       o_stride,
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
      return Bind(primitive,
                  {{DNNL_ARG_SRC, p_md}, {DNNL_ARG_WEIGHTS, v_md}, {DNNL_ARG_DST, o_md}});
    });
    const void* v = widen ? static_cast<const void*>(WidenTile(ops.v, first_key, keys,
                                                               d.value_dim, layout_.v.row,
                                                               value_tile_f32_))
                          : static_cast<const char*>(ops.v) + OperandBytes(first_key * v_row);
    pv.Run(stream_, {{DNNL_ARG_SRC, p}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, o}});
  }

  // `primitive` bound to argument memories of `args` and this runner's scratchpad.
  std::unique_ptr<BoundPrimitive> Bind(std::shared_ptr<const dnnl::primitive> primitive,
                                       std::initializer_list<std::pair<int, memory::desc>> args) {
    return std::make_unique<BoundPrimitive>(std::move(primitive), engine_, args, scratchpad_);
  }

  // The primitives a runner binds, each per (m, keys, flag, a leading dimension or 0).
  enum class Op { kQk, kKq, kPv };

  // The runner's bound primitive for (op, m, keys, flag, ld), made by `make` the first time.
  template <typename Make>
  BoundPrimitive& Bound(Op op, int64_t m, int64_t keys, bool flag, int64_t ld, Make make) {
    auto [it, inserted] = bound_.try_emplace({static_cast<int>(op), m, keys, flag, ld});
    if (inserted) it->second = make();
    return *it->second;
  }

  const AttentionInputs& in_;
  const AttentionOutputs& out_;
  const Layout& layout_;
  const PreparedOperands& prepared_;
  const bool maps_;  // probabilities or scores returned
  const StoreMode map_store_;
  // The softmax step applies the mask (causal, key_lengths) by each row's visible keys: there is
  // no `allowed` or `bias`, and no scores map to show -inf where forbidden.
  const bool mask_by_row_keys_;
  const OnlineSoftmaxKernels softmax_;
  const PageProductKernels page_;  // paged K and V
  // Q's rows are strided and read by the Q K^T matmul from a blocked K^T, or are rounded to
  // bf16 (bf16_in_f32): a piece's rows are copied dense first.
  const bool copy_query_rows_;
  const CopyKernel copy_kernel_;
  const int64_t q_row_;  // the row stride of the Q rows the Q K^T matmul reads
  PrimitiveCache& cache_;
  const dnnl::engine& engine_;
  dnnl::stream stream_;
  const std::string threads_key_;
  std::vector<float> tile_;         // a mask tile
  std::vector<int64_t> row_keys_;   // or each row's visible keys of the tile
  std::vector<float> scratch_;
  std::vector<uint16_t> probs_bf16_;
  std::vector<float> acc_, row_max_, row_sum_;  // the online softmax's running state
  std::vector<float> tile_max_;  // with maps: per tile, the running max its p_t is relative to
  std::vector<float> factors_;   // with maps: per row, a tile's factor exp(m_t - m) / l
  std::vector<float> scores_t_, query_t_;        // K not transposed: S^T and Q^T
  std::vector<uint16_t> query_t_bf16_;           // or Q^T in bf16
  std::vector<float> key_tile_f32_, value_tile_f32_;  // widen_tiles: a tile of K and of V
  std::vector<float> query_rows_;                // copy_query_rows_: the piece's Q rows
  // With copies by pieces, the piece's own: K^T, and in bf16 its Q and V rows.
  std::vector<float> own_key_t_;
  std::vector<float> own_value_f32_;  // bf16_in_f32: V rounded
  std::vector<uint16_t> own_key_t_bf16_, own_query_, own_value_;
  std::vector<uint8_t> scratchpad_;
  absl::flat_hash_map<std::tuple<int, int64_t, int64_t, bool, int64_t>,
                      std::unique_ptr<BoundPrimitive>>
      bound_;
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

absl::Status RunPieces(const AttentionInputs& in, const AttentionOutputs& out,
                       const Layout& layout, const PreparedOperands& prepared,
                       PrimitiveCache& cache, const dnnl::engine& engine, const StopCheck& stop) {
  const int64_t rows_per_unit = layout.rows_per_unit;
  const int64_t block = std::min(kBlockRows, rows_per_unit);
  const int64_t blocks_per_unit = (rows_per_unit + block - 1) / block;
  const int64_t pieces = in.dims.batch * layout.units_per_batch * blocks_per_unit;
  auto piece_at = [&](int64_t p) {
    Piece piece;
    piece.batch = p / (layout.units_per_batch * blocks_per_unit);
    const int64_t unit = (p / blocks_per_unit) % layout.units_per_batch;
    piece.kv_head = layout.KvHeadOfUnit(unit, in.dims.group_size());
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
        PieceRunner runner(in, out, layout, prepared, cache, engine);
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
      PieceRunner runner(in, out, layout, prepared, cache, engine);
      for (int64_t p = 0; p < pieces && KeepGoing(stop, error); ++p) runner.Run(piece_at(p));
    } catch (const dnnl::error& e) {
      error.Record(e);
    }
  }
  return error.Take();
}

}  // namespace attn
