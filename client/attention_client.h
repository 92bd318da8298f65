// A small synchronous C++ client of attention.v1.AttentionService and grpc.health.v1: one
// channel, calls with a deadline, results as absl::Status carrying the gRPC code and message.
// Thread-safe (gRPC stubs are).
#ifndef ATTNSERVE_CLIENT_ATTENTION_CLIENT_H_
#define ATTNSERVE_CLIENT_ATTENTION_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "attention/v1/attention.grpc.pb.h"
#include "grpc_health/v1/health.grpc.pb.h"

namespace attn {

// How to reach a server that uses TLS, mutual TLS or bearer tokens (all PEM contents, not
// paths). Empty root_ca = plaintext.
struct ClientSecurity {
  std::string root_ca;      // CA that signed the server's certificate
  std::string cert_chain;   // client certificate (mutual TLS)
  std::string private_key;  // its key
  std::string token;        // sent as "authorization: Bearer <token>"
};

class AttentionClient {
 public:
  // `address` is host:port; messages up to `max_message_bytes` are accepted both ways. Each
  // client opens its own connection (two clients of one address do not share it).
  explicit AttentionClient(const std::string& address, int max_message_bytes = 256 << 20,
                           absl::Duration timeout = absl::Seconds(60),
                           const ClientSecurity& security = {});

  absl::StatusOr<attention::v1::ServerInfo> GetServerInfo() const;
  // The serving status of `service` ("" = the whole server).
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CheckHealth(
      const std::string& service) const;
  absl::StatusOr<attention::v1::AttendResponse> Attend(
      const attention::v1::AttendRequest& request) const;
  // The same into `response`, whose buffers are reused (load loops).
  absl::Status Attend(const attention::v1::AttendRequest& request,
                      attention::v1::AttendResponse* response) const;
  absl::StatusOr<attention::v1::AttendResponse> MultiHeadAttend(
      const attention::v1::MultiHeadAttendRequest& request) const;
  absl::StatusOr<attention::v1::WeightsInfo> PutWeights(
      const attention::v1::PutWeightsRequest& request) const;
  absl::StatusOr<attention::v1::ListWeightsResponse> ListWeights() const;
  absl::Status DeleteWeights(const std::string& name) const;

  // KV-cache sessions (docs/sessions.md). Each call sends its session id in the attn-session-id
  // metadata too, the route a load balancer in front of replicas hashes; CreateSession needs
  // the id drawn by the caller for that (NewSessionId).
  absl::StatusOr<attention::v1::Session> CreateSession(
      const attention::v1::CreateSessionRequest& request) const;
  absl::StatusOr<attention::v1::SessionAttendResponse> SessionAttend(
      const attention::v1::SessionAttendRequest& request) const;
  absl::Status CloseSession(const std::string& session_id) const;
  absl::StatusOr<attention::v1::Session> TruncateSession(const std::string& session_id,
                                                         int64_t tokens) const;
  // 128 random bits as 32 lowercase hex digits.
  static std::string NewSessionId();

 private:
  // One unary call of `method` on the service stub with this client's deadline (and
  // `session_id` in the attn-session-id metadata when not empty).
  template <typename Request, typename Response, typename Method>
  absl::StatusOr<Response> Call(Method method, const Request& request,
                                const std::string& session_id = "") const;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<attention::v1::AttentionService::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  absl::Duration timeout_;
  std::string token_;

  // A context with this client's deadline and token.
  std::unique_ptr<grpc::ClientContext> NewContext() const;
};

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_ATTENTION_CLIENT_H_
