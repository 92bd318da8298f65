// The figures of a closed-loop run (load_generator.h) as text or as one JSON object. JSON keys
// (stable): target, request, concurrency, connections (0 in process), warmup_s, duration_s,
// requests (successful calls counted), requests_per_s, mean_ms, p50_ms, p90_ms, p99_ms, max_ms
// (latency of those calls; 0 when there were none), errors ({"STATUS_CODE_NAME": count}; {}
// when none failed).
#ifndef ATTNSERVE_CLIENT_LOAD_REPORT_H_
#define ATTNSERVE_CLIENT_LOAD_REPORT_H_

#include <string>

#include "client/load_generator.h"

namespace attn {

// What was loaded: `target` (an address, or "in-process") and a description of the request.
struct LoadSubject {
  std::string target;
  std::string request;
  int connections = 0;  // gRPC connections the calls were spread over; 0 = in process
};

std::string LoadReportText(const LoadSubject& subject, const LoadOptions& options,
                           const LoadResult& result);
std::string LoadReportJson(const LoadSubject& subject, const LoadOptions& options,
                           const LoadResult& result);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_LOAD_REPORT_H_
