// Prometheus metrics of the server (see metrics.h).
#include "server/metrics.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "src/runtime/memory_reuse.h"

namespace attn {
namespace {

void Header(std::string& out, const char* name, const char* type, const char* help) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

// 15 significant digits: exact for counts below 10^15, unlike StrCat's 6.
std::string Number(double value) { return absl::StrFormat("%.15g", value); }

void Sample(std::string& out, const std::string& name, const std::string& labels, double value) {
  absl::StrAppend(&out, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ",
                  Number(value), "\n");
}

// Resident bytes, CPU seconds (user + system) and open descriptors of this process.
struct ProcessStats {
  double resident_bytes = 0;
  double cpu_seconds = 0;
  double open_fds = 0;
};

ProcessStats ReadProcessStats() {
  ProcessStats stats;
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream statm("/proc/self/statm");
  double size_pages = 0, resident_pages = 0;
  if (statm >> size_pages >> resident_pages) stats.resident_bytes = resident_pages * page;
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
  const size_t close = stat.rfind(')');
  if (close != std::string::npos) {
    std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
    if (fields.size() > 12) {
      stats.cpu_seconds = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
    }
  }
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++stats.open_fds;
  }
  return stats;
}

}  // namespace

Metrics& Metrics::Global() {
  static Metrics* metrics = new Metrics();
  return *metrics;
}

void Metrics::Histogram::Observe(double seconds) {
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      ++counts[i];
      break;
    }
  }
  ++count;
  sum += seconds;
}

void Metrics::Record(const CallRecord& call) {
  std::lock_guard lock(mu_);
  ++requests_[{call.method, call.code}];
  PerMethod& m = per_method_[call.method];
  m.request.Observe(call.request_s);
  m.queue.Observe(call.queue_s);
  m.compute.Observe(call.compute_s);
  m.flops += call.flops;
  m.bytes_received += call.bytes_received;
  m.bytes_sent += call.bytes_sent;
}

std::string Metrics::Render(const ScrapeGauges& gauges) const {
  std::string out;
  {
    std::lock_guard lock(mu_);
    Header(out, "attnserve_requests_total", "counter", "Requests finished, by method and code.");
    for (const auto& [key, count] : requests_) {
      Sample(out, "attnserve_requests_total",
             absl::StrCat("method=\"", key.first, "\",code=\"", key.second, "\""), count);
    }
    const std::pair<const char*, Histogram PerMethod::*> histograms[] = {
        {"attnserve_request_seconds", &PerMethod::request},
        {"attnserve_queue_seconds", &PerMethod::queue},
        {"attnserve_compute_seconds", &PerMethod::compute}};
    for (const auto& [name, member] : histograms) {
      Header(out, name, "histogram",
             "Seconds per request: whole call, waiting for a worker, or computing.");
      for (const auto& [method, m] : per_method_) {
        const Histogram& h = m.*member;
        int64_t cumulative = 0;
        for (size_t i = 0; i < kBuckets.size(); ++i) {
          cumulative += h.counts[i];
          Sample(out, absl::StrCat(name, "_bucket"),
                 absl::StrCat("method=\"", method, "\",le=\"", Number(kBuckets[i]), "\""), cumulative);
        }
        Sample(out, absl::StrCat(name, "_bucket"), absl::StrCat("method=\"", method, "\",le=\"+Inf\""),
               h.count);
        Sample(out, absl::StrCat(name, "_sum"), absl::StrCat("method=\"", method, "\""), h.sum);
        Sample(out, absl::StrCat(name, "_count"), absl::StrCat("method=\"", method, "\""), h.count);
      }
    }
    Header(out, "attnserve_attention_flops_total", "counter",
           "Floating-point operations of the attention computed.");
    for (const auto& [method, m] : per_method_) {
      Sample(out, "attnserve_attention_flops_total", absl::StrCat("method=\"", method, "\""),
             m.flops);
    }
    Header(out, "attnserve_received_bytes_total", "counter", "Request message bytes received.");
    for (const auto& [method, m] : per_method_) {
      Sample(out, "attnserve_received_bytes_total", absl::StrCat("method=\"", method, "\""),
             m.bytes_received);
    }
    Header(out, "attnserve_sent_bytes_total", "counter", "Response message bytes sent.");
    for (const auto& [method, m] : per_method_) {
      Sample(out, "attnserve_sent_bytes_total", absl::StrCat("method=\"", method, "\""),
             m.bytes_sent);
    }
  }
  Header(out, "attnserve_in_flight_requests", "gauge", "Requests admitted and not finished.");
  Sample(out, "attnserve_in_flight_requests", "", gauges.in_flight);
  Header(out, "attnserve_queue_depth", "gauge", "Tasks waiting for a worker.");
  Sample(out, "attnserve_queue_depth", "", gauges.queue_depth);
  Header(out, "attnserve_primitive_cache_hits_total", "counter", "oneDNN primitive cache hits.");
  Sample(out, "attnserve_primitive_cache_hits_total", "", gauges.primitive_cache_hits);
  Header(out, "attnserve_primitive_cache_misses_total", "counter",
         "oneDNN primitive cache misses (primitives created).");
  Sample(out, "attnserve_primitive_cache_misses_total", "", gauges.primitive_cache_misses);
  Header(out, "attnserve_weights", "gauge", "Named weight sets held.");
  Sample(out, "attnserve_weights", "", gauges.weights_count);
  Header(out, "attnserve_weights_bytes", "gauge", "Bytes of named weights held.");
  Sample(out, "attnserve_weights_bytes", "", gauges.weights_bytes);
  Header(out, "attnserve_kv_sessions", "gauge", "KV-cache sessions open.");
  Sample(out, "attnserve_kv_sessions", "", gauges.kv_sessions);
  Header(out, "attnserve_kv_pool_capacity_bytes", "gauge", "KV-cache pool size (--kv_cache_bytes).");
  Sample(out, "attnserve_kv_pool_capacity_bytes", "", gauges.kv_pool_capacity_bytes);
  Header(out, "attnserve_kv_pool_used_bytes", "gauge",
         "KV-cache pool bytes held by pages (a page shared by forks counted once).");
  Sample(out, "attnserve_kv_pool_used_bytes", "", gauges.kv_pool_used_bytes);
  Header(out, "attnserve_kv_pool_pages", "gauge", "KV-cache pages alive.");
  Sample(out, "attnserve_kv_pool_pages", "", gauges.kv_pool_pages);
  Header(out, "attnserve_kv_pool_shared_pages", "gauge",
         "KV-cache pages held by more than one session (forks share them).");
  Sample(out, "attnserve_kv_pool_shared_pages", "", gauges.kv_pool_shared_pages);
  Header(out, "attnserve_kv_pool_shared_bytes", "gauge",
         "Bytes of the KV-cache pages held by more than one session.");
  Sample(out, "attnserve_kv_pool_shared_bytes", "", gauges.kv_pool_shared_bytes);
  Header(out, "attnserve_kv_sessions_dropped_total", "counter",
         "KV-cache sessions dropped by the server, by reason.");
  Sample(out, "attnserve_kv_sessions_dropped_total", "reason=\"evicted\"", gauges.kv_evicted);
  Sample(out, "attnserve_kv_sessions_dropped_total", "reason=\"expired\"", gauges.kv_expired);
  Header(out, "attnserve_heap_in_use_bytes", "gauge",
         "Heap bytes allocated and not freed (malloc's freed memory kept for reuse not counted).");
  Sample(out, "attnserve_heap_in_use_bytes", "", HeapBytesInUse());
  const ProcessStats process = ReadProcessStats();
  Header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  Sample(out, "process_resident_memory_bytes", "", process.resident_bytes);
  Header(out, "process_cpu_seconds_total", "counter", "User and system CPU time in seconds.");
  Sample(out, "process_cpu_seconds_total", "", process.cpu_seconds);
  Header(out, "process_open_fds", "gauge", "Open file descriptors.");
  Sample(out, "process_open_fds", "", process.open_fds);
  return out;
}

}  // namespace attn
