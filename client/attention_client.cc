// Synchronous client of the attention service and the health service (see attention_client.h).
#include "client/attention_client.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace attn {
namespace {

absl::Status ToAbslStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace

AttentionClient::AttentionClient(const std::string& address, int max_message_bytes,
                                 absl::Duration timeout, const ClientSecurity& security)
    : timeout_(timeout), token_(security.token) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  // A connection of its own, not one shared with other clients of the same address.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!security.root_ca.empty()) {
    credentials = grpc::SslCredentials({.pem_root_certs = security.root_ca,
                                        .pem_private_key = security.private_key,
                                        .pem_cert_chain = security.cert_chain});
  }
  channel_ = grpc::CreateCustomChannel(address, credentials, args);
  stub_ = attention::v1::AttentionService::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> AttentionClient::NewContext() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  return context;
}

template <typename Request, typename Response, typename Method>
absl::StatusOr<Response> AttentionClient::Call(Method method, const Request& request,
                                               const std::string& session_id) const {
  const std::unique_ptr<grpc::ClientContext> context = NewContext();
  if (!session_id.empty()) context->AddMetadata("attn-session-id", session_id);
  Response response;
  const grpc::Status status = (stub_.get()->*method)(context.get(), request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

absl::StatusOr<attention::v1::ServerInfo> AttentionClient::GetServerInfo() const {
  return Call<attention::v1::GetServerInfoRequest, attention::v1::ServerInfo>(
      &attention::v1::AttentionService::Stub::GetServerInfo,
      attention::v1::GetServerInfoRequest());
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> AttentionClient::CheckHealth(
    const std::string& service) const {
  const std::unique_ptr<grpc::ClientContext> context = NewContext();
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = health_->Check(context.get(), request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response.status();
}

absl::StatusOr<attention::v1::AttendResponse> AttentionClient::Attend(
    const attention::v1::AttendRequest& request) const {
  return Call<attention::v1::AttendRequest, attention::v1::AttendResponse>(
      &attention::v1::AttentionService::Stub::Attend, request);
}

absl::Status AttentionClient::Attend(const attention::v1::AttendRequest& request,
                                     attention::v1::AttendResponse* response) const {
  const std::unique_ptr<grpc::ClientContext> context = NewContext();
  return ToAbslStatus(stub_->Attend(context.get(), request, response));
}

absl::StatusOr<attention::v1::AttendResponse> AttentionClient::MultiHeadAttend(
    const attention::v1::MultiHeadAttendRequest& request) const {
  return Call<attention::v1::MultiHeadAttendRequest, attention::v1::AttendResponse>(
      &attention::v1::AttentionService::Stub::MultiHeadAttend, request);
}

absl::StatusOr<attention::v1::WeightsInfo> AttentionClient::PutWeights(
    const attention::v1::PutWeightsRequest& request) const {
  return Call<attention::v1::PutWeightsRequest, attention::v1::WeightsInfo>(
      &attention::v1::AttentionService::Stub::PutWeights, request);
}

absl::StatusOr<attention::v1::ListWeightsResponse> AttentionClient::ListWeights() const {
  return Call<attention::v1::ListWeightsRequest, attention::v1::ListWeightsResponse>(
      &attention::v1::AttentionService::Stub::ListWeights, attention::v1::ListWeightsRequest());
}

absl::Status AttentionClient::DeleteWeights(const std::string& name) const {
  attention::v1::DeleteWeightsRequest request;
  request.set_name(name);
  return Call<attention::v1::DeleteWeightsRequest, attention::v1::DeleteWeightsResponse>(
             &attention::v1::AttentionService::Stub::DeleteWeights, request)
      .status();
}

absl::StatusOr<attention::v1::Session> AttentionClient::CreateSession(
    const attention::v1::CreateSessionRequest& request) const {
  return Call<attention::v1::CreateSessionRequest, attention::v1::Session>(
      &attention::v1::AttentionService::Stub::CreateSession, request, request.session_id());
}

absl::StatusOr<attention::v1::SessionAttendResponse> AttentionClient::SessionAttend(
    const attention::v1::SessionAttendRequest& request) const {
  return Call<attention::v1::SessionAttendRequest, attention::v1::SessionAttendResponse>(
      &attention::v1::AttentionService::Stub::SessionAttend, request, request.session_id());
}

absl::Status AttentionClient::CloseSession(const std::string& session_id) const {
  attention::v1::CloseSessionRequest request;
  request.set_session_id(session_id);
  return Call<attention::v1::CloseSessionRequest, attention::v1::CloseSessionResponse>(
             &attention::v1::AttentionService::Stub::CloseSession, request, session_id)
      .status();
}

absl::StatusOr<attention::v1::Session> AttentionClient::TruncateSession(
    const std::string& session_id, int64_t tokens) const {
  attention::v1::TruncateSessionRequest request;
  request.set_session_id(session_id);
  request.set_tokens(tokens);
  return Call<attention::v1::TruncateSessionRequest, attention::v1::Session>(
      &attention::v1::AttentionService::Stub::TruncateSession, request, session_id);
}

std::string AttentionClient::NewSessionId() {
  std::random_device device;
  std::string id;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&id, absl::Hex(device(), absl::kZeroPad8));
  return id;
}

}  // namespace attn
