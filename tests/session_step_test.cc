// Tests of src/kv/session_step: after any sequence of prefill, decode, fork, truncate and
// batched steps, each answer equals the stateless engine over the same keys and values held
// densely (f32 pages, and bf16 pages computed in f32: max |error| <= 1e-5, the pages being
// exact), and bf16 compute on bf16 pages is within the engine's bf16 bound of the double
// reference (normwise 1e-2). Refused steps change nothing; a step that cannot get pages
// answers RESOURCE_EXHAUSTED and changes nothing; windows drop pages and still answer right.
#include "src/kv/session_step.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "src/reference/reference_attention.h"
#include "src/runtime/dtype.h"
#include "tests/numeric_error.h"

namespace attn {
namespace {

constexpr double kF32Tolerance = 1e-5;
constexpr double kBf16Normwise = 1e-2;

// A session and, beside it, every position's keys and values held densely per layer (as the
// pages hold them: rounded to bf16 for bf16 sessions), to compute the stateless answer from.
struct Shadow {
  SessionConfig config;
  std::string id;
  std::vector<std::vector<float>> keys, values;  // per layer: [Hkv][positions][D], by position
};

class SessionStepTest : public ::testing::Test {
 protected:
  SessionStepTest() : engine_(AttentionEngine::Options{}), store_(StoreOptions()) {}

  static SessionStore::Options StoreOptions() {
    SessionStore::Options o;
    o.capacity_bytes = int64_t{512} << 20;
    o.page_tokens = 64;
    return o;
  }

  Shadow NewSession(int64_t layers, int64_t heads, int64_t kv_heads, int64_t dim, int64_t vdim,
                    bool bf16) {
    Shadow shadow;
    shadow.config = {.num_layers = layers,
                     .num_heads = heads,
                     .num_kv_heads = kv_heads,
                     .head_dim = dim,
                     .value_dim = vdim,
                     .bf16 = bf16};
    absl::StatusOr<SessionInfo> info = store_.Create(shadow.config, "");
    EXPECT_TRUE(info.ok()) << info.status();
    shadow.id = info->id;
    shadow.config = info->config;
    shadow.keys.resize(layers);
    shadow.values.resize(layers);
    return shadow;
  }

  std::vector<float> Normal(int64_t count) {
    std::normal_distribution<float> normal;
    std::vector<float> out(count);
    for (float& x : out) x = normal(rng_);
    return out;
  }

  // Positions a layer of the shadow holds.
  static int64_t Tokens(const Shadow& s, int64_t layer) {
    return static_cast<int64_t>(s.keys[layer].size()) / s.config.num_kv_heads /
           s.config.head_dim;
  }

  // [Hkv, t, D] of the shadow with [Hkv, n, D] appended (values as the pages keep them).
  static std::vector<float> Appended(const std::vector<float>& old, const std::vector<float>& add,
                                     int64_t heads, int64_t t, int64_t n, int64_t dim, bool bf16) {
    std::vector<float> out(heads * (t + n) * dim);
    for (int64_t g = 0; g < heads; ++g) {
      std::copy_n(old.begin() + g * t * dim, t * dim, out.begin() + g * (t + n) * dim);
      for (int64_t e = 0; e < n * dim; ++e) {
        const float x = add[g * n * dim + e];
        out[g * (t + n) * dim + t * dim + e] = bf16 ? BFloat16ToFloat(FloatToBFloat16(x)) : x;
      }
    }
    return out;
  }

  static std::vector<float> Cut(const std::vector<float>& old, int64_t heads, int64_t t,
                                int64_t keep, int64_t dim) {
    std::vector<float> out(heads * keep * dim);
    for (int64_t g = 0; g < heads; ++g) {
      std::copy_n(old.begin() + g * t * dim, keep * dim, out.begin() + g * keep * dim);
    }
    return out;
  }

  struct StepResult {
    absl::Status status = absl::OkStatus();
    StepPlan plan = {};
    std::vector<float> output = {}, probabilities = {};
  };

  // Runs one step of n tokens on `shadow`'s session (and the shadow, when it succeeds).
  StepResult Step(Shadow& shadow, int64_t layer, int64_t n, bool maps, int64_t window = 0,
                  bool bf16_compute = false) {
    const SessionConfig& c = shadow.config;
    query_ = Normal(c.num_heads * n * c.head_dim);
    key_ = Normal(c.num_kv_heads * n * c.head_dim);
    value_ = Normal(c.num_kv_heads * n * c.value_dim);
    SessionStep step{.layer = layer,
                     .query = query_.data(),
                     .rows = {.tokens = n, .key = key_.data(), .value = value_.data()},
                     .scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                     .bf16_compute = bf16_compute,
                     .window_tokens = window};
    StepResult result;
    absl::StatusOr<SessionLease> lease = store_.Lease(shadow.id, "");
    if (!lease.ok()) {
      result.status = lease.status();
      return result;
    }
    std::lock_guard lock((*lease)->mu);
    absl::StatusOr<StepPlan> plan = PlanStep(**lease, step);
    if (!plan.ok()) {
      result.status = plan.status();
      return result;
    }
    result.plan = *plan;
    result.output.resize(c.num_heads * n * c.value_dim);
    if (maps) result.probabilities.resize(c.num_heads * n * plan->keys);
    PlannedStep planned{.session = lease->get(),
                        .step = &step,
                        .plan = *plan,
                        .outputs = {.output = result.output.data(),
                                    .probabilities = maps ? result.probabilities.data() : nullptr}};
    result.status = ApplySteps(std::span(&planned, 1), store_, engine_, {});
    if (result.status.ok()) Record(shadow, layer, n);
    return result;
  }

  void Record(Shadow& shadow, int64_t layer, int64_t n) {
    const SessionConfig& c = shadow.config;
    const int64_t t = Tokens(shadow, layer);
    shadow.keys[layer] =
        Appended(shadow.keys[layer], key_, c.num_kv_heads, t, n, c.head_dim, c.bf16);
    shadow.values[layer] =
        Appended(shadow.values[layer], value_, c.num_kv_heads, t, n, c.value_dim, c.bf16);
  }

  // The stateless answer to the last step (query_) on `layer` of the shadow: lower-right causal
  // over positions [first, t + n), window as asked.
  AttentionInputs Stateless(const Shadow& shadow, int64_t layer, int64_t n, int64_t first,
                            int64_t window, std::vector<float>& k, std::vector<float>& v,
                            std::vector<float>& bias) {
    const SessionConfig& c = shadow.config;
    const int64_t total = Tokens(shadow, layer), keys = total - first;
    k.resize(c.num_kv_heads * keys * c.head_dim);
    v.resize(c.num_kv_heads * keys * c.value_dim);
    for (int64_t g = 0; g < c.num_kv_heads; ++g) {
      std::copy_n(shadow.keys[layer].begin() + (g * total + first) * c.head_dim,
                  keys * c.head_dim, k.begin() + g * keys * c.head_dim);
      std::copy_n(shadow.values[layer].begin() + (g * total + first) * c.value_dim,
                  keys * c.value_dim, v.begin() + g * keys * c.value_dim);
    }
    AttentionInputs in;
    in.dims = {.batch = 1, .heads = c.num_heads, .kv_heads = c.num_kv_heads, .q_len = n,
               .kv_len = keys, .head_dim = c.head_dim, .value_dim = c.value_dim};
    in.query = query_.data();
    in.key = k.data();
    in.value = v.data();
    in.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    in.mask.causal = CausalKind::kLowerRight;
    if (window > 0) {
      bias.assign(n * keys, 0.0f);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < keys; ++j) {
          if (first + j <= total - n + i - window) {
            bias[i * keys + j] = -std::numeric_limits<float>::infinity();
          }
        }
      }
      in.mask.bias = bias.data();
      in.mask.bias_strides = {0, 0, keys, 1};
    }
    return in;
  }

  // Checks `got` (the last step on `layer`) against the stateless engine within 1e-5.
  void ExpectStateless(const Shadow& shadow, int64_t layer, int64_t n, const StepResult& got,
                       int64_t window = 0) {
    ASSERT_TRUE(got.status.ok()) << got.status;
    std::vector<float> k, v, bias;
    const AttentionInputs in =
        Stateless(shadow, layer, n, got.plan.first_position, window, k, v, bias);
    ASSERT_EQ(in.dims.kv_len, got.plan.keys);
    std::vector<float> output(got.output.size());
    std::vector<float> probabilities(got.probabilities.size());
    AttentionOutputs out{.output = output.data(),
                         .probabilities = got.probabilities.empty() ? nullptr
                                                                    : probabilities.data()};
    ASSERT_TRUE(engine_.Run(in, out).ok());
    EXPECT_LE(MaxAbsError(got.output, output), kF32Tolerance) << "output";
    if (!got.probabilities.empty()) {
      EXPECT_LE(MaxAbsError(got.probabilities, probabilities), kF32Tolerance) << "probabilities";
    }
  }

  AttentionEngine engine_;
  SessionStore store_;
  std::mt19937 rng_{7};
  std::vector<float> query_, key_, value_;
};

// Prefill (gathered and in place), chunked prefill and decode across page boundaries, with
// and without maps, GQA and not, f32 and bf16 pages: each step equals stateless attention.
TEST_F(SessionStepTest, PrefillThenDecodeEqualsStateless) {
  struct Shape {
    int64_t heads, kv_heads, dim, vdim;
  };
  for (const Shape& shape : {Shape{8, 2, 64, 64}, Shape{4, 4, 32, 48}, Shape{16, 1, 128, 128}}) {
    for (bool bf16 : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "H=" << shape.heads << " Hkv=" << shape.kv_heads
                                        << " D=" << shape.dim << " bf16=" << bf16);
      Shadow s = NewSession(2, shape.heads, shape.kv_heads, shape.dim, shape.vdim, bf16);
      for (int64_t n : {100, 3, 1, 1, 60, 1, 70, 1}) {
        for (int64_t layer : {0, 1}) {
          SCOPED_TRACE(::testing::Message() << "n=" << n << " layer=" << layer);
          const StepResult got = Step(s, layer, n, /*maps=*/n != 60);
          ExpectStateless(s, layer, n, got);
        }
      }
    }
  }
}

// bf16 compute on bf16 pages against the double reference of the same values.
TEST_F(SessionStepTest, Bf16ComputeOnBf16PagesIsWithinTheBf16Bound) {
  Shadow s = NewSession(1, 8, 2, 64, 64, true);
  for (int64_t n : {150, 1, 1, 40, 1}) {
    const StepResult got = Step(s, 0, n, true, 0, /*bf16_compute=*/true);
    ASSERT_TRUE(got.status.ok()) << got.status;
    std::vector<float> k, v, bias;
    const AttentionInputs in = Stateless(s, 0, n, 0, 0, k, v, bias);
    const ReferenceResult want = ReferenceAttention(in);
    EXPECT_LE(NormwiseError(got.output, want.output), kBf16Normwise);
    EXPECT_LE(NormwiseError(got.probabilities, want.probabilities), kBf16Normwise);
  }
}

// Forks share pages until written; truncation rolls back; both answer as stateless would.
TEST_F(SessionStepTest, ForkAndTruncateEqualStateless) {
  for (bool bf16 : {false, true}) {
    Shadow s = NewSession(1, 8, 2, 64, 64, bf16);
    ASSERT_TRUE(Step(s, 0, 150, false).status.ok());
    const int64_t pages_before = store_.pool().pages();
    absl::StatusOr<SessionInfo> fork = store_.Fork(s.id, 100, "");
    ASSERT_TRUE(fork.ok()) << fork.status();
    EXPECT_EQ(store_.pool().pages(), pages_before);  // shared, not copied
    Shadow f = s;
    f.id = fork->id;
    f.keys[0] = Cut(s.keys[0], 2, 150, 100, 64);
    f.values[0] = Cut(s.values[0], 2, 150, 100, 64);
    for (int i = 0; i < 3; ++i) {
      const StepResult a = Step(f, 0, 1, true);
      ExpectStateless(f, 0, 1, a);
      const StepResult b = Step(s, 0, 1, true);
      ExpectStateless(s, 0, 1, b);
    }
    absl::StatusOr<SessionInfo> cut = store_.Truncate(s.id, 120, "");
    ASSERT_TRUE(cut.ok()) << cut.status();
    EXPECT_EQ(cut->layer_tokens[0], 120);
    s.keys[0] = Cut(s.keys[0], 2, 153, 120, 64);
    s.values[0] = Cut(s.values[0], 2, 153, 120, 64);
    const StepResult after = Step(s, 0, 5, true);
    ExpectStateless(s, 0, 5, after);
    ASSERT_TRUE(store_.Close(s.id, "").ok());
    ASSERT_TRUE(store_.Close(f.id, "").ok());
  }
  EXPECT_EQ(store_.pool().pages(), 0);
  EXPECT_EQ(store_.pool().used_bytes(), 0);
}

// A sliding window: every row sees its last W positions; pages wholly before every future
// window go back to the pool; a later step needing them is FAILED_PRECONDITION.
TEST_F(SessionStepTest, SlidingWindowDropsPagesAndEqualsStateless) {
  Shadow s = NewSession(1, 4, 2, 32, 32, false);
  constexpr int64_t kWindow = 100;
  for (int64_t n : {150, 1, 1, 40, 30, 1}) {
    const StepResult got = Step(s, 0, n, true, kWindow);
    ExpectStateless(s, 0, n, got, kWindow);
  }
  // 223 positions; the next row (223) sees positions > 123: pages of 64 before 64*1 = 64 dropped.
  absl::StatusOr<SessionInfo> info = store_.Get(s.id, "");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->bytes, 3 * 2 * (64 * 32 * 4) * 2);  // pages 1..3 of 2 heads, K and V
  const StepResult refused = Step(s, 0, 1, false, 0);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition) << refused.status;
  EXPECT_NE(refused.status.message().find("positions < 64"), std::string::npos);
}

// Refused steps change nothing: bad layer, n = 0, past max_tokens.
TEST_F(SessionStepTest, RefusedStepsChangeNothing) {
  SessionConfig config{.num_layers = 2, .num_heads = 4, .num_kv_heads = 2, .head_dim = 32,
                       .value_dim = 32, .max_tokens = 100};
  absl::StatusOr<SessionInfo> info = store_.Create(config, "");
  ASSERT_TRUE(info.ok());
  Shadow s{.config = info->config, .id = info->id, .keys = {{}, {}}, .values = {{}, {}}};
  ASSERT_TRUE(Step(s, 0, 90, false).status.ok());
  EXPECT_EQ(Step(s, 2, 1, false).status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Step(s, -1, 1, false).status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Step(s, 0, 0, false).status.code(), absl::StatusCode::kInvalidArgument);
  const StepResult full = Step(s, 0, 11, false);
  EXPECT_EQ(full.status.code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(full.status.message(), "layer 0 holds 90 positions: 11 more pass max_tokens 100");
  absl::StatusOr<SessionInfo> after = store_.Get(s.id, "");
  EXPECT_EQ(after->layer_tokens, (std::vector<int64_t>{90, 0}));
  const StepResult ok = Step(s, 0, 10, true);
  ExpectStateless(s, 0, 10, ok);
}

// A step the pool cannot give pages to (no session to evict) is RESOURCE_EXHAUSTED with the
// numbers and changes nothing; a stop during the computation takes the rows back.
TEST_F(SessionStepTest, NoPagesOrStoppedChangesNothing) {
  SessionStore::Options o = StoreOptions();
  o.capacity_bytes = 64 * 32 * 4 * 2 * 2 * 3;  // 3 pages per head of K and V (2 heads)
  SessionStore small(o);
  absl::StatusOr<SessionInfo> info =
      small.Create({.num_layers = 1, .num_heads = 2, .num_kv_heads = 2, .head_dim = 32}, "");
  ASSERT_TRUE(info.ok());
  absl::StatusOr<SessionLease> lease = small.Lease(info->id, "");
  ASSERT_TRUE(lease.ok());
  std::lock_guard lock((*lease)->mu);
  auto run = [&](int64_t n, const StopCheck& stop) {
    query_ = Normal(2 * n * 32);
    key_ = Normal(2 * n * 32);
    value_ = Normal(2 * n * 32);
    SessionStep step{.layer = 0, .query = query_.data(),
                     .rows = {.tokens = n, .key = key_.data(), .value = value_.data()}};
    absl::StatusOr<StepPlan> plan = PlanStep(**lease, step);
    EXPECT_TRUE(plan.ok());
    std::vector<float> output(2 * n * 32);
    PlannedStep planned{.session = lease->get(), .step = &step, .plan = *plan,
                        .outputs = {.output = output.data()}};
    return ApplySteps(std::span(&planned, 1), small, engine_, stop);
  };
  const absl::Status too_big = run(200, {});
  EXPECT_EQ(too_big.code(), absl::StatusCode::kResourceExhausted) << too_big;
  EXPECT_NE(too_big.message().find("cannot give 131072 bytes"), std::string::npos) << too_big;
  EXPECT_EQ((*lease)->layers[0].tokens(), 0);
  EXPECT_EQ(small.pool().used_bytes(), 0);
  const absl::Status stopped = run(100, [] { return absl::CancelledError("stop"); });
  EXPECT_EQ(stopped.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ((*lease)->layers[0].tokens(), 0);
  EXPECT_TRUE(run(150, {}).ok());
  EXPECT_EQ((*lease)->layers[0].tokens(), 150);
}

// Decode steps of sessions of different lengths as one batch equal each alone.
TEST_F(SessionStepTest, BatchOfDecodeStepsEqualsEachAlone) {
  for (bool bf16 : {false, true}) {
    std::vector<Shadow> shadows;
    for (int64_t length : {10, 130, 64, 300}) {
      shadows.push_back(NewSession(1, 8, 2, 64, 64, bf16));
      ASSERT_TRUE(Step(shadows.back(), 0, length, false).status.ok());
    }
    std::vector<SessionLease> leases;
    std::vector<SessionStep> steps(shadows.size());
    std::vector<std::vector<float>> queries, keys, values, outputs;
    std::vector<PlannedStep> planned;
    for (size_t i = 0; i < shadows.size(); ++i) {
      leases.push_back(*store_.Lease(shadows[i].id, ""));
      queries.push_back(Normal(8 * 64));
      keys.push_back(Normal(2 * 64));
      values.push_back(Normal(2 * 64));
      outputs.emplace_back(8 * 64);
      steps[i] = {.layer = 0, .query = queries[i].data(),
                  .rows = {.tokens = 1, .key = keys[i].data(), .value = values[i].data()},
                  .scale = 0.125f};
    }
    for (size_t i = 0; i < shadows.size(); ++i) leases[i]->mu.lock();
    for (size_t i = 0; i < shadows.size(); ++i) {
      planned.push_back({.session = leases[i].get(), .step = &steps[i],
                         .plan = *PlanStep(*leases[i], steps[i]),
                         .outputs = {.output = outputs[i].data()}});
    }
    ASSERT_TRUE(ApplySteps(planned, store_, engine_, {}).ok());
    for (size_t i = 0; i < shadows.size(); ++i) leases[i]->mu.unlock();
    for (size_t i = 0; i < shadows.size(); ++i) {
      query_ = queries[i];
      key_ = keys[i];
      value_ = values[i];
      Record(shadows[i], 0, 1);
      StepResult got{.plan = planned[i].plan, .output = outputs[i]};
      ExpectStateless(shadows[i], 0, 1, got);
    }
  }
}

// Steps on different sessions from several threads at once each equal stateless attention.
TEST_F(SessionStepTest, ConcurrentSessionsEqualStateless) {
  std::vector<std::thread> threads;
  std::vector<Shadow> shadows;
  for (int i = 0; i < 4; ++i) shadows.push_back(NewSession(1, 4, 2, 32, 32, i % 2 == 1));
  std::atomic<int> wrong{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      SessionStore& store = store_;
      std::mt19937 rng(i);
      std::normal_distribution<float> normal;
      std::vector<float> all_k, all_v;
      for (int64_t n : {70, 1, 1, 1, 5, 1}) {
        std::vector<float> q(4 * n * 32), k(2 * n * 32), v(2 * n * 32), out(4 * n * 32);
        for (auto* x : {&q, &k, &v}) for (float& e : *x) e = normal(rng);
        SessionStep step{.layer = 0, .query = q.data(),
                         .rows = {.tokens = n, .key = k.data(), .value = v.data()},
                         .scale = 0.2f};
        absl::StatusOr<SessionLease> lease = store.Lease(shadows[i].id, "");
        std::lock_guard lock((*lease)->mu);
        PlannedStep planned{.session = lease->get(), .step = &step,
                            .plan = *PlanStep(**lease, step), .outputs = {.output = out.data()}};
        if (!ApplySteps(std::span(&planned, 1), store, engine_, {}).ok()) ++wrong;
        const int64_t t = planned.plan.position;
        const bool bf16 = shadows[i].config.bf16;
        all_k = Appended(all_k, k, 2, t, n, 32, bf16);
        all_v = Appended(all_v, v, 2, t, n, 32, bf16);
        AttentionInputs in;
        in.dims = {1, 4, 2, n, t + n, 32, 32};
        in.query = q.data();
        in.key = all_k.data();
        in.value = all_v.data();
        in.scale = 0.2f;
        in.mask.causal = CausalKind::kLowerRight;
        std::vector<float> want(out.size());
        if (!engine_.Run(in, {.output = want.data()}).ok() ||
            MaxAbsError(out, want) > kF32Tolerance) {
          ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

// The engine reads pages only in units of few rows, and pages of whole 64-key blocks.
TEST_F(SessionStepTest, EngineRefusesPagedInputsItCannotRead) {
  std::vector<float> page(128 * 16, 0.0f), query(33 * 16, 0.0f), output(33 * 16);
  const void* table[] = {page.data()};
  KvPages pages{.page_tokens = 128, .pages_per_head = 1, .key_pages = table, .value_pages = table};
  AttentionInputs in;
  in.dims = {.batch = 1, .heads = 33, .kv_heads = 1, .q_len = 1, .kv_len = 100, .head_dim = 16,
             .value_dim = 16};
  in.query = query.data();
  in.pages = &pages;
  absl::Status status = engine_.Run(in, {.output = output.data()});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "paged keys and values are read by units of at most 32 query rows; got 33");
  in.dims.heads = 32;
  pages.page_tokens = 100;
  status = engine_.Run(in, {.output = output.data()});
  EXPECT_EQ(status.message(), "page_tokens must be a positive multiple of 64; got 100");
  pages.page_tokens = 128;
  EXPECT_TRUE(engine_.Run(in, {.output = output.data()}).ok());
}

}  // namespace
}  // namespace attn
