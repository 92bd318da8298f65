// attnserve: the attention gRPC server. Parses flags, sets up logging, starts the server and
// drains it gracefully on SIGTERM/SIGINT (health NOT_SERVING, in-flight calls finish, exit 0).
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "server/request_log.h"
#include "server/server_runner.h"
#include "spdlog/spdlog.h"
#include "src/engine/bf16_matmuls.h"
#include "src/runtime/cpu_tier.h"
#include "src/runtime/memory_reuse.h"

ABSL_FLAG(std::string, address, "0.0.0.0:50051", "host:port to listen on; port 0 picks a free one");
ABSL_FLAG(std::string, port_file, "", "if set, the bound port is written to this file once serving");
ABSL_FLAG(int, intra_op_threads, 0,
          "the most OpenMP threads one request computes with; 0 = the cores");
ABSL_FLAG(bool, share_threads, true,
          "requests computing at once divide --intra_op_threads between them (a lone request "
          "gets them all, two get half each); false: each takes all of them");
ABSL_FLAG(int, workers, 0,
          "requests computing at once, on worker threads (gRPC threads never compute); "
          "0 = --intra_op_threads");
ABSL_FLAG(int64_t, max_message_bytes, 64 << 20, "largest request or response message, bytes");
ABSL_FLAG(int64_t, max_elements, int64_t{1} << 26,
          "largest single tensor, in elements, including the maps a request would produce");
ABSL_FLAG(int64_t, primitive_cache_capacity, 256, "oneDNN primitives kept for reuse");
ABSL_FLAG(int64_t, max_weights_bytes, int64_t{1} << 30,
          "cap on the bytes of named weights held (PutWeights and --weights_dir)");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0:9090",
          "HTTP host:port for /metrics, /healthz, /readyz and the JSON gateway (/v1/attend, "
          "/v1/multi_head_attend); empty disables; port 0 picks a free one");
ABSL_FLAG(std::string, metrics_port_file, "",
          "if set, the bound HTTP port is written to this file once serving");
ABSL_FLAG(int64_t, max_inflight, 0,
          "requests computing at once; 0 = --workers. Past max_inflight + max_queue admitted "
          "requests, new ones get RESOURCE_EXHAUSTED at once");
ABSL_FLAG(int64_t, max_queue, 64, "requests admitted to wait for a worker");
ABSL_FLAG(int64_t, memory_budget_bytes, 0,
          "estimated working memory of the requests computing at once; a request that does not "
          "fit waits until its deadline, one that never could is refused; 0 = no budget");
ABSL_FLAG(int, keepalive_time_s, 60, "ping a connection after this many idle seconds");
ABSL_FLAG(int, keepalive_timeout_s, 20, "close a connection whose ping is not acked in time");
ABSL_FLAG(int, max_concurrent_streams, 128, "concurrent calls per HTTP/2 connection");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve gRPC over TLS (with --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA: require client certificates signed by it (mutual TLS)");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "file of bearer tokens, one per line ('#' comments); calls must send "
          "'authorization: Bearer <token>' (health checks exempt); re-read on SIGHUP");
ABSL_FLAG(int64_t, kv_cache_bytes, int64_t{4} << 30,
          "bytes of KV-cache pages all sessions together may hold (docs/sessions.md)");
ABSL_FLAG(int64_t, kv_page_tokens, 128,
          "positions per KV-cache page (one layer and KV head), a multiple of 64");
ABSL_FLAG(std::string, kv_evict, "lru",
          "when the KV cache is full: lru (evict the least recently used idle session) or none "
          "(refuse the step with RESOURCE_EXHAUSTED)");
ABSL_FLAG(int64_t, kv_idle_timeout_s, 300,
          "a session idle this long is dropped (a session may ask for another, up to 86400)");
ABSL_FLAG(int64_t, kv_max_tokens, 131072,
          "positions per layer a session may hold at most (and holds when it asks 0)");
ABSL_FLAG(int64_t, kv_max_sessions, 10000, "sessions open at once, at most");
ABSL_FLAG(std::string, weights_dir, "",
          "directory whose *.safetensors files are loaded at start-up as named weights");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error or off");
ABSL_FLAG(std::string, log_format, "text", "text or json (one JSON object per line)");
ABSL_FLAG(double, shutdown_grace_s, 10.0,
          "on SIGTERM/SIGINT, seconds in-flight calls get to finish before they are cancelled");

namespace {

int Fail(const std::string& message) {
  spdlog::error("{}", message);
  return 2;
}

// Blocks TERM, INT and HUP in this thread and every thread started after it, so that only
// sigwait sees them.
sigset_t BlockHandledSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t handled_signals = BlockHandledSignals();
  absl::SetProgramUsageMessage("Serves attention.v1.AttentionService over gRPC. Flags:");
  absl::ParseCommandLine(argc, argv);
  attn::KeepFreedMemoryForReuse();  // message buffers are reused, not faulted in per call
  if (!attn::HostMeetsMinimumIsa()) {
    return Fail("this CPU is below x86-64-v2 (SSE4.2, POPCNT), the least attnserve runs on");
  }
  // The CPU tier, chosen (and oneDNN capped by ATTN_MAX_CPU_ISA) before any oneDNN primitive.
  if (absl::StatusOr<attn::CpuTier> tier = attn::InitCpuTier(); !tier.ok()) {
    return Fail(tier.status().ToString());
  }
  if (absl::StatusOr<attn::Bf16Matmuls> bf16 = attn::InitBf16Matmuls(); !bf16.ok()) {
    return Fail(bf16.status().ToString());
  }

  absl::StatusOr<attn::LogFormat> format = attn::ParseLogFormat(absl::GetFlag(FLAGS_log_format));
  if (!format.ok()) return Fail(format.status().ToString());
  attn::SetLogFormat(*format);
  const spdlog::level::level_enum level = spdlog::level::from_str(absl::GetFlag(FLAGS_log_level));
  if (level == spdlog::level::off && absl::GetFlag(FLAGS_log_level) != "off") {
    return Fail(absl::StrCat("--log_level = \"", absl::GetFlag(FLAGS_log_level),
                             "\"; use trace, debug, info, warn, error or off"));
  }
  spdlog::set_level(level);

  attn::ServerOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  absl::StatusOr<attn::Executor::Options> executor = attn::Executor::OptionsFromFlags(
      absl::GetFlag(FLAGS_workers), absl::GetFlag(FLAGS_intra_op_threads),
      absl::GetFlag(FLAGS_share_threads));
  if (!executor.ok()) return Fail(std::string(executor.status().message()));
  options.executor = *executor;
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.max_elements = absl::GetFlag(FLAGS_max_elements);
  if (options.max_message_bytes < 1 || options.max_elements < 1) {
    return Fail("--max_message_bytes and --max_elements must be >= 1");
  }
  options.primitive_cache_capacity = absl::GetFlag(FLAGS_primitive_cache_capacity);
  options.max_weights_bytes = absl::GetFlag(FLAGS_max_weights_bytes);
  if (options.max_weights_bytes < 0) return Fail("--max_weights_bytes must be >= 0");
  options.weights_dir = absl::GetFlag(FLAGS_weights_dir);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options.tls = {.cert = absl::GetFlag(FLAGS_tls_cert),
                 .key = absl::GetFlag(FLAGS_tls_key),
                 .client_ca = absl::GetFlag(FLAGS_tls_client_ca)};
  options.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  options.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  options.max_queue = absl::GetFlag(FLAGS_max_queue);
  options.memory_budget_bytes = absl::GetFlag(FLAGS_memory_budget_bytes);
  options.keepalive_time_s = absl::GetFlag(FLAGS_keepalive_time_s);
  options.keepalive_timeout_s = absl::GetFlag(FLAGS_keepalive_timeout_s);
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  if (options.max_inflight < 0 || options.max_queue < 0 || options.memory_budget_bytes < 0 ||
      options.keepalive_time_s < 1 || options.keepalive_timeout_s < 1 ||
      options.max_concurrent_streams < 1) {
    return Fail("--max_inflight, --max_queue and --memory_budget_bytes must be >= 0; "
                "--keepalive_time_s, --keepalive_timeout_s and --max_concurrent_streams >= 1");
  }
  options.sessions.capacity_bytes = absl::GetFlag(FLAGS_kv_cache_bytes);
  options.sessions.page_tokens = absl::GetFlag(FLAGS_kv_page_tokens);
  options.sessions.max_tokens = options.sessions.default_max_tokens =
      absl::GetFlag(FLAGS_kv_max_tokens);
  options.sessions.max_sessions = absl::GetFlag(FLAGS_kv_max_sessions);
  options.sessions.default_idle_timeout = absl::Seconds(absl::GetFlag(FLAGS_kv_idle_timeout_s));
  const std::string evict = absl::GetFlag(FLAGS_kv_evict);
  if (evict != "lru" && evict != "none") {
    return Fail(absl::StrCat("--kv_evict = \"", evict, "\"; use lru or none"));
  }
  options.sessions.evict_lru = evict == "lru";
  if (options.sessions.capacity_bytes < 0 || options.sessions.page_tokens < 64 ||
      options.sessions.page_tokens % 64 != 0 || options.sessions.max_tokens < 1 ||
      options.sessions.max_sessions < 1 || absl::GetFlag(FLAGS_kv_idle_timeout_s) < 1 ||
      absl::GetFlag(FLAGS_kv_idle_timeout_s) > 86400) {
    return Fail("--kv_cache_bytes must be >= 0, --kv_page_tokens a multiple of 64, "
                "--kv_max_tokens and --kv_max_sessions >= 1, --kv_idle_timeout_s in [1, 86400]");
  }
  const double grace_s = absl::GetFlag(FLAGS_shutdown_grace_s);
  if (!(grace_s >= 0)) return Fail("--shutdown_grace_s must be >= 0");

  absl::StatusOr<std::unique_ptr<attn::AttentionServer>> server =
      attn::AttentionServer::Start(options);
  if (!server.ok()) return Fail(server.status().ToString());
  const int port = (*server)->port();
  attn::LogEvent(spdlog::level::info, "started",
                 attn::LogFields()
                     .Add("version", ATTNSERVE_VERSION)
                     .Add("onednn", attn::AttentionEngine::OneDnnVersion())
                     .Add("cpu_tier", attn::CpuTierName(attn::ActiveCpuTier()))
                     .Add("bf16_matmuls", attn::Bf16MatmulsName(attn::ActiveBf16Matmuls()))
                     .Add("isa", attn::AttentionEngine::OneDnnIsa())
                     .Add("address", options.address)
                     .Add("port", port)
                     .Add("http_port", (*server)->http_port())
                     .Add("workers", options.executor.workers)
                     .Add("intra_op_threads", options.executor.intra_op_threads)
                     .Add("share_threads", options.executor.share_threads)
                     .Add("kv_cache_bytes", options.sessions.capacity_bytes)
                     .Add("kv_page_tokens", options.sessions.page_tokens)
                     .Add("cores", attn::Executor::Cores()));
  // Port files are written then renamed, so a reader never sees a partial file; the HTTP one
  // first, so that a reader of the gRPC one finds both.
  const std::pair<std::string, int> port_files[] = {
      {absl::GetFlag(FLAGS_metrics_port_file), (*server)->http_port()},
      {absl::GetFlag(FLAGS_port_file), port}};
  for (const auto& [path, bound] : port_files) {
    if (path.empty()) continue;
    std::ofstream(path + ".tmp") << bound << "\n";
    std::rename((path + ".tmp").c_str(), path.c_str());
  }

  // SIGHUP re-reads the auth tokens (never logged); SIGTERM or SIGINT drains and stops.
  int signal_number = 0;
  while (sigwait(&handled_signals, &signal_number) == 0 && signal_number == SIGHUP) {
    absl::StatusOr<int> tokens = (*server)->ReloadAuthTokens();
    if (tokens.ok()) {
      attn::LogEvent(spdlog::level::info, "auth tokens reloaded",
                     attn::LogFields().Add("tokens", *tokens));
    } else {
      attn::LogEvent(spdlog::level::warn, "auth tokens not reloaded; the old ones stay",
                     attn::LogFields().Add("reason", std::string(tokens.status().message())));
    }
  }
  attn::LogEvent(spdlog::level::info, "draining",
                 attn::LogFields()
                     .Add("signal", signal_number == SIGTERM ? "SIGTERM" : "SIGINT")
                     .Add("grace_ms", static_cast<int64_t>(grace_s * 1000)));
  (*server)->Shutdown(absl::Milliseconds(grace_s * 1000));
  server->reset();
  attn::LogEvent(spdlog::level::info, "stopped", attn::LogFields().Add("exit_code", 0));
  return 0;
}
