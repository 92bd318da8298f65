// The server's Prometheus metrics (text exposition format 0.0.4): requests by method and status
// code, request/queue/compute latency histograms in seconds, attention FLOPs, bytes received and
// sent, plus gauges read at scrape time (in-flight requests, queue depth, primitive cache
// hits/misses, weights held, KV-cache sessions and pool, process RSS, CPU seconds and open file
// descriptors). One
// process-wide instance (the only global mutable state besides the logger). Thread-safe.
#ifndef ATTNSERVE_SERVER_METRICS_H_
#define ATTNSERVE_SERVER_METRICS_H_

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"

namespace attn {

// What one finished call contributes.
struct CallRecord {
  std::string method;
  std::string code;  // "OK", "INVALID_ARGUMENT", ...
  double request_s = 0;
  double queue_s = 0;
  double compute_s = 0;
  double flops = 0;
  int64_t bytes_received = 0;
  int64_t bytes_sent = 0;
};

// Values sampled when /metrics is scraped.
struct ScrapeGauges {
  int64_t in_flight = 0;
  int64_t queue_depth = 0;
  int64_t primitive_cache_hits = 0;
  int64_t primitive_cache_misses = 0;
  int64_t weights_count = 0;
  int64_t weights_bytes = 0;
  int64_t kv_sessions = 0;
  int64_t kv_pool_capacity_bytes = 0;
  int64_t kv_pool_used_bytes = 0;
  int64_t kv_pool_pages = 0;
  int64_t kv_pool_shared_pages = 0;
  int64_t kv_pool_shared_bytes = 0;
  int64_t kv_evicted = 0;  // sessions evicted under memory pressure, ever
  int64_t kv_expired = 0;  // sessions dropped idle, ever
};

class Metrics {
 public:
  static Metrics& Global();

  void Record(const CallRecord& call);
  // The whole exposition, including process metrics from /proc/self.
  std::string Render(const ScrapeGauges& gauges) const;

  static constexpr std::array<double, 15> kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

 private:
  struct Histogram {
    std::array<int64_t, kBuckets.size()> counts{};  // per bucket (not cumulative)
    int64_t count = 0;
    double sum = 0;
    void Observe(double seconds);
  };
  struct PerMethod {
    Histogram request, queue, compute;
    double flops = 0;
    int64_t bytes_received = 0;
    int64_t bytes_sent = 0;
  };

  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, int64_t> requests_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, PerMethod> per_method_ ABSL_GUARDED_BY(mu_);
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_METRICS_H_
