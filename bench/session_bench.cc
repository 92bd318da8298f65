// session-bench: decode steps of KV-cache sessions -- one layer, B sessions at context S --
// measured in process or through a server, beside the machine's read bandwidth measured in the
// same run (a 1 GiB array, beyond the caches; best of 4).
//
// --mode=engine: a SessionStore filled directly (K and V appended, no prefill computed), then
// batches of B decode steps, each batch one ApplySteps -- one engine pass, as SessionAttendBatch
// runs them -- on --threads OpenMP threads (each batch's new position taken back, untimed).
// --mode=server --address=HOST:PORT: one session per S prefilled through SessionAttend (in chunks
// of --prefill_chunk tokens), used alone for B = 1 and forked B - 1 times beside itself for
// B > 1 (the forks share its pages, as sessions sharing a prompt do); B client threads, each
// stepping its own session on its own channel, S/16 steps each (16 to 200: each step adds a
// position). With --stateless, B = 1 also runs stateless Attend resending the layer's K and V
// each step, where that fits --max_message_bytes.
// Prints one JSON line per case: steps/s, median step ms, bytes on the wire per step (request +
// response), the K+V bytes read per second and their % of the read bandwidth.
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "attention/v1/attention.grpc.pb.h"
#include "bench/memory_streams.h"
#include "proto/tensor_codec.h"
#include "src/engine/attention_engine.h"
#include "src/engine/bf16_matmuls.h"
#include "src/kv/session_step.h"
#include "src/kv/session_store.h"
#include "src/runtime/cpu_tier.h"
#include "src/runtime/memory_reuse.h"

ABSL_FLAG(std::string, mode, "engine", "engine (in process) or server");
ABSL_FLAG(std::string, address, "127.0.0.1:50051", "the server, for --mode=server");
ABSL_FLAG(std::string, sessions, "1,8,64", "concurrent sessions B, comma-separated");
ABSL_FLAG(std::string, contexts, "1024,4096,16384,32768", "context lengths S, comma-separated");
ABSL_FLAG(std::string, kv_dtypes, "float32,bfloat16", "page dtypes, comma-separated");
ABSL_FLAG(int, heads, 32, "query heads H");
ABSL_FLAG(int, kv_heads, 8, "KV heads Hkv");
ABSL_FLAG(int, head_dim, 128, "D = Dv");
ABSL_FLAG(int, page_tokens, 128, "positions per page (--mode=engine; a server has its own)");
ABSL_FLAG(int, threads, 2, "OpenMP threads (--mode=engine) and for the bandwidth measurement");
ABSL_FLAG(double, seconds, 2.0,
          "seconds of batches per case, at least 5 (--mode=engine; through a server each "
          "session takes S/16 steps, 16 to 200)");
ABSL_FLAG(int64_t, max_kv_bytes, int64_t{9} << 30,
          "cases whose sessions would hold more K and V than this are skipped (--mode=engine)");
ABSL_FLAG(int, prefill_chunk, 2048, "tokens per prefill step (--mode=server)");
ABSL_FLAG(bool, stateless, true, "also stateless Attend for B = 1 (--mode=server)");
ABSL_FLAG(int64_t, max_message_bytes, 64 << 20, "the server's message limit (--mode=server)");

namespace {

namespace pb = attention::v1;
using Clock = std::chrono::steady_clock;

struct Case {
  int64_t sessions = 0;
  int64_t context = 0;
  bool bf16 = false;
};

// The shape of every session.
struct Shape {
  int64_t heads, kv_heads, dim;
  int64_t KvBytesPerToken(bool bf16) const { return kv_heads * 2 * dim * (bf16 ? 2 : 4); }
};

Clock::duration Seconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

std::vector<float> Random(int64_t count, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> out(count);
  for (float& x : out) x = normal(rng);
  return out;
}

double ReadBandwidthGBs(int threads) {
  attn::bench::MemoryStreams streams(int64_t{1} << 30, threads);
  double best = 1e30;
  for (int run = 0; run < 4; ++run) {
    const double t0 = omp_get_wtime();
    volatile uint64_t sink = streams.Read();
    (void)sink;
    best = std::min(best, omp_get_wtime() - t0);
  }
  return streams.bytes_per_array() * 1e-9 / best;
}

void PrintJson(const std::string& mode, const Case& c, double steps_per_s, double step_ms,
               double wire_bytes, double kv_gbs, double read_gbs, const std::string& extra) {
  std::printf(
      "{\"mode\": \"%s\", \"kv_dtype\": \"%s\", \"sessions\": %ld, \"context\": %ld, "
      "\"steps_per_s\": %.1f, \"step_ms\": %.3f, \"wire_bytes_per_step\": %.0f, "
      "\"kv_gbs\": %.2f, \"read_gbs\": %.2f, \"bw_pct\": %.1f%s}\n",
      mode.c_str(), c.bf16 ? "bfloat16" : "float32", static_cast<long>(c.sessions),
      static_cast<long>(c.context), steps_per_s, step_ms, wire_bytes, kv_gbs, read_gbs,
      100 * kv_gbs / read_gbs, extra.c_str());
  std::fflush(stdout);
}

// --- in process ---

void RunEngineCase(const Case& c, const Shape& shape, double read_gbs) {
  const int64_t page_tokens = absl::GetFlag(FLAGS_page_tokens);
  attn::SessionStore store({.capacity_bytes = int64_t{1} << 40, .page_tokens = page_tokens,
                            .max_tokens = int64_t{1} << 22,
                            .default_max_tokens = int64_t{1} << 22});
  const attn::AttentionEngine engine(attn::AttentionEngine::Options{});
  std::mt19937 rng(1);
  // One chunk of random rows, appended again and again (the values do not matter for time).
  constexpr int64_t kChunk = 1024;
  const std::vector<float> rows = Random(shape.kv_heads * kChunk * shape.dim, rng);
  std::vector<attn::SessionLease> leases;
  for (int64_t b = 0; b < c.sessions; ++b) {
    const attn::SessionInfo info =
        *store.Create({.num_layers = 1, .num_heads = shape.heads, .num_kv_heads = shape.kv_heads,
                       .head_dim = shape.dim, .bf16 = c.bf16}, "");
    leases.push_back(*store.Lease(info.id, ""));
    attn::KvLayerCache& layer = leases.back()->layers[0];
    for (int64_t done = 0; done < c.context; done += kChunk) {
      const int64_t n = std::min(kChunk, c.context - done);
      if (!store.Reserve(layer.BytesToAppend(n)).ok()) std::abort();
      // [Hkv, n, D] views of the chunk: row stride kept by taking the first n of each head.
      std::vector<float> part(shape.kv_heads * n * shape.dim);
      for (int64_t g = 0; g < shape.kv_heads; ++g) {
        std::copy_n(rows.begin() + g * kChunk * shape.dim, n * shape.dim,
                    part.begin() + g * n * shape.dim);
      }
      layer.Append({.tokens = n, .key = part.data(), .value = part.data()}, store.pool());
    }
  }
  const std::vector<float> query = Random(shape.heads * shape.dim, rng);
  const std::vector<float> key = Random(shape.kv_heads * shape.dim, rng);
  std::vector<attn::SessionStep> steps(c.sessions);
  std::vector<std::vector<float>> outputs(c.sessions,
                                          std::vector<float>(shape.heads * shape.dim));
  for (int64_t b = 0; b < c.sessions; ++b) {
    steps[b] = {.layer = 0,
                .query = query.data(),
                .rows = {.tokens = 1, .key = key.data(), .value = key.data()},
                .scale = 1.0f / std::sqrt(static_cast<float>(shape.dim))};
  }
  std::vector<double> seconds;
  int64_t kv_bytes = 0;
  const Clock::time_point end = Clock::now() + Seconds(absl::GetFlag(FLAGS_seconds));
  for (int iteration = 0; iteration < 5 || Clock::now() < end; ++iteration) {
    std::vector<attn::PlannedStep> planned;
    const Clock::time_point t0 = Clock::now();
    for (int64_t b = 0; b < c.sessions; ++b) {
      leases[b]->mu.lock();
      const attn::StepPlan plan = *attn::PlanStep(*leases[b], steps[b]);
      planned.push_back({.session = leases[b].get(), .step = &steps[b], .plan = plan,
                         .outputs = {.output = outputs[b].data()}});
      if (iteration == 0) kv_bytes += plan.keys * shape.KvBytesPerToken(c.bf16);
    }
    if (!attn::ApplySteps(planned, store, engine, {}).ok()) std::abort();
    if (iteration > 0) seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    // Back to S positions (untimed), so that every batch sees the same context.
    for (int64_t b = 0; b < c.sessions; ++b) {
      leases[b]->layers[0].Truncate(c.context);
      leases[b]->mu.unlock();
    }
  }
  const double batch_s = Median(seconds);
  PrintJson("engine", c, c.sessions / batch_s, batch_s * 1e3, 0, kv_bytes * 1e-9 / batch_s,
            read_gbs, "");
}

// --- through a server ---

std::unique_ptr<pb::AttentionService::Stub> NewStub(int index) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  args.SetInt("attnserve.bench.channel", index);  // a connection of its own
  return pb::AttentionService::NewStub(grpc::CreateCustomChannel(
      absl::GetFlag(FLAGS_address), grpc::InsecureChannelCredentials(), args));
}

pb::Tensor TensorOf(std::vector<int64_t> shape, const std::vector<float>& values, bool bf16) {
  pb::Tensor tensor;
  attn::EncodeFloatTensor(shape, values.data(),
                          bf16 ? attn::DType::kBFloat16 : attn::DType::kFloat32, false, &tensor);
  return tensor;
}

pb::SessionAttendRequest StepRequest(const std::string& id, int64_t n, const Shape& shape,
                                     bool bf16, std::mt19937& rng) {
  pb::SessionAttendRequest request;
  request.set_session_id(id);
  // A bf16 model's client sends q, k and v in bf16 and takes its output in bf16.
  *request.mutable_query() =
      TensorOf({shape.heads, n, shape.dim}, Random(shape.heads * n * shape.dim, rng), bf16);
  if (bf16) request.set_output_dtype(pb::DATA_TYPE_BFLOAT16);
  *request.mutable_key() = TensorOf({shape.kv_heads, n, shape.dim},
                                    Random(shape.kv_heads * n * shape.dim, rng), bf16);
  *request.mutable_value() = TensorOf({shape.kv_heads, n, shape.dim},
                                      Random(shape.kv_heads * n * shape.dim, rng), bf16);
  return request;
}

template <typename Call>
grpc::Status Checked(Call call) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
  return call(&context);
}

// B threads in a closed loop, each calling `step(thread)` (which returns its wire bytes)
// `calls` times after one warm-up call; the steps per second and median latency in ms; the
// mean wire bytes into `wire_bytes`.
template <typename Step>
std::pair<double, double> ClosedLoop(int64_t threads, int64_t calls, Step step,
                                     double& wire_bytes) {
  for (int64_t t = 0; t < threads; ++t) step(t);  // warm-up
  std::vector<std::vector<double>> latencies(threads);
  std::atomic<int64_t> bytes{0}, steps{0};
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> workers;
  for (int64_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int64_t i = 0; i < calls; ++i) {
        const Clock::time_point t0 = Clock::now();
        bytes += step(t);
        latencies[t].push_back(std::chrono::duration<double>(Clock::now() - t0).count() * 1e3);
        ++steps;
      }
    });
  }
  for (auto& w : workers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  wire_bytes = static_cast<double>(bytes) / steps;
  return {steps / elapsed, Median(all)};
}

// A session of `context` positions prefilled through the server (then used by every B).
std::string PrefillSession(pb::AttentionService::Stub& stub, int64_t context, bool bf16,
                           const Shape& shape, std::mt19937& rng) {
  pb::CreateSessionRequest create;
  create.set_num_layers(1);
  create.set_num_heads(shape.heads);
  create.set_num_kv_heads(shape.kv_heads);
  create.set_head_dim(shape.dim);
  create.set_kv_dtype(bf16 ? pb::DATA_TYPE_BFLOAT16 : pb::DATA_TYPE_FLOAT32);
  create.set_max_tokens(context + 1000);
  create.set_idle_timeout_s(86400);
  pb::Session first;
  grpc::Status status = Checked([&](grpc::ClientContext* ctx) {
    return stub.CreateSession(ctx, create, &first);
  });
  if (!status.ok()) {
    std::cerr << "CreateSession: " << status.error_message() << "\n";
    std::exit(1);
  }
  for (int64_t done = 0; done < context;) {
    const int64_t n = std::min<int64_t>(absl::GetFlag(FLAGS_prefill_chunk), context - done);
    pb::SessionAttendResponse response;
    status = Checked([&](grpc::ClientContext* ctx) {
      return stub.SessionAttend(ctx, StepRequest(first.session_id(), n, shape, bf16, rng),
                                &response);
    });
    if (!status.ok()) {
      std::cerr << "prefill: " << status.error_message() << "\n";
      std::exit(1);
    }
    done += n;
  }
  return first.session_id();
}

// B sessions: `prefilled` itself for B = 1, else forks of it (each decode step then writes to
// pages of its own: the fork's copy of the shared last page, then new pages).
void RunServerCase(const Case& c, const std::string& prefilled, const Shape& shape,
                   double read_gbs) {
  std::mt19937 rng(2);
  std::vector<std::unique_ptr<pb::AttentionService::Stub>> stubs;
  for (int64_t b = 0; b < c.sessions; ++b) stubs.push_back(NewStub(static_cast<int>(b)));
  grpc::Status status;
  std::vector<std::string> ids = {prefilled};
  for (int64_t b = 1; b < c.sessions; ++b) {
    pb::ForkSessionRequest fork;
    fork.set_session_id(prefilled);
    pb::Session forked;
    status = Checked([&](grpc::ClientContext* ctx) {
      return stubs[0]->ForkSession(ctx, fork, &forked);
    });
    if (!status.ok()) std::exit(1);
    ids.push_back(forked.session_id());
  }
  std::vector<pb::SessionAttendRequest> requests;
  for (int64_t b = 0; b < c.sessions; ++b) {
    requests.push_back(StepRequest(ids[b], 1, shape, c.bf16, rng));
  }
  // A fixed number of steps per session: each adds a position, so the context drifts by at
  // most 1/16 of S (the K+V read counts the mean context).
  const int64_t calls = std::clamp<int64_t>(c.context / 16, 16, 200);
  double wire_bytes = 0;
  const auto [steps_per_s, step_ms] = ClosedLoop(
      c.sessions, calls,
      [&](int64_t t) -> int64_t {
        pb::SessionAttendResponse response;
        grpc::ClientContext context;
        if (!stubs[t]->SessionAttend(&context, requests[t], &response).ok()) std::abort();
        return static_cast<int64_t>(requests[t].ByteSizeLong() + response.ByteSizeLong());
      },
      wire_bytes);
  const double mean_context = c.context + 1 + calls / 2.0;
  const double kv_gbs = steps_per_s * mean_context * shape.KvBytesPerToken(c.bf16) * 1e-9;
  std::string extra;
  const int64_t stateless_bytes = 2 * (c.context + 1) * shape.KvBytesPerToken(c.bf16) / 2 +
                                  shape.heads * shape.dim * 4 + 1024;
  if (absl::GetFlag(FLAGS_stateless) && c.sessions == 1 &&
      stateless_bytes <= absl::GetFlag(FLAGS_max_message_bytes)) {
    pb::AttendRequest attend;
    const int64_t keys = c.context + 1;
    *attend.mutable_query() = TensorOf({1, shape.heads, 1, shape.dim},
                                       Random(shape.heads * shape.dim, rng), c.bf16);
    *attend.mutable_key() = TensorOf({1, shape.kv_heads, keys, shape.dim},
                                     Random(shape.kv_heads * keys * shape.dim, rng), c.bf16);
    *attend.mutable_value() = TensorOf({1, shape.kv_heads, keys, shape.dim},
                                       Random(shape.kv_heads * keys * shape.dim, rng), c.bf16);
    attend.mutable_mask()->set_causal(pb::CAUSAL_LOWER_RIGHT);
    attend.set_attention_maps(pb::ATTENTION_MAPS_NONE);
    if (c.bf16) attend.set_output_dtype(pb::DATA_TYPE_BFLOAT16);
    double stateless_wire = 0;
    const auto [stateless_per_s, stateless_ms] = ClosedLoop(
        1, std::clamp<int64_t>(calls, 16, 64),
        [&](int64_t) -> int64_t {
          pb::AttendResponse response;
          grpc::ClientContext context;
          if (!stubs[0]->Attend(&context, attend, &response).ok()) std::abort();
          return static_cast<int64_t>(attend.ByteSizeLong() + response.ByteSizeLong());
        },
        stateless_wire);
    extra = absl::StrFormat(
        ", \"stateless_steps_per_s\": %.1f, \"stateless_ms\": %.3f, "
        "\"stateless_wire_bytes_per_step\": %.0f",
        stateless_per_s, stateless_ms, stateless_wire);
  }
  pb::TruncateSessionRequest truncate;  // the prefilled session back to S, for the next B
  truncate.set_session_id(prefilled);
  truncate.set_tokens(c.context);
  pb::Session truncated;
  (void)Checked([&](grpc::ClientContext* ctx) {
    return stubs[0]->TruncateSession(ctx, truncate, &truncated);
  });
  for (const std::string& id : ids) {
    if (id == prefilled) continue;
    pb::CloseSessionRequest close;
    close.set_session_id(id);
    pb::CloseSessionResponse closed;
    (void)Checked([&](grpc::ClientContext* ctx) {
      return stubs[0]->CloseSession(ctx, close, &closed);
    });
  }
  PrintJson("server", c, steps_per_s, step_ms, wire_bytes, kv_gbs, read_gbs, extra);
}

std::vector<int64_t> Numbers(const std::string& list) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(list, ',')) out.push_back(std::stoll(std::string(part)));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("session-bench [--mode=engine|server] [flags]: decode steps of "
                               "KV-cache sessions (see the file comment)");
  absl::ParseCommandLine(argc, argv);
  attn::KeepFreedMemoryForReuse();
  if (!attn::InitCpuTier().ok() || !attn::InitBf16Matmuls().ok()) return 2;
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "engine" && mode != "server") {
    std::cerr << "--mode must be engine or server\n";
    return 2;
  }
  const int threads = absl::GetFlag(FLAGS_threads);
  omp_set_num_threads(threads);
  const Shape shape{absl::GetFlag(FLAGS_heads), absl::GetFlag(FLAGS_kv_heads),
                    absl::GetFlag(FLAGS_head_dim)};
  const double read_gbs = ReadBandwidthGBs(threads);
  for (absl::string_view dtype : absl::StrSplit(absl::GetFlag(FLAGS_kv_dtypes), ',')) {
    const bool bf16 = dtype == "bfloat16";
    if (!bf16 && dtype != "float32") {
      std::cerr << "--kv_dtypes: float32 or bfloat16\n";
      return 2;
    }
    for (int64_t context : Numbers(absl::GetFlag(FLAGS_contexts))) {
      std::string prefilled;
      std::mt19937 rng(3);
      if (mode == "server") prefilled = PrefillSession(*NewStub(-1), context, bf16, shape, rng);
      for (int64_t sessions : Numbers(absl::GetFlag(FLAGS_sessions))) {
        const Case c{.sessions = sessions, .context = context, .bf16 = bf16};
        if (mode == "engine") {
          if (sessions * context * shape.KvBytesPerToken(bf16) >
              absl::GetFlag(FLAGS_max_kv_bytes)) {
            std::printf("{\"mode\": \"engine\", \"kv_dtype\": \"%s\", \"sessions\": %ld, "
                        "\"context\": %ld, \"skipped\": \"over --max_kv_bytes\"}\n",
                        bf16 ? "bfloat16" : "float32", static_cast<long>(sessions),
                        static_cast<long>(context));
            continue;
          }
          RunEngineCase(c, shape, read_gbs);
        } else {
          RunServerCase(c, prefilled, shape, read_gbs);
        }
      }
    }
  }
  return 0;
}
