// Text and JSON reports of a closed-loop run (see load_report.h).
#include "client/load_report.h"

#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace attn {
namespace {

struct Figures {
  int64_t requests = 0;
  double requests_per_s = 0, mean_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
};

// Nearest-rank percentile of sorted `values` (not empty).
double Percentile(const std::vector<double>& values, double fraction) {
  const size_t rank = static_cast<size_t>(std::ceil(fraction * values.size()));
  return values[rank > 0 ? rank - 1 : 0];
}

Figures FiguresOf(const LoadResult& result) {
  Figures f;
  const std::vector<double>& ms = result.latencies_ms;
  f.requests = static_cast<int64_t>(ms.size());
  if (ms.empty()) return f;
  f.requests_per_s = result.seconds > 0 ? ms.size() / result.seconds : 0;
  f.mean_ms = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
  f.p50_ms = Percentile(ms, 0.50);
  f.p90_ms = Percentile(ms, 0.90);
  f.p99_ms = Percentile(ms, 0.99);
  f.max_ms = ms.back();
  return f;
}

}  // namespace

std::string LoadReportText(const LoadSubject& subject, const LoadOptions& options,
                           const LoadResult& result) {
  const Figures f = FiguresOf(result);
  std::string errors;
  for (const auto& [code, count] : result.errors) {
    absl::StrAppend(&errors, errors.empty() ? "" : ", ", code, " ", count);
  }
  return absl::StrFormat(
      "target      %s\n"
      "request     %s\n"
      "load        concurrency %d, %s, %.1f s measured after a %.1f s warm-up\n"
      "requests    %d OK, %.1f requests/s\n"
      "latency ms  mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n"
      "errors      %s\n",
      subject.target, subject.request, options.concurrency,
      subject.connections == 0 ? std::string("in process")
                               : absl::StrCat(subject.connections, " connection(s)"),
      result.seconds,
      absl::ToDoubleSeconds(options.warmup), f.requests, f.requests_per_s, f.mean_ms, f.p50_ms,
      f.p90_ms, f.p99_ms, f.max_ms, errors.empty() ? "none" : errors);
}

std::string LoadReportJson(const LoadSubject& subject, const LoadOptions& options,
                           const LoadResult& result) {
  const Figures f = FiguresOf(result);
  nlohmann::ordered_json json = {
      {"target", subject.target},
      {"request", subject.request},
      {"concurrency", options.concurrency},
      {"connections", subject.connections},
      {"warmup_s", absl::ToDoubleSeconds(options.warmup)},
      {"duration_s", result.seconds},
      {"requests", f.requests},
      {"requests_per_s", f.requests_per_s},
      {"mean_ms", f.mean_ms},
      {"p50_ms", f.p50_ms},
      {"p90_ms", f.p90_ms},
      {"p99_ms", f.p99_ms},
      {"max_ms", f.max_ms},
      {"errors", nlohmann::ordered_json::object()}};
  for (const auto& [code, count] : result.errors) json["errors"][code] = count;
  return json.dump() + "\n";
}

}  // namespace attn
