// Measures how W request workers x T OpenMP threads per worker should share the machine's cores:
// for each split (with W x T <= cores) and each shape, submits a fixed number of attention
// requests through the Executor (the server's compute path, without gRPC) keeping `concurrency`
// of them outstanding, and prints throughput and mean latency. The README's executor defaults
// come from this table: `build/executor-split`.
#include <omp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "src/attention_engine.h"
#include "src/executor.h"

ABSL_FLAG(int, requests, 0, "requests per (shape, split); 0 = enough for ~2 s per shape");
ABSL_FLAG(int, concurrency, 4, "requests kept outstanding (clients waiting)");

namespace {

struct Shape {
  const char* name;
  attn::AttentionDims dims;
  int default_requests;
};

struct Buffers {
  std::vector<float> q, k, v, out;
  explicit Buffers(const attn::AttentionDims& d)
      : q(d.batch * d.heads * d.q_len * d.head_dim),
        k(d.batch * d.kv_heads * d.kv_len * d.head_dim),
        v(d.batch * d.kv_heads * d.kv_len * d.value_dim),
        out(d.batch * d.heads * d.q_len * d.value_dim) {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (auto* x : {&q, &k, &v}) {
      for (float& f : *x) f = normal(rng);
    }
  }
};

// Runs `requests` calls with `concurrency` outstanding; returns {requests/s, mean latency ms}.
std::pair<double, double> Measure(const attn::AttentionEngine& engine, const Shape& shape,
                                  int workers, int threads, int requests, int concurrency) {
  attn::Executor executor({.workers = workers, .intra_op_threads = threads});
  std::vector<Buffers> buffers;
  for (int i = 0; i < concurrency; ++i) buffers.emplace_back(shape.dims);
  std::mutex mu;
  std::condition_variable finished_one;
  int started = 0, finished = 0;
  double latency_sum_ms = 0;
  using Clock = std::chrono::steady_clock;
  std::function<void(int)> submit = [&](int slot) {
    const auto submitted = Clock::now();
    executor.Submit([&, slot, submitted] {
      Buffers& b = buffers[slot];
      attn::AttentionInputs in;
      in.dims = shape.dims;
      in.query = b.q.data();
      in.key = b.k.data();
      in.value = b.v.data();
      in.scale = 0.125f;
      attn::AttentionOutputs out;
      out.output = b.out.data();
      if (!engine.Run(in, out).ok()) std::abort();
      const double ms =
          std::chrono::duration<double, std::milli>(Clock::now() - submitted).count();
      bool again = false;
      {
        std::lock_guard lock(mu);
        latency_sum_ms += ms;
        ++finished;
        if (started < requests) {
          ++started;
          again = true;
        }
        finished_one.notify_all();  // under the lock: Measure may return as soon as it is free
      }
      if (again) submit(slot);
    });
  };
  const auto t0 = Clock::now();
  {
    std::lock_guard lock(mu);
    started = std::min(concurrency, requests);
  }
  for (int slot = 0; slot < std::min(concurrency, requests); ++slot) submit(slot);
  {
    std::unique_lock lock(mu);
    finished_one.wait(lock, [&] { return finished == requests; });
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return {requests / seconds, latency_sum_ms / requests};
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const std::vector<Shape> shapes = {
      {"small (1,12,128,128,64)", {1, 12, 12, 128, 128, 64, 64}, 2000},
      {"large (4,16,1024,1024,64)", {4, 16, 16, 1024, 1024, 64, 64}, 12},
  };
  attn::AttentionEngine engine({.primitive_cache_capacity = 64});
  std::printf("cores=%d concurrency=%d (maps not returned, f32)\n", cores, concurrency);
  std::printf("%-28s %8s %8s %12s %12s\n", "shape", "workers", "threads", "requests/s",
              "mean ms");
  for (const Shape& shape : shapes) {
    const int requests = absl::GetFlag(FLAGS_requests) > 0 ? absl::GetFlag(FLAGS_requests)
                                                           : shape.default_requests;
    Measure(engine, shape, 1, cores, std::min(requests, 4), concurrency);  // warm the cache
    for (int workers = 1; workers <= cores; ++workers) {
      for (int threads = 1; workers * threads <= cores; ++threads) {
        const auto [rps, ms] = Measure(engine, shape, workers, threads, requests, concurrency);
        std::printf("%-28s %8d %8d %12.1f %12.2f\n", shape.name, workers, threads, rps, ms);
      }
    }
  }
  return 0;
}
