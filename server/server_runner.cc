// Assembles and runs the gRPC server (see server_runner.h).
#include "server/server_runner.h"

#include <algorithm>
#include <cstdint>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/weights_dir.h"

namespace attn {
namespace {

constexpr char kServiceName[] = "attention.v1.AttentionService";
// How long a draining server waits after the last arrival before gRPC itself stops.
constexpr absl::Duration kDrainQuietPeriod = absl::Seconds(1);

}  // namespace

AttentionServer::AttentionServer(const ServerOptions& options)
    : options_(options),
      executor_(options.executor),
      engine_({.primitive_cache_capacity = options.primitive_cache_capacity}),
      layer_(engine_, options.primitive_cache_capacity),
      registry_(options.max_weights_bytes),
      sessions_(options.sessions),
      service_(engine_, layer_, registry_, sessions_, executor_, options.Limits(),
               {.max_inflight = options.max_inflight > 0 ? options.max_inflight
                                                 : options.executor.workers,
                .max_queue = options.max_queue,
                .memory_budget_bytes = options.memory_budget_bytes}),
      inference_(service_, registry_) {}

AttentionServer::~AttentionServer() { Shutdown(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<AttentionServer>> AttentionServer::Start(
    const ServerOptions& options) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<AttentionServer> server(new AttentionServer(options));
  if (!options.weights_dir.empty()) {
    absl::StatusOr<int> loaded = LoadWeightsDir(options.weights_dir, server->registry_);
    if (!loaded.ok()) return loaded.status();
  }

  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  if (!options.auth_tokens_file.empty()) {
    absl::StatusOr<std::unique_ptr<AuthTokens>> auth = AuthTokens::Load(options.auth_tokens_file);
    if (!auth.ok()) return auth.status();
    server->auth_ = *std::move(auth);
    server->service_.RequireTokens(server->auth_.get());
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, *credentials, &server->port_);
  const int max_bytes = static_cast<int>(std::min<int64_t>(options.max_message_bytes, INT32_MAX));
  builder.SetMaxReceiveMessageSize(max_bytes);
  // Keepalive: ping idle connections, drop dead ones; accept clients' pings every 10 s or more.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, options.keepalive_time_s * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, options.keepalive_timeout_s * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  builder.SetMaxSendMessageSize(max_bytes);
  builder.RegisterService(&server->service_);
  builder.RegisterService(&server->inference_);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("could not listen on ", options.address));
  }
  if (!options.metrics_address.empty()) {
    AttentionServer* raw = server.get();
    grpc::ChannelArguments in_process;  // the HTTP session routes' calls: the server's limits
    in_process.SetMaxReceiveMessageSize(-1);
    in_process.SetMaxSendMessageSize(-1);
    absl::StatusOr<std::unique_ptr<HttpGateway>> http = HttpGateway::Start(
        options.metrics_address, options.max_message_bytes, server->service_,
        [raw] { return raw->Gauges(); }, server->server_->InProcessChannel(in_process));
    if (!http.ok()) return http.status();
    server->http_ = *std::move(http);
  }
  grpc::HealthCheckServiceInterface* health = server->server_->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(kServiceName, true);
  return server;
}

void AttentionServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  const absl::Time deadline = absl::Now() + grace;
  server_->GetHealthCheckService()->SetServingStatus(false);
  // Refuse new calls with UNAVAILABLE and let accepted ones finish before gRPC stops; gRPC's own
  // Shutdown would cancel calls whose messages are still arriving.
  service_.gate().StartDraining();
  service_.gate().WaitUntilQuiet(kDrainQuietPeriod, deadline);
  server_->Shutdown(absl::ToChronoTime(deadline));
  http_.reset();
}

ScrapeGauges AttentionServer::Gauges() {
  const PrimitiveCache& attention = engine_.primitive_cache();
  const SessionStoreStats kv = sessions_.Stats();
  const PrimitiveCache& dense = layer_.dense_layers().primitive_cache();
  return {.in_flight = service_.gate().running(),
          .queue_depth = static_cast<int64_t>(executor_.queue_depth()),
          .primitive_cache_hits = attention.hits() + dense.hits(),
          .primitive_cache_misses = attention.misses() + dense.misses(),
          .weights_count = static_cast<int64_t>(registry_.List().size()),
          .weights_bytes = registry_.bytes(),
          .kv_sessions = kv.sessions,
          .kv_pool_capacity_bytes = kv.pool_capacity_bytes,
          .kv_pool_used_bytes = kv.pool_used_bytes,
          .kv_pool_pages = kv.pool_pages,
          .kv_pool_shared_pages = kv.pool_shared_pages,
          .kv_pool_shared_bytes = kv.pool_shared_bytes,
          .kv_evicted = kv.evicted,
          .kv_expired = kv.expired};
}

absl::StatusOr<int> AttentionServer::ReloadAuthTokens() {
  if (auth_ == nullptr) return 0;
  return auth_->Reload();
}

void AttentionServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

}  // namespace attn
