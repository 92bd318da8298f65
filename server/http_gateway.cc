// The HTTP side of the server: metrics, health and the JSON gateway (see http_gateway.h).
#include "server/http_gateway.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/inference_gateway.h"
#include "server/request_id.h"
#include "server/session_gateway.h"
#include "server/status_convert.h"

namespace attn {
namespace {

namespace pb = attention::v1;

std::string ErrorJson(const std::string& code, const std::string& message) {
  std::string escaped;  // the message as a JSON string, escaped by protobuf
  google::protobuf::util::JsonPrintOptions options;
  google::protobuf::Value value;
  value.set_string_value(message);
  google::protobuf::util::MessageToJsonString(value, &escaped, options);
  return absl::StrCat("{\"code\":\"", code, "\",\"message\":", escaped, "}");
}

}  // namespace

void HttpGateway::Reply(httplib::Response& res, int grpc_code, const std::string& message,
                        const std::string& json_body) {
  if (grpc_code == 0) {
    res.status = 200;
    res.set_content(json_body, "application/json");
    return;
  }
  res.status = HttpGateway::HttpStatusFor(grpc_code, message);
  res.set_content(ErrorJson(std::string(GrpcCodeName(static_cast<grpc::StatusCode>(grpc_code))),
                            message),
                  "application/json");
}

namespace {

// Parses the body as `Request`, runs `call`, and answers its AttendResponse as JSON.
template <typename Request, typename Call>
void HandleJson(const httplib::Request& req, httplib::Response& res, Call call) {
  const std::string id = req.get_header_value("x-request-id");
  const std::string traceparent = req.get_header_value("traceparent");
  const RequestTrace trace = TraceFromValues(req.has_header("x-request-id") ? &id : nullptr,
                                             req.has_header("traceparent") ? &traceparent : nullptr);
  res.set_header("x-request-id", trace.request_id);
  Request request;
  const auto parsed = google::protobuf::util::JsonStringToMessage(req.body, &request);
  if (!parsed.ok()) {
    HttpGateway::Reply(res, grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("the body is not a JSON ", Request::descriptor()->full_name(), ": ",
                       std::string(parsed.message())),
          "");
    return;
  }
  pb::AttendResponse response;
  const std::optional<std::string> authorization =
      req.has_header("Authorization")
          ? std::optional<std::string>(req.get_header_value("Authorization"))
          : std::nullopt;
  const grpc::Status status =
      call(trace, absl::StrCat("http:", req.remote_addr, ":", req.remote_port), authorization,
           request, &response);
  std::string json;
  if (status.ok()) google::protobuf::util::MessageToJsonString(response, &json);
  HttpGateway::Reply(res, status.error_code(), status.error_message(), json);
}

}  // namespace

int HttpGateway::HttpStatusFor(int grpc_code, const std::string& message) {
  switch (static_cast<grpc::StatusCode>(grpc_code)) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // Size limits are the request's fault (413); anything else is load (429).
      return message.find("over the limit") != std::string::npos ? 413 : 429;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(
    const std::string& address, int64_t max_body_bytes, AttentionService& service,
    std::function<ScrapeGauges()> gauges, std::shared_ptr<grpc::Channel> in_process) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_address \"", address, "\" is not host:port"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<HttpGateway> gateway(new HttpGateway());
  gateway->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *gateway->server_;
  server.set_payload_max_length(static_cast<size_t>(max_body_bytes));

  server.Get("/metrics", [gauges](const httplib::Request&, httplib::Response& res) {
    res.set_content(Metrics::Global().Render(gauges()), "text/plain; version=0.0.4");
  });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server.Get("/readyz", [&service](const httplib::Request&, httplib::Response& res) {
    const bool ready = !service.gate().draining();
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ready\n" : "draining\n", "text/plain");
  });
  server.Post("/v1/attend", [&service](const httplib::Request& req, httplib::Response& res) {
    HandleJson<pb::AttendRequest>(req, res, [&service](auto&&... args) {
      return service.AttendBlocking(args...);
    });
  });
  server.Post("/v1/multi_head_attend",
              [&service](const httplib::Request& req, httplib::Response& res) {
                HandleJson<pb::MultiHeadAttendRequest>(req, res, [&service](auto&&... args) {
                  return service.MultiHeadAttendBlocking(args...);
                });
              });
  AddSessionRoutes(server, in_process);
  AddInferenceRoutes(server, std::move(in_process));

  gateway->port_ = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (gateway->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("could not listen on ", address, " (HTTP)"));
  }
  gateway->thread_ = std::thread([&server] { server.listen_after_bind(); });
  return gateway;
}

HttpGateway::~HttpGateway() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace attn
