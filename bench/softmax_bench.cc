// softmax-bench: whether the engine's hand-written softmax kernels still earn their keep against
// oneDNN's softmax_v2 primitive (which oneDNN compiles for every CPU tier itself). Both compute
// P = softmax(S) row by row over 128 rows of scores, as the engine's one-tile path does, on one
// thread, as a piece of work runs them:
//
//   [ATTN_MAX_CPU_ISA=avx2] build/softmax-bench [--benchmark_filter=REGEX] ...
//
//   softmax/onednn/<width>   softmax_v2 (softmax_accurate, forward inference), S to P
//   softmax/kernel/<width>   the CPU tier's OnlineSoftmaxKernels::whole_rows, S to P
//
// ATTN_MAX_CPU_ISA caps both to the same tier. (The online step over key tiles has no oneDNN
// counterpart: it keeps a running reference and rescales the accumulated output.)
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdio>
#include <random>
#include <vector>

#include "dnnl.hpp"
#include "src/engine/kernels/online_softmax.h"
#include "src/runtime/cpu_tier.h"

namespace {

using dnnl::memory;

constexpr int64_t kRows = 128;  // a piece's block of query rows

std::vector<float> RandomScores(int64_t count) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> scores(count);
  for (float& s : scores) s = normal(rng);
  return scores;
}

void SetCounters(benchmark::State& state, int64_t width) {
  // ns per score: the time of one softmax over the block / its rows x width scores.
  state.counters["ns/score"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kRows * width),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_OneDnnSoftmax(benchmark::State& state) {
  const int64_t width = state.range(0);
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc md({kRows, width}, memory::data_type::f32, memory::format_tag::ab);
  std::vector<float> scores = RandomScores(kRows * width), probs(kRows * width);
  memory src(md, engine, scores.data()), dst(md, engine, probs.data());
  const dnnl::softmax_v2_forward softmax(dnnl::softmax_v2_forward::primitive_desc(
      dnnl::softmax_v2_forward::desc(dnnl::prop_kind::forward_inference,
                                     dnnl::algorithm::softmax_accurate, md, md, 1),
      engine));
  for (auto _ : state) {
    softmax.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    stream.wait();
    benchmark::DoNotOptimize(probs.data());
  }
  SetCounters(state, width);
}

void BM_KernelSoftmax(benchmark::State& state) {
  const int64_t width = state.range(0);
  const attn::OnlineSoftmaxKernels kernels = attn::BestOnlineSoftmaxKernels();
  // The kernel overwrites its scores (with exp(s - max)); the next run's are then in [0, 1],
  // which takes the same time.
  std::vector<float> scores = RandomScores(kRows * width), probs(kRows * width);
  for (auto _ : state) {
    kernels.whole_rows(scores.data(), kRows, width, nullptr, probs.data(), width, nullptr);
    benchmark::DoNotOptimize(probs.data());
  }
  SetCounters(state, width);
}

}  // namespace

int main(int argc, char** argv) {
  const absl::StatusOr<attn::CpuTier> tier = attn::InitCpuTier();  // before any primitive
  if (!tier.ok()) {
    std::fprintf(stderr, "softmax-bench: %s\n", tier.status().ToString().c_str());
    return 2;
  }
  omp_set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("cpu_tier", attn::CpuTierName(*tier));
  benchmark::AddCustomContext("kernel", attn::BestOnlineSoftmaxKernels().name);
  for (int64_t width : {128, 512}) {
    benchmark::RegisterBenchmark("softmax/onednn", BM_OneDnnSoftmax)->Arg(width);
    benchmark::RegisterBenchmark("softmax/kernel", BM_KernelSoftmax)->Arg(width);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
