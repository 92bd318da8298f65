// attn-bench: Google Benchmark of the attention engine, f32 and bf16 compute, against this
// machine's own ceilings measured in the same run: oneDNN's f32 and bf16 GEMM peaks and memory
// bandwidth. Each attention benchmark reports GFLOP/s and peak% (of the best of 6 2048^3 matmuls
// of its compute type, timed at start-up); decode shapes (Sq = 1) also report the K+V bytes read
// per second and bw% (of the best of 4 read passes at start-up). Every attention benchmark also
// reports peak_rss_MiB, the process's peak resident memory while it ran (its tensors, maps and
// the engine's scratch); the long-sequence benchmarks (no maps, f32) show it stays O(S).
//
//   [ATTN_MAX_CPU_ISA=avx2] build/attn-bench [--threads=N] [--key_tile=K] [--cpu_tier]
//       [--benchmark_filter=REGEX] ...
//
// --threads (default 2) is the OpenMP thread count of the engine and of the reference GEMM;
// --key_tile the engine's online-softmax key tile (default: the engine's); --cpu_tier prints
// the CPU tier it would run at and exits; every other flag is Google Benchmark's. The tier
// (ATTN_MAX_CPU_ISA caps it, and oneDNN with it) and the bf16 matmuls (native or emulated:
// src/engine/bf16_matmuls.h; ATTN_BF16_MATMUL forces one) are in the report's context; at tiers
// without bf16 matmuls there is no gemm/bf16, and bf16 compute emulated in f32 counts against
// the f32 peak. attn-bench keeps freed memory for reuse, as attnserve does. Benchmark names (bench/compare_torch.py parses them):
//   attn/<B>x<H>x<Sq>x<Sk>x<D>/kv<Hkv>/causal=<none|upper_left|lower_right>/maps=<0|1>/<f32|bf16>
//   long/<B>x<H>x<Sq>x<Sk>x<D>/kv<Hkv>/causal=<...>/maps=0/f32   (S = 16384 and 65536)
//   packed/<B>x<H>x<Sq>x<Sk>x<D>/kv<Hkv>/causal=none/maps=<0|1>/<f32|bf16>   (Q, K and V in a
//     fused projection's [B,S,(H+2*Hkv)*D] output and O written as [B,Sq,H*D], as
//     MultiHeadAttend passes them)
//   bf16in/<B>x<H>x<Sq>x<Sk>x<D>/kv<Hkv>/causal=none/maps=<0|1>/bf16   (bf16 compute of bf16
//     inputs, as the server passes a BFLOAT16 request; attn/.../bf16 converts f32 inputs)
//   gemm/<f32|bf16>/2048, memory/read, memory/triad
// bench/check_kernels.py runs attn-bench under ONEDNN_VERBOSE=1 (at a --tier) and fails on
// `ref:` kernels.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/memory_streams.h"
#include "dnnl.hpp"
#include "src/engine/attention_engine.h"
#include "src/engine/attention_types.h"
#include "src/engine/bf16_matmuls.h"
#include "src/runtime/cpu_tier.h"
#include "src/runtime/dtype.h"
#include "src/runtime/memory_reuse.h"

namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

int g_threads = 2;
int64_t g_key_tile = 0;  // 0 = the engine's default
double g_f32_peak_gflops = 0;   // best of 6 gemm/f32/2048 runs at start-up
double g_bf16_peak_gflops = 0;  // best of 6 gemm/bf16/2048 runs at start-up
double g_read_gbs = 0;         // best of 4 memory/read runs at start-up
// Bytes of each memory/* array.
constexpr int64_t kStreamBytes = int64_t{256} << 20;

const dnnl::engine& CpuEngine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// A square n x n x n oneDNN matmul with row-major operands (as the engine passes them), created
// with the calling thread's OpenMP thread count. `in` is f32 or bf16; the result is f32.
class Gemm {
 public:
  Gemm(int64_t n, dt in) : n_(n), stream_(CpuEngine()) {
    const memory::desc a_md({n, n}, in, tag::ab), c_md({n, n}, dt::f32, tag::ab);
    a_ = memory(a_md, CpuEngine());
    b_ = memory(a_md, CpuEngine());
    c_ = memory(c_md, CpuEngine());
    Fill(a_, in);
    Fill(b_, in);
    matmul_ = dnnl::matmul(
        dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, a_md, c_md), CpuEngine()));
  }

  void Run() {
    matmul_.execute(stream_, {{DNNL_ARG_SRC, a_}, {DNNL_ARG_WEIGHTS, b_}, {DNNL_ARG_DST, c_}});
    stream_.wait();
  }

  // C[i,j] = sum_k A[i,k] B[k,j]: 2 * n^3 flops.
  double flops() const { return 2.0 * n_ * n_ * n_; }

 private:
  // Every element 0.5 (bf16 0x3F00).
  void Fill(memory& m, dt in) {
    const int64_t count = n_ * n_;
    if (in == dt::f32) {
      std::fill_n(static_cast<float*>(m.get_data_handle()), count, 0.5f);
    } else {
      std::fill_n(static_cast<uint16_t*>(m.get_data_handle()), count, uint16_t{0x3F00});
    }
  }

  int64_t n_;
  dnnl::stream stream_;
  memory a_, b_, c_;
  dnnl::matmul matmul_;
};

// Runs the benchmark loop and returns its wall seconds (the real time Google Benchmark reports).
// Counters are set from it as plain numbers: rate counters would print percentages as "%/s".
template <typename F>
double TimedLoop(benchmark::State& state, F&& body) {
  const double t0 = omp_get_wtime();
  for (auto _ : state) body();
  return omp_get_wtime() - t0;
}

// Best of `runs` timings of `f`, in seconds.
template <typename F>
double BestSeconds(int runs, F&& f) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    const double t0 = omp_get_wtime();
    f();
    best = std::min(best, omp_get_wtime() - t0);
  }
  return best;
}

void BM_Gemm(benchmark::State& state, dt in) {
  Gemm gemm(2048, in);
  gemm.Run();  // first touch, kernel generation
  const double seconds = TimedLoop(state, [&] { gemm.Run(); });
  // GFLOP/s = 2 * n^3 * iterations / seconds
  state.counters["GFLOP/s"] = gemm.flops() * 1e-9 * state.iterations() / seconds;
}

void BM_MemoryRead(benchmark::State& state) {
  attn::bench::MemoryStreams s(kStreamBytes, g_threads);
  const double seconds = TimedLoop(state, [&] { benchmark::DoNotOptimize(s.Read()); });
  // GB/s = kBytesPerArray * iterations / seconds
  state.counters["GB/s"] = kStreamBytes * 1e-9 * state.iterations() / seconds;
}

void BM_MemoryTriad(benchmark::State& state) {
  attn::bench::MemoryStreams s(kStreamBytes, g_threads);
  const double seconds = TimedLoop(state, [&] {
    s.Triad(3.0f);
    benchmark::DoNotOptimize(s.first());
  });
  // GB/s = 3 * kBytesPerArray * iterations / seconds
  state.counters["GB/s"] = 3 * kStreamBytes * 1e-9 * state.iterations() / seconds;
}

struct AttnCase {
  attn::AttentionDims dims;
  attn::CausalKind causal;
  bool maps;  // probabilities returned
  bool bf16;  // bf16 compute (f32 in and out)
  bool packed = false;  // Q, K, V and O token-major (see the file comment)
  bool bf16_inputs = false;  // Q, K and V given as bfloat16 (bf16 compute)
};

const char* CausalName(attn::CausalKind c) {
  switch (c) {
    case attn::CausalKind::kNone:
      return "none";
    case attn::CausalKind::kUpperLeft:
      return "upper_left";
    case attn::CausalKind::kLowerRight:
      return "lower_right";
  }
  return "?";
}

// Query/key pairs the mask leaves visible: row i sees keys j <= i + offset (offset 0 for
// upper_left, Sk - Sq for lower_right), all Sk keys without a causal mask.
double VisiblePairs(const attn::AttentionDims& d, attn::CausalKind causal) {
  if (causal == attn::CausalKind::kNone) return static_cast<double>(d.q_len) * d.kv_len;
  const int64_t offset = causal == attn::CausalKind::kLowerRight ? d.kv_len - d.q_len : 0;
  double pairs = 0;
  for (int64_t i = 0; i < d.q_len; ++i) {
    pairs += static_cast<double>(std::clamp<int64_t>(i + 1 + offset, 0, d.kv_len));
  }
  return pairs;
}

// Starts a new peak: the process's peak resident set (VmHWM) is reset to its current size.
void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// VmHWM of /proc/self/status in MiB (0 if unreadable).
double PeakRssMiB() {
  std::ifstream status("/proc/self/status");
  std::string key;
  double kib = 0;
  while (status >> key) {
    if (key == "VmHWM:") {
      status >> kib;
      break;
    }
  }
  return kib / 1024;
}

// Buffers of the shape being measured, kept across the calls Google Benchmark makes for one
// benchmark and its neighbours of the same shape (filling the large shapes takes a while).
struct Tensors {
  attn::AttentionDims dims;
  std::vector<float> q, k, v, out, probs;
  std::vector<float> qkv;  // packed cases: [B,S,(H+2*Hkv)*D] (Sq = Sk, D = Dv)
  std::vector<uint16_t> q16, k16, v16;  // bf16 input cases: q, k and v rounded to bf16
};

bool SameDims(const attn::AttentionDims& a, const attn::AttentionDims& b) {
  return a.batch == b.batch && a.heads == b.heads && a.kv_heads == b.kv_heads &&
         a.q_len == b.q_len && a.kv_len == b.kv_len && a.head_dim == b.head_dim &&
         a.value_dim == b.value_dim;
}

// Columns of a packed case's fused projection output: Q's H heads, then K's and V's Hkv.
int64_t PackedWidth(const attn::AttentionDims& d) {
  return (d.heads + 2 * d.kv_heads) * d.head_dim;
}

Tensors& TensorsFor(const attn::AttentionDims& d, bool maps, bool packed, bool bf16_inputs) {
  static std::unique_ptr<Tensors> current;
  if (current == nullptr || !SameDims(current->dims, d)) {
    current.reset();  // free the previous shape first
    current = std::make_unique<Tensors>();
    current->dims = d;
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    auto random = [&](int64_t n) {
      std::vector<float> x(n);
      for (float& f : x) f = normal(rng);
      return x;
    };
    current->q = random(d.batch * d.heads * d.q_len * d.head_dim);
    current->k = random(d.batch * d.kv_heads * d.kv_len * d.head_dim);
    current->v = random(d.batch * d.kv_heads * d.kv_len * d.value_dim);
    current->out.assign(d.batch * d.heads * d.q_len * d.value_dim, 0.0f);
  }
  if (packed && current->qkv.empty()) {
    // Random values of its own: the engine's speed does not depend on them.
    std::mt19937 rng(2);
    std::normal_distribution<float> normal;
    current->qkv.resize(d.batch * d.q_len * PackedWidth(d));
    for (float& f : current->qkv) f = normal(rng);
  }
  if (bf16_inputs && current->q16.empty()) {
    for (auto [from, to] : {std::pair{&current->q, &current->q16}, {&current->k, &current->k16},
                            {&current->v, &current->v16}}) {
      to->resize(from->size());
      for (size_t i = 0; i < from->size(); ++i) (*to)[i] = attn::FloatToBFloat16((*from)[i]);
    }
  }
  if (maps && current->probs.empty()) {
    current->probs.assign(d.batch * d.heads * d.q_len * d.kv_len, 0.0f);
  }
  return *current;
}

const attn::AttentionEngine& Engine() {
  static const attn::AttentionEngine engine(
      {.primitive_cache_capacity = 256, .key_tile = g_key_tile});
  return engine;
}

void BM_Attention(benchmark::State& state, const AttnCase& c) {
  const attn::AttentionDims& d = c.dims;
  Tensors& t = TensorsFor(d, c.maps, c.packed, c.bf16_inputs);
  attn::AttentionInputs in;
  in.dims = d;
  in.query = t.q.data();
  in.key = t.k.data();
  in.value = t.v.data();
  attn::AttentionOutputs out;
  if (c.packed) {
    const int64_t width = PackedWidth(d);
    const attn::OperandStrides token_major = {
        .batch = d.q_len * width, .head = d.head_dim, .row = width};
    in.query = t.qkv.data();
    in.key = in.query + d.heads * d.head_dim;
    in.value = in.key + d.kv_heads * d.head_dim;
    in.query_strides = in.key_strides = in.value_strides = token_major;
    out.output_strides = {.batch = d.q_len * d.heads * d.value_dim, .head = d.value_dim,
                          .row = d.heads * d.value_dim};
  }
  if (c.bf16_inputs) {
    in.query = in.key = in.value = nullptr;
    in.query_bf16 = t.q16.data();
    in.key_bf16 = t.k16.data();
    in.value_bf16 = t.v16.data();
  }
  in.scale = 1.0f / std::sqrt(static_cast<float>(d.head_dim));
  in.mask.causal = c.causal;
  in.bf16_compute = c.bf16;
  out.output = t.out.data();
  out.probabilities = c.maps ? t.probs.data() : nullptr;
  ResetPeakRss();
  if (!Engine().Run(in, out).ok()) {  // also creates and caches the primitives
    state.SkipWithError("engine failed");
    return;
  }
  bool ok = true;
  const double seconds = TimedLoop(state, [&] { ok = ok && Engine().Run(in, out).ok(); });
  if (!ok) {
    state.SkipWithError("engine failed");
    return;
  }
  // GFLOP/s = B * H * visible pairs * (2 * D for Q K^T + 2 * Dv for P V) * iterations / seconds
  const double calls_per_second = state.iterations() / seconds;
  const double gflops = d.batch * d.heads * VisiblePairs(d, c.causal) * 2.0 *
                        (d.head_dim + d.value_dim) * 1e-9 * calls_per_second;
  state.counters["GFLOP/s"] = gflops;
  // bf16 compute runs on bf16 matmuls where they are chosen, else on f32 ones.
  const bool bf16_matmuls = c.bf16 && attn::ActiveBf16Matmuls() == attn::Bf16Matmuls::kNative;
  state.counters["peak%"] =
      100 * gflops / (bf16_matmuls ? g_bf16_peak_gflops : g_f32_peak_gflops);
  if (d.q_len == 1) {
    // KV_GB/s = B * Hkv * Sk * (D + Dv) * 4 bytes (2 for bf16 inputs; K and V, each read once
    // per call) * calls/s
    const double bytes = c.bf16_inputs ? 2e-9 : 4e-9;
    const double kv_gbs =
        d.batch * d.kv_heads * d.kv_len * (d.head_dim + d.value_dim) * bytes * calls_per_second;
    state.counters["KV_GB/s"] = kv_gbs;
    state.counters["bw%"] = 100 * kv_gbs / g_read_gbs;
  }
  // Peak resident memory while this case ran: its tensors, maps and the engine's scratch.
  state.counters["peak_rss_MiB"] = PeakRssMiB();
}

std::string CaseName(const char* prefix, const AttnCase& c) {
  const attn::AttentionDims& d = c.dims;
  char name[160];
  std::snprintf(name, sizeof(name), "%s/%ldx%ldx%ldx%ldx%ld/kv%ld/causal=%s/maps=%d/%s", prefix,
                static_cast<long>(d.batch), static_cast<long>(d.heads),
                static_cast<long>(d.q_len), static_cast<long>(d.kv_len),
                static_cast<long>(d.head_dim), static_cast<long>(d.kv_heads),
                CausalName(c.causal), c.maps ? 1 : 0, c.bf16 ? "bf16" : "f32");
  return name;
}

void RegisterAll() {
  benchmark::RegisterBenchmark("gemm/f32/2048", BM_Gemm, dt::f32)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  if (attn::HasNativeBf16(attn::ActiveCpuTier())) {  // else oneDNN emulates it, or has none
    benchmark::RegisterBenchmark("gemm/bf16/2048", BM_Gemm, dt::bf16)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::RegisterBenchmark("memory/read", BM_MemoryRead)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("memory/triad", BM_MemoryTriad)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);

  struct Shape {
    int64_t b, h, hkv, sq, sk, d;
    attn::CausalKind causal;  // the causal variant of this shape
  };
  using attn::CausalKind;
  const Shape shapes[] = {
      {1, 12, 12, 128, 128, 64, CausalKind::kUpperLeft},
      {8, 12, 12, 128, 128, 64, CausalKind::kUpperLeft},
      {32, 8, 8, 64, 64, 64, CausalKind::kUpperLeft},
      {4, 16, 16, 1024, 1024, 64, CausalKind::kUpperLeft},
      {1, 32, 32, 2048, 2048, 128, CausalKind::kUpperLeft},
      {1, 8, 8, 4096, 4096, 64, CausalKind::kUpperLeft},
      {16, 32, 8, 1, 4096, 128, CausalKind::kLowerRight},  // decode, GQA 32/8
  };
  auto dims = [](const Shape& s) {
    return attn::AttentionDims{.batch = s.b, .heads = s.h, .kv_heads = s.hkv, .q_len = s.sq,
                               .kv_len = s.sk, .head_dim = s.d, .value_dim = s.d};
  };
  for (const Shape& s : shapes) {
    for (const CausalKind causal : {CausalKind::kNone, s.causal}) {
      for (const bool maps : {false, true}) {
        for (const bool bf16 : {false, true}) {
          const AttnCase c{dims(s), causal, maps, bf16};
          benchmark::RegisterBenchmark(CaseName("attn", c).c_str(), BM_Attention, c)
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
      }
    }
  }
  // The layout MultiHeadAttend passes.
  for (const Shape& s : {shapes[0], shapes[3]}) {
    for (const bool maps : {false, true}) {
      for (const bool bf16 : {false, true}) {
        AttnCase c{dims(s), CausalKind::kNone, maps, bf16};
        c.packed = true;
        benchmark::RegisterBenchmark(CaseName("packed", c).c_str(), BM_Attention, c)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  // bf16 compute of bf16 inputs (no f32 copies to convert; decode reads them in place).
  for (const Shape& s : {shapes[0], shapes[1], shapes[2], shapes[3], shapes[6]}) {
    for (const bool maps : {false, true}) {
      AttnCase c{dims(s), CausalKind::kNone, maps, /*bf16=*/true};
      c.bf16_inputs = true;
      benchmark::RegisterBenchmark(CaseName("bf16in", c).c_str(), BM_Attention, c)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  // Long sequences: no maps (a 65536^2 map alone would be 16 GiB per head), causal, f32.
  for (const int64_t s : {16384, 65536}) {
    const AttnCase c{dims({1, 8, 8, s, s, 64, CausalKind::kUpperLeft}), CausalKind::kUpperLeft,
                     false, false};
    benchmark::RegisterBenchmark(CaseName("long", c).c_str(), BM_Attention, c)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The CPU tier (ATTN_MAX_CPU_ISA caps it, and oneDNN with it) before any primitive.
  const absl::StatusOr<attn::CpuTier> tier = attn::InitCpuTier();
  if (!tier.ok()) {
    std::fprintf(stderr, "attn-bench: %s\n", tier.status().ToString().c_str());
    return 2;
  }
  // --threads=N, --key_tile=K and --cpu_tier (print the tier, run nothing) are ours; every
  // other argument is left to Google Benchmark.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--cpu_tier") == 0) {
      std::printf("cpu_tier: %s\n", attn::CpuTierName(*tier));
      return 0;
    }
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      g_threads = std::max(1, std::atoi(argv[i] + 10));
    } else if (std::strncmp(argv[i], "--key_tile=", 11) == 0) {
      g_key_tile = std::max<int64_t>(0, std::atoll(argv[i] + 11));
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  const absl::StatusOr<attn::Bf16Matmuls> bf16 = attn::InitBf16Matmuls();
  if (!bf16.ok()) {
    std::fprintf(stderr, "attn-bench: %s\n", bf16.status().ToString().c_str());
    return 2;
  }
  attn::KeepFreedMemoryForReuse();  // as attnserve does: per-call copies are not faulted in
  omp_set_num_threads(g_threads);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  // The ceilings the attention counters are measured against: best of several runs (their
  // buffers freed before the benchmarks run).
  {
    Gemm gemm(2048, dt::f32);
    g_f32_peak_gflops = gemm.flops() * 1e-9 / BestSeconds(6, [&] { gemm.Run(); });
    if (attn::HasNativeBf16(*tier)) {
      Gemm gemm_bf16(2048, dt::bf16);
      g_bf16_peak_gflops = gemm_bf16.flops() * 1e-9 / BestSeconds(6, [&] { gemm_bf16.Run(); });
    }
    attn::bench::MemoryStreams streams(kStreamBytes, g_threads);
    g_read_gbs = kStreamBytes * 1e-9 /
                 BestSeconds(4, [&] { benchmark::DoNotOptimize(streams.Read()); });
  }
  benchmark::AddCustomContext("threads", std::to_string(g_threads));
  benchmark::AddCustomContext("cpu_tier", attn::CpuTierName(*tier));
  benchmark::AddCustomContext("bf16_matmuls", attn::Bf16MatmulsName(*bf16));
  benchmark::AddCustomContext("onednn", attn::AttentionEngine::OneDnnVersion() + " " +
                                            attn::AttentionEngine::OneDnnIsa());
  benchmark::AddCustomContext("f32_gemm_peak_gflops", std::to_string(g_f32_peak_gflops));
  benchmark::AddCustomContext("bf16_gemm_peak_gflops", std::to_string(g_bf16_peak_gflops));
  benchmark::AddCustomContext("read_bandwidth_gbs", std::to_string(g_read_gbs));

  RegisterAll();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
