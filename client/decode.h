// A synthetic decode through a KV-cache session (attn-client decode): one session of one layer,
// a prefill of random tokens, then decode steps of one token each; with `verify`, every step's
// output is compared with stateless Attend over the same keys and values, sent whole as a
// client without sessions must. And the decode load of `attn-client bench --decode`: one such
// session per client, stepped in a closed loop. Not thread-safe (one decode per call).
#ifndef ATTNSERVE_CLIENT_DECODE_H_
#define ATTNSERVE_CLIENT_DECODE_H_

#include <cstdint>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/attention_client.h"
#include "client/load_generator.h"

namespace attn {

struct DecodeOptions {
  int64_t heads = 8;
  int64_t kv_heads = 2;
  int64_t head_dim = 64;
  int64_t prefill = 1000;  // tokens of the first step
  int64_t steps = 100;     // decode steps after it
  bool bf16_pages = false;
  bool verify = false;
  uint32_t seed = 1;
};

// Session steps and stateless Attend compute in f32 over the same values (bf16 pages: Attend
// gets the keys and values rounded to bf16 as the pages hold them), so they agree to rounding.
inline constexpr double kDecodeTolerance = 1e-5;

struct DecodeReport {
  int64_t tokens = 0;  // positions the session held at the end
  double prefill_ms = 0;
  double step_ms_median = 0;          // of the decode steps
  int64_t step_wire_bytes = 0;        // request + response of the last decode step
  int64_t stateless_wire_bytes = 0;   // the same for its stateless Attend (verify)
  int64_t steps_checked = 0;
  double max_abs_error = 0;  // verify: the worst |session - stateless| over every step
};

// Runs the decode; the session is closed at the end (or on failure). A failed call is its status;
// a step over kDecodeTolerance is INTERNAL naming the step and the error.
absl::StatusOr<DecodeReport> RunDecode(const AttentionClient& client,
                                       const DecodeOptions& options);

// Decode steps between truncations in a decode load: its sessions hold prefill to
// prefill + kDecodeLoadSteps - 1 positions.
inline constexpr int64_t kDecodeLoadSteps = 64;

// One client of a decode load: a session of `options` (seeded by `seed`) created and prefilled
// now, then each call one decode step of a new token, the session truncated back to the prefill
// (within the call) every kDecodeLoadSteps steps. A failure to set up makes every call return
// it. `session_id` gets the session's id (for closing it after the run) and `wire_bytes` the
// bytes of one step on the wire (request + response).
LoadCall MakeDecodeLoadCall(const AttentionClient& client, const DecodeOptions& options,
                            uint32_t seed, std::string* session_id, int64_t* wire_bytes);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_DECODE_H_
