// The closed-loop flags that `attn-client bench` and engine-load share (--concurrency,
// --duration, --warmup, --json) and how both print their result.
#ifndef ATTNSERVE_CLIENT_LOAD_FLAGS_H_
#define ATTNSERVE_CLIENT_LOAD_FLAGS_H_

#include "absl/status/statusor.h"
#include "client/load_generator.h"
#include "client/load_report.h"

namespace attn {

// INVALID_ARGUMENT naming the flag when one is out of range.
absl::StatusOr<LoadOptions> LoadOptionsFromFlags();

// Prints the report on stdout, as JSON with --json; returns the exit status: 0, or 1 when any
// counted call failed.
int PrintLoadResult(const LoadSubject& subject, const LoadOptions& options,
                    const LoadResult& result);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_LOAD_FLAGS_H_
