// Measures how request workers and OpenMP threads should share the machine's cores: for each
// fixed split (W workers x T threads each, W x T <= cores), the shared one (one worker per core,
// the cores divided between the requests computing at once), each shape, and a lone request as
// well as `concurrency` outstanding, submits a fixed number of attention requests through the
// Executor (the server's compute path, without gRPC) and prints throughput and mean latency.
// The server's executor defaults (docs/server.md) come from this table: `build/executor-split`.
#include <omp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "src/engine/attention_engine.h"
#include "src/runtime/executor.h"

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

// Runs `requests` calls with `concurrency` outstanding, each slot a client thread that submits
// its next call once the previous one is answered (as a gRPC client would); returns
// {requests/s, mean latency ms}.
std::pair<double, double> Measure(const attn::AttentionEngine& engine, const Shape& shape,
                                  const attn::Executor::Options& split, int requests,
                                  int concurrency) {
  attn::Executor executor(split);
  std::vector<Buffers> buffers;
  for (int i = 0; i < concurrency; ++i) buffers.emplace_back(shape.dims);
  std::atomic<int> next_request{0};
  std::atomic<int64_t> latency_sum_us{0};
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  std::vector<std::thread> clients;
  for (int slot = 0; slot < concurrency; ++slot) {
    clients.emplace_back([&, slot] {
      Buffers& b = buffers[slot];
      while (next_request++ < requests) {
        const auto submitted = Clock::now();
        std::promise<void> answered;
        executor.Submit([&] {
          attn::AttentionInputs in;
          in.dims = shape.dims;
          in.query = b.q.data();
          in.key = b.k.data();
          in.value = b.v.data();
          in.scale = 0.125f;
          attn::AttentionOutputs out;
          out.output = b.out.data();
          if (!engine.Run(in, out).ok()) std::abort();
          executor.FinishedComputing();  // as attnserve does before it answers
          answered.set_value();
        });
        answered.get_future().wait();
        latency_sum_us += std::chrono::duration_cast<std::chrono::microseconds>(
                              Clock::now() - submitted).count();
      }
    });
  }
  for (std::thread& client : clients) client.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return {requests / seconds, latency_sum_us / 1000.0 / requests};
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int cores = attn::Executor::Cores();
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const std::vector<Shape> shapes = {
      {"small (1,12,128,128,64)", {1, 12, 12, 128, 128, 64, 64}, 2000},
      {"large (4,16,1024,1024,64)", {4, 16, 16, 1024, 1024, 64, 64}, 12},
  };
  attn::AttentionEngine engine({.primitive_cache_capacity = 64});
  std::vector<attn::Executor::Options> splits;
  for (int workers = 1; workers <= cores; ++workers) {
    for (int threads = 1; workers * threads <= cores; ++threads) {
      splits.push_back({.workers = workers, .intra_op_threads = threads});
    }
  }
  splits.push_back({.workers = cores, .intra_op_threads = cores, .share_threads = true});
  std::printf("cores=%d (maps not returned, f32)\n", cores);
  std::printf("%-28s %-16s %11s %12s %12s\n", "shape", "split", "outstanding", "requests/s",
              "mean ms");
  for (const Shape& shape : shapes) {
    const int requests = absl::GetFlag(FLAGS_requests) > 0 ? absl::GetFlag(FLAGS_requests)
                                                           : shape.default_requests;
    Measure(engine, shape, splits.back(), std::min(requests, 4), concurrency);  // warm the cache
    for (const int outstanding : {1, concurrency}) {
      for (const attn::Executor::Options& split : splits) {
        const auto [rps, ms] = Measure(engine, shape, split, requests, outstanding);
        const std::string name =
            split.share_threads
                ? absl::StrCat(split.workers, " sharing ", split.intra_op_threads)
                : absl::StrCat(split.workers, " x ", split.intra_op_threads);
        std::printf("%-28s %-16s %11d %12.1f %12.2f\n", shape.name, name.c_str(), outstanding,
                    rps, ms);
      }
    }
  }
  return 0;
}
