// Steps of KV-cache sessions: n new tokens of one layer -- their queries, keys and values --
// appended to the layer's cache (positions t .. t+n-1), then the n query rows attended to every
// cached key up to their own position (lower-right causal), within a sliding window when asked.
// A step is planned first (validated against its session: nothing changes when it is refused),
// then applied. Units of few query rows (decode) read the pages in place, bf16 pages as bf16;
// larger ones (prefill) compute from a dense f32 copy of the layer, as the engine copies K for
// them anyway. Decode steps of several sessions alike in shape run as one engine call.
// Functions; thread-safe given the sessions' locks (see each).
#ifndef ATTNSERVE_SRC_KV_SESSION_STEP_H_
#define ATTNSERVE_SRC_KV_SESSION_STEP_H_

#include <cstdint>
#include <span>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/engine/attention_engine.h"
#include "src/kv/kv_session.h"
#include "src/kv/session_store.h"

namespace attn {

// One step as asked: query [H, n, D] (f32), key [Hkv, n, D] and value [Hkv, n, Dv].
struct SessionStep {
  int64_t layer = 0;
  const float* query = nullptr;
  KvRows rows;  // rows.tokens = n
  float scale = 1.0f;
  bool bf16_compute = false;
  int64_t window_tokens = 0;  // > 0: each row sees its last window_tokens positions
};

// What a planned step will do: its first position t, and the cached positions [first_position,
// first_position + keys) its maps [H, n, keys] cover; `bytes` of new pages.
struct StepPlan {
  int64_t position = 0;
  int64_t first_position = 0;
  int64_t keys = 0;
  int64_t bytes = 0;
};

// Checks `step` against `session` (whose mu the caller holds): the layer, n >= 1 and within
// max_tokens, a window that finds the positions it needs still held. INVALID_ARGUMENT /
// FAILED_PRECONDITION naming the field and the numbers. Query/key/value shapes are the caller's
// to check.
absl::StatusOr<StepPlan> PlanStep(const KvSession& session, const SessionStep& step);

// A planned step and where its answers go: output [H, n, Dv], maps [H, n, keys] when set.
struct PlannedStep {
  KvSession* session = nullptr;  // its mu held by the caller
  const SessionStep* step = nullptr;
  StepPlan plan;
  AttentionOutputs outputs;
};

// Reserves the steps' pages (evicting idle sessions as `store` allows), appends their rows and
// computes them with `engine`. All or nothing: when reserving, computing or `stop` fails, no
// session keeps any of the rows. The sessions must be distinct.
absl::Status ApplySteps(std::span<PlannedStep> steps, SessionStore& store,
                        const AttentionEngine& engine, const StopCheck& stop);

}  // namespace attn

#endif  // ATTNSERVE_SRC_KV_SESSION_STEP_H_
