// The server's HTTP side on --metrics_address (cpp-httplib): GET /metrics (Prometheus text
// 0.0.4), GET /healthz (200 while the process runs), GET /readyz (200 while serving, 503 once
// draining), and a JSON gateway: POST /v1/attend and POST /v1/multi_head_attend take the protobuf
// JSON mapping of AttendRequest / MultiHeadAttendRequest and answer the JSON of AttendResponse,
// or {"code": "INVALID_ARGUMENT", "message": "..."} with the HTTP status of the gRPC code; the
// KV-cache session routes are session_gateway.h's, the Open Inference Protocol's REST routes
// inference_gateway.h's. The work runs on the service's workers; HTTP
// threads only wait. `x-request-id` and `traceparent` headers are honoured as in gRPC and the
// id is echoed. Thread-safe.
#ifndef ATTNSERVE_SERVER_HTTP_GATEWAY_H_
#define ATTNSERVE_SERVER_HTTP_GATEWAY_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/attention_service.h"
#include "server/metrics.h"

namespace httplib {
class Server;
struct Response;
}

namespace attn {

class HttpGateway {
 public:
  // Listens on `address` (host:port; port 0 picks one); request bodies over `max_body_bytes`
  // get 413. `gauges` is sampled on each scrape. `in_process` is a channel to the gRPC server
  // (the session routes call it). The service must outlive the gateway.
  static absl::StatusOr<std::unique_ptr<HttpGateway>> Start(
      const std::string& address, int64_t max_body_bytes, AttentionService& service,
      std::function<ScrapeGauges()> gauges, std::shared_ptr<grpc::Channel> in_process);
  ~HttpGateway();

  int port() const { return port_; }

  // gRPC status code -> HTTP status (400, 404, 413, 429, 503, ...).
  static int HttpStatusFor(int grpc_code, const std::string& message);
  // Answers `json_body` (grpc_code 0) or the error body of `grpc_code` and `message`.
  static void Reply(httplib::Response& res, int grpc_code, const std::string& message,
                    const std::string& json_body);

 private:
  HttpGateway() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_HTTP_GATEWAY_H_
