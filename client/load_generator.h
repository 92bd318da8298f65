// A closed-loop load generator: `concurrency` client threads each repeat one call, sending the
// next as soon as the previous one returns, through a warm-up that is not counted and then a
// measured period. A call counts when it completes inside the measured period: successes give
// the throughput and the latencies, failures are tallied by status code name. Used by
// `attn-client bench` (calls over gRPC) and bench/engine_load.cc (the same calls in process).
#ifndef ATTNSERVE_CLIENT_LOAD_GENERATOR_H_
#define ATTNSERVE_CLIENT_LOAD_GENERATOR_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace attn {

struct LoadOptions {
  int concurrency = 4;
  absl::Duration warmup = absl::Seconds(1);
  absl::Duration duration = absl::Seconds(10);
};

// One client's call, made again as soon as it returns. Must return in bounded time.
using LoadCall = absl::AnyInvocable<absl::Status()>;

struct LoadResult {
  double seconds = 0;                     // length of the measured period
  std::vector<double> latencies_ms;       // successful calls completed in it, sorted
  std::map<std::string, int64_t> errors;  // failed calls completed in it, by status code name
};

// Runs the loop. `make_call(i)` builds client i's call on client thread i before the clock
// starts (so per-thread setup, such as an OpenMP thread count, happens there); it is called
// concurrently from the client threads.
LoadResult RunClosedLoop(const LoadOptions& options,
                         absl::FunctionRef<LoadCall(int client)> make_call);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_LOAD_GENERATOR_H_
