// Builds and runs the whole gRPC server: executor, engine, session store, AttentionService, health
// (grpc.health.v1 for "" and "attention.v1.AttentionService") and reflection, listening on one
// address. Used by main and by the in-process tests. Shutdown is thread-safe and idempotent.
#ifndef ATTNSERVE_SERVER_SERVER_RUNNER_H_
#define ATTNSERVE_SERVER_SERVER_RUNNER_H_

#include <cstdint>
#include <memory>
#include <string>

#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/attention_service.h"
#include "server/http_gateway.h"
#include "server/inference_service.h"
#include "server/request_fields.h"
#include "server/server_credentials.h"
#include "src/engine/attention_engine.h"
#include "src/layer/multi_head_attention.h"
#include "src/kv/session_store.h"
#include "src/runtime/executor.h"
#include "src/weights/weight_registry.h"

namespace attn {

struct ServerOptions {
  std::string address = "0.0.0.0:50051";  // port 0 picks a free port
  Executor::Options executor = {.workers = 1, .intra_op_threads = 2};  // see Executor::Options
  int64_t max_message_bytes = 64 << 20;
  int64_t max_elements = int64_t{1} << 26;
  size_t primitive_cache_capacity = 256;
  int64_t max_weights_bytes = int64_t{1} << 30;  // cap on the weights the registry holds
  std::string weights_dir;                       // *.safetensors loaded at start-up; "" = none
  std::string metrics_address;                   // HTTP: /metrics, health, JSON; "" = none
  int64_t max_inflight = 0;                      // requests computing; 0 = workers
  int64_t max_queue = 64;                        // requests waiting for a worker
  int64_t memory_budget_bytes = 0;               // estimated working memory at once; 0 = none
  int keepalive_time_s = 60;                     // server pings an idle connection this often
  int keepalive_timeout_s = 20;                  // and closes it when no ack comes in time
  int max_concurrent_streams = 128;              // per connection
  TlsFiles tls;                                  // all empty = plaintext
  std::string auth_tokens_file;                  // bearer tokens required when set
  SessionStore::Options sessions;                // KV-cache sessions: the --kv_* flags

  // The per-request limits of Attend calls these options set.
  AttendLimits Limits() const {
    return {.max_elements = max_elements, .max_message_bytes = max_message_bytes};
  }
};

class AttentionServer {
 public:
  static absl::StatusOr<std::unique_ptr<AttentionServer>> Start(const ServerOptions& options);
  ~AttentionServer();

  // The port actually bound (differs from the address's when it asked for port 0).
  int port() const { return port_; }
  // The HTTP port (metrics, health, JSON gateway), or 0 when disabled.
  int http_port() const { return http_ == nullptr ? 0 : http_->port(); }
  const ServerOptions& options() const { return options_; }

  // Health turns NOT_SERVING, new calls get UNAVAILABLE, accepted calls get up to `grace` to
  // finish (then are cancelled); returns when every call is done.
  void Shutdown(absl::Duration grace);
  // Blocks until Shutdown has completed.
  void Wait();

  // Re-reads --auth_tokens_file (SIGHUP); returns how many tokens it holds. No-op (0) without
  // one; a failed reload keeps the tokens in force.
  absl::StatusOr<int> ReloadAuthTokens();

 private:
  explicit AttentionServer(const ServerOptions& options);
  // What /metrics samples at scrape time.
  ScrapeGauges Gauges();

  const ServerOptions options_;
  Executor executor_;
  AttentionEngine engine_;
  MultiHeadAttention layer_;
  WeightRegistry registry_;
  SessionStore sessions_;
  AttentionService service_;
  InferenceService inference_;  // the Open Inference Protocol, on service_
  std::unique_ptr<AuthTokens> auth_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpGateway> http_;
  int port_ = 0;
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_SERVER_RUNNER_H_
