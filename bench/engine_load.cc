// engine-load: the in-process peer of `attn-client bench`. The same closed loop (the same
// request and load flags, the same report) of the same random AttendRequest, but each call runs
// RunAttend -- the server's own request -> engine -> response path -- on an Executor built like
// attnserve's (--intra_op_threads, --share_threads, --workers with the server's defaults, so the
// OpenMP threads per request match), with no gRPC, no serialization and no network.
// bench/server_overhead.sh compares the two.
#include <future>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "client/attend_flags.h"
#include "client/load_flags.h"
#include "server/attend_call.h"
#include "server/server_runner.h"
#include "src/engine/attention_engine.h"
#include "src/runtime/executor.h"
#include "src/runtime/memory_reuse.h"

ABSL_FLAG(int, intra_op_threads, 0,
          "the most OpenMP threads per request, as attnserve --intra_op_threads (0 = the cores)");
ABSL_FLAG(bool, share_threads, true, "as attnserve --share_threads");
ABSL_FLAG(int, workers, 0, "compute workers, as attnserve --workers (0 = --intra_op_threads)");

namespace {

namespace pb = attention::v1;

int Usage(const std::string& problem) {
  std::cerr << "engine-load: " << problem << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "engine-load --shape B,H,Sq,Sk,D [--concurrency N --duration 10s --warmup 1s --json]: "
      "attn-client bench's closed loop, in process (no gRPC)");
  if (absl::ParseCommandLine(argc, argv).size() != 1) return Usage("takes flags only");
  absl::StatusOr<attn::RandomAttendSpec> spec = attn::RandomAttendSpecFromFlags();
  if (!spec.ok()) return Usage(std::string(spec.status().message()));
  absl::StatusOr<attn::LoadOptions> options = attn::LoadOptionsFromFlags();
  if (!options.ok()) return Usage(std::string(options.status().message()));
  absl::StatusOr<attn::Executor::Options> threads = attn::Executor::OptionsFromFlags(
      absl::GetFlag(FLAGS_workers), absl::GetFlag(FLAGS_intra_op_threads),
      absl::GetFlag(FLAGS_share_threads));
  if (!threads.ok()) return Usage(std::string(threads.status().message()));

  attn::KeepFreedMemoryForReuse();  // as attnserve does
  const attn::ServerOptions server;  // attnserve's defaults for the limits and the cache
  const attn::AttendLimits limits = server.Limits();
  const attn::AttentionEngine engine({.primitive_cache_capacity = server.primitive_cache_capacity});
  attn::Executor executor(*threads);
  const pb::AttendRequest request = attn::MakeRandomAttend(*spec).request;
  const attn::LoadResult result = attn::RunClosedLoop(*options, [&](int) -> attn::LoadCall {
    // Like a gRPC call: the client's own request, a fresh response, computed on a worker.
    return [&, request]() {
      pb::AttendResponse response;
      std::promise<absl::Status> status;
      executor.Submit(
          [&] {
            const absl::Status computed = attn::RunAttend(request, limits, engine, &response);
            executor.FinishedComputing();  // as attnserve does before it answers
            status.set_value(computed);
          });
      return status.get_future().get();
    };
  });
  return attn::PrintLoadResult(
      {.target = "in-process", .request = attn::DescribeRandomAttend(*spec)}, *options, result);
}
