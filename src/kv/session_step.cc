// Session steps: plan, append, attend (see session_step.h).
#include "src/kv/session_step.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"

namespace attn {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

const KvLayerCache& LayerOf(const PlannedStep& s) { return s.session->layers[s.step->layer]; }
KvLayerCache& MutableLayerOf(PlannedStep& s) { return s.session->layers[s.step->layer]; }

AttentionDims DimsOf(const SessionConfig& c, int64_t batch, int64_t n, int64_t keys) {
  return {.batch = batch,
          .heads = c.num_heads,
          .kv_heads = c.num_kv_heads,
          .q_len = n,
          .kv_len = keys,
          .head_dim = c.head_dim,
          .value_dim = c.value_dim};
}

// Whether the engine reads this step's pages in place (units of few query rows).
bool ReadsPages(const SessionConfig& c, int64_t n) {
  return c.num_heads / c.num_kv_heads * n <= AttentionEngine::kFewRows;
}

// One step alone:
//   S = scale * Q K^T over the layer's held keys; key j (position first + j) forbidden for row
//   i (position t + i) when first + j > t + i (lower-right causal) or, with a window W, when
//   first + j <= t + i - W (a -inf bias);  P = softmax(S);  O = P V.
absl::Status ComputeOne(const PlannedStep& s, const AttentionEngine& engine,
                        const StopCheck& stop) {
  const SessionConfig& c = s.session->config;
  const SessionStep& step = *s.step;
  const KvLayerCache& layer = LayerOf(s);
  const int64_t n = step.rows.tokens, keys = s.plan.keys;
  AttentionInputs in;
  in.dims = DimsOf(c, 1, n, keys);
  in.query = step.query;
  in.scale = step.scale;
  in.bf16_compute = step.bf16_compute;
  in.mask.causal = CausalKind::kLowerRight;
  std::vector<float> bias;
  if (step.window_tokens > 0) {
    bias.assign(n * keys, 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      // Positions <= t + i - W are outside row i's window.
      const int64_t outside = s.plan.position + i - step.window_tokens - s.plan.first_position + 1;
      std::fill_n(bias.begin() + i * keys, std::clamp<int64_t>(outside, 0, keys), -kInf);
    }
    in.mask.bias = bias.data();
    in.mask.bias_strides = {0, 0, keys, 1};
  }
  std::vector<const void*> key_pages, value_pages;
  KvPages pages;
  std::vector<float> keys_f32, values_f32;
  if (ReadsPages(c, n)) {
    layer.PageTable(key_pages, value_pages);
    pages = {.page_tokens = layer.layout().page_tokens,
             .pages_per_head = layer.pages_per_head(),
             .bf16 = c.bf16,
             .key_pages = key_pages.data(),
             .value_pages = value_pages.data()};
    in.pages = &pages;
  } else {
    keys_f32.resize(c.num_kv_heads * keys * c.head_dim);
    values_f32.resize(c.num_kv_heads * keys * c.value_dim);
    layer.Gather(keys_f32.data(), values_f32.data());
    in.key = keys_f32.data();
    in.value = values_f32.data();
  }
  return engine.Run(in, s.outputs, stop);
}

// Whether a step may join a batch of decode steps computed in one engine call: one token, no
// window, no maps, pages read in place.
bool Batchable(const PlannedStep& s) {
  return s.step->rows.tokens == 1 && s.step->window_tokens == 0 &&
         s.outputs.probabilities == nullptr && s.outputs.scores == nullptr &&
         ReadsPages(s.session->config, 1);
}

// What steps must share to be one engine call.
auto BatchKey(const PlannedStep& s) {
  const SessionConfig& c = s.session->config;
  return std::make_tuple(c.num_heads, c.num_kv_heads, c.head_dim, c.value_dim, c.bf16,
                         std::bit_cast<uint32_t>(s.step->scale), s.step->bf16_compute);
}

// Decode steps alike (BatchKey) as one engine call: batch item b is step b, its keys
// [0, keys_b) (key_lengths; the page table padded to the longest), its query and output
// gathered into and scattered from dense [B, H, 1, D] / [B, H, 1, Dv] buffers.
absl::Status ComputeBatch(std::span<PlannedStep* const> steps, const AttentionEngine& engine,
                          const StopCheck& stop) {
  const SessionConfig& c = steps[0]->session->config;
  const int64_t batch = static_cast<int64_t>(steps.size());
  int64_t longest = 0, most_pages = 0;
  for (const PlannedStep* s : steps) {
    longest = std::max(longest, s->plan.keys);
    most_pages = std::max(most_pages, LayerOf(*s).pages_per_head());
  }
  const int64_t q_size = c.num_heads * c.head_dim, o_size = c.num_heads * c.value_dim;
  std::vector<float> query(batch * q_size), output(batch * o_size);
  std::vector<int32_t> key_lengths(batch);
  std::vector<const void*> key_pages(batch * c.num_kv_heads * most_pages, nullptr);
  std::vector<const void*> value_pages(key_pages.size(), nullptr);
  std::vector<const void*> k, v;
  for (int64_t b = 0; b < batch; ++b) {
    const PlannedStep& s = *steps[b];
    std::copy_n(s.step->query, q_size, query.begin() + b * q_size);
    key_lengths[b] = static_cast<int32_t>(s.plan.keys);
    const KvLayerCache& layer = LayerOf(s);
    layer.PageTable(k, v);
    const int64_t pages = layer.pages_per_head();
    for (int64_t g = 0; g < c.num_kv_heads; ++g) {
      std::copy_n(k.begin() + g * pages, pages,
                  key_pages.begin() + (b * c.num_kv_heads + g) * most_pages);
      std::copy_n(v.begin() + g * pages, pages,
                  value_pages.begin() + (b * c.num_kv_heads + g) * most_pages);
    }
  }
  const KvPages pages{.page_tokens = LayerOf(*steps[0]).layout().page_tokens,
                      .pages_per_head = most_pages,
                      .bf16 = c.bf16,
                      .key_pages = key_pages.data(),
                      .value_pages = value_pages.data()};
  AttentionInputs in;
  in.dims = DimsOf(c, batch, 1, longest);
  in.query = query.data();
  in.scale = steps[0]->step->scale;
  in.bf16_compute = steps[0]->step->bf16_compute;
  in.mask.key_lengths = key_lengths;
  in.pages = &pages;
  AttentionOutputs out;
  out.output = output.data();
  if (absl::Status s = engine.Run(in, out, stop); !s.ok()) return s;
  for (int64_t b = 0; b < batch; ++b) {
    std::copy_n(output.begin() + b * o_size, o_size, steps[b]->outputs.output);
  }
  return absl::OkStatus();
}

absl::Status Compute(std::span<PlannedStep> steps, const AttentionEngine& engine,
                     const StopCheck& stop) {
  std::vector<PlannedStep*> batchable;
  for (PlannedStep& s : steps) {
    if (Batchable(s)) {
      batchable.push_back(&s);
    } else if (absl::Status status = ComputeOne(s, engine, stop); !status.ok()) {
      return status;
    }
  }
  std::stable_sort(batchable.begin(), batchable.end(),
                   [](const PlannedStep* a, const PlannedStep* b) {
                     return BatchKey(*a) < BatchKey(*b);
                   });
  for (size_t first = 0; first < batchable.size();) {
    size_t end = first + 1;
    while (end < batchable.size() && BatchKey(*batchable[end]) == BatchKey(*batchable[first])) {
      ++end;
    }
    std::span<PlannedStep* const> group(batchable.data() + first, end - first);
    absl::Status status =
        group.size() == 1 ? ComputeOne(*group[0], engine, stop) : ComputeBatch(group, engine, stop);
    if (!status.ok()) return status;
    first = end;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StepPlan> PlanStep(const KvSession& session, const SessionStep& step) {
  const SessionConfig& c = session.config;
  if (step.layer < 0 || step.layer >= c.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("layer must be in [0, ", c.num_layers,
                                                   ") (num_layers); got ", step.layer));
  }
  const int64_t n = step.rows.tokens;
  if (n < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a step needs at least one token (n = query.shape[1]); got ", n));
  }
  if (step.window_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("window_tokens must be >= 0; got ", step.window_tokens));
  }
  const KvLayerCache& layer = session.layers[step.layer];
  const int64_t t = layer.tokens();
  if (n > c.max_tokens - t) {
    return absl::OutOfRangeError(absl::StrCat("layer ", step.layer, " holds ", t,
                                              " positions: ", n, " more pass max_tokens ",
                                              c.max_tokens));
  }
  const int64_t needed = step.window_tokens > 0 ? std::max<int64_t>(0, t - step.window_tokens + 1)
                                                : 0;
  if (needed < layer.first_position()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "layer ", step.layer, " no longer holds positions < ", layer.first_position(),
        " (dropped under a sliding window) and this step needs them from ", needed,
        step.window_tokens > 0 ? absl::StrCat(" (window_tokens = ", step.window_tokens, ")")
                               : std::string(" (no window)")));
  }
  return StepPlan{.position = t,
                  .first_position = layer.first_position(),
                  .keys = t + n - layer.first_position(),
                  .bytes = layer.BytesToAppend(n)};
}

absl::Status ApplySteps(std::span<PlannedStep> steps, SessionStore& store,
                        const AttentionEngine& engine, const StopCheck& stop) {
  int64_t reserved = 0;
  for (const PlannedStep& s : steps) reserved += s.plan.bytes;
  if (absl::Status s = store.Reserve(reserved); !s.ok()) return s;
  int64_t made = 0;
  for (PlannedStep& s : steps) made += MutableLayerOf(s).Append(s.step->rows, store.pool());
  store.pool().Unreserve(reserved - made);
  absl::Status status = stop ? stop() : absl::OkStatus();
  if (status.ok()) status = Compute(steps, engine, stop);
  for (PlannedStep& s : steps) {
    KvLayerCache& layer = MutableLayerOf(s);
    if (!status.ok()) {
      layer.Truncate(s.plan.position);  // the step never happened
    } else if (s.step->window_tokens > 0) {
      // The next step's first row (position t + n) sees positions > t + n - W.
      layer.DropBefore(layer.tokens() - s.step->window_tokens + 1);
    }
  }
  return status;
}

}  // namespace attn
