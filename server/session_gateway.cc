// The session routes of the HTTP/JSON gateway (see session_gateway.h).
#include "server/session_gateway.h"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "attention/v1/attention.grpc.pb.h"
#include "server/http_gateway.h"

namespace attn {
namespace {

namespace pb = attention::v1;
using Stub = pb::AttentionService::Stub;

// A client context carrying the HTTP request's headers that the gRPC call reads.
void PassHeaders(const httplib::Request& req, grpc::ClientContext& context) {
  for (const char* header : {"authorization", "attn-session-id", "x-request-id", "traceparent"}) {
    if (req.has_header(header)) context.AddMetadata(header, req.get_header_value(header));
  }
}

// Calls `method` with `request` and answers its response (or error) as JSON.
template <typename Request, typename Response>
void Forward(const httplib::Request& req, httplib::Response& res, Stub& stub,
             grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
             const Request& request) {
  grpc::ClientContext context;
  PassHeaders(req, context);
  Response response;
  const grpc::Status status = (stub.*method)(&context, request, &response);
  const auto& trailers = context.GetServerTrailingMetadata();
  if (auto it = trailers.find("x-request-id"); it != trailers.end()) {
    res.set_header("x-request-id", std::string(it->second.data(), it->second.size()));
  }
  std::string json;
  if (status.ok()) {
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;  // {"layer_tokens": [0]}, not {}
    google::protobuf::util::MessageToJsonString(response, &json, options);
  }
  HttpGateway::Reply(res, status.error_code(), status.error_message(), json);
}

// The body as a `Request` (an empty body is an empty message); false after answering 400.
template <typename Request>
bool ParseBody(const httplib::Request& req, httplib::Response& res, Request* request) {
  if (req.body.empty()) return true;
  const auto parsed = google::protobuf::util::JsonStringToMessage(req.body, request);
  if (parsed.ok()) return true;
  HttpGateway::Reply(res, grpc::StatusCode::INVALID_ARGUMENT,
                     absl::StrCat("the body is not a JSON ", Request::descriptor()->full_name(),
                                  ": ", std::string(parsed.message())),
                     "");
  return false;
}

// Puts the path's session id in the body's session_id; false after answering 400 when the body
// names another.
template <typename Request>
bool TakePathId(const httplib::Request& req, httplib::Response& res, Request* request) {
  const std::string id = req.matches[1];
  if (!request->session_id().empty() && request->session_id() != id) {
    HttpGateway::Reply(res, grpc::StatusCode::INVALID_ARGUMENT,
                       absl::StrCat("session_id in the body (", request->session_id().substr(0, 80),
                                    ") is not the path's (", id, ")"),
                       "");
    return false;
  }
  request->set_session_id(id);
  return true;
}

// A route whose body is a `Request` naming the path's session.
template <typename Request, typename Response>
auto OnSession(std::shared_ptr<Stub> stub,
               grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*)) {
  return [stub, method](const httplib::Request& req, httplib::Response& res) {
    Request request;
    if (ParseBody(req, res, &request) && TakePathId(req, res, &request)) {
      Forward(req, res, *stub, method, request);
    }
  };
}

// A route whose body is the whole `Request`.
template <typename Request, typename Response>
auto OnBody(std::shared_ptr<Stub> stub,
            grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*)) {
  return [stub, method](const httplib::Request& req, httplib::Response& res) {
    Request request;
    if (ParseBody(req, res, &request)) Forward(req, res, *stub, method, request);
  };
}

}  // namespace

void AddSessionRoutes(httplib::Server& server, std::shared_ptr<grpc::Channel> channel) {
  auto stub = std::make_shared<Stub>(channel);
  constexpr char kOne[] = R"(/v1/sessions/([0-9a-f-]{1,80}))";
  server.Post("/v1/sessions", OnBody(stub, &Stub::CreateSession));
  server.Get("/v1/sessions", OnBody(stub, &Stub::ListSessions));
  server.Post("/v1/sessions:batch_attend", OnBody(stub, &Stub::SessionAttendBatch));
  server.Get(kOne, OnSession(stub, &Stub::GetSession));
  server.Delete(kOne, OnSession(stub, &Stub::CloseSession));
  server.Post(absl::StrCat(kOne, "/attend"), OnSession(stub, &Stub::SessionAttend));
  server.Post(absl::StrCat(kOne, "/fork"), OnSession(stub, &Stub::ForkSession));
  server.Post(absl::StrCat(kOne, "/truncate"), OnSession(stub, &Stub::TruncateSession));
}

}  // namespace attn
