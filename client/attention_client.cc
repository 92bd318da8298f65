// Synchronous client of the attention service and the health service (see attention_client.h).
#include "client/attention_client.h"

#include "absl/time/clock.h"

namespace attn {
namespace {

absl::Status ToAbslStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace

AttentionClient::AttentionClient(const std::string& address, int max_message_bytes,
                                 absl::Duration timeout)
    : timeout_(timeout) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  channel_ = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  stub_ = attention::v1::AttentionService::NewStub(channel_);
  health_ = grpc::health::v1::Health::NewStub(channel_);
}

absl::StatusOr<attention::v1::ServerInfo> AttentionClient::GetServerInfo() const {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  attention::v1::ServerInfo info;
  const grpc::Status status =
      stub_->GetServerInfo(&context, attention::v1::GetServerInfoRequest(), &info);
  if (!status.ok()) return ToAbslStatus(status);
  return info;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> AttentionClient::CheckHealth(
    const std::string& service) const {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = health_->Check(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response.status();
}

absl::StatusOr<attention::v1::AttendResponse> AttentionClient::Attend(
    const attention::v1::AttendRequest& request) const {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  attention::v1::AttendResponse response;
  const grpc::Status status = stub_->Attend(&context, request, &response);
  if (!status.ok()) return ToAbslStatus(status);
  return response;
}

}  // namespace attn
