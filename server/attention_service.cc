// attention.v1.AttentionService on the callback API (see attention_service.h).
#include "server/attention_service.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/request_log.h"
#include "server/status_convert.h"

namespace attn {
namespace {

namespace pb = attention::v1;

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

grpc::Status NotYet(absl::string_view method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      absl::StrCat(method, " is not implemented yet by this server; Attend is"));
}

// Ends a bidirectional stream at once with UNIMPLEMENTED.
class UnimplementedStream
    : public grpc::ServerBidiReactor<pb::AttendRequest, pb::AttendResponse> {
 public:
  UnimplementedStream() { Finish(NotYet("AttendStream")); }
  void OnDone() override { delete this; }
};

// The status a call gets when it should not be computed at all, or OK.
grpc::Status CheckStillWanted(grpc::CallbackServerContext* context) {
  if (context->IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled before computing");
  }
  if (context->deadline() <= std::chrono::system_clock::now()) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "the deadline passed while the request was queued");
  }
  return grpc::Status::OK;
}

}  // namespace

AttentionService::AttentionService(const AttentionEngine& engine, Executor& executor,
                                   AttendLimits limits)
    : engine_(engine), executor_(executor), limits_(limits) {}

grpc::ServerUnaryReactor* AttentionService::Attend(grpc::CallbackServerContext* context,
                                                   const pb::AttendRequest* request,
                                                   pb::AttendResponse* response) {
  if (!Admit()) {
    return FinishNow(context, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                           "the server is shutting down; retry on another replica"));
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time received = absl::Now();
  executor_.Submit([this, context, request, response, reactor, received] {
    const absl::Time started = absl::Now();
    grpc::Status status = CheckStillWanted(context);
    if (status.ok()) status = ToGrpcStatus(RunAttend(*request, limits_, engine_, response));
    const absl::Time done = absl::Now();
    const int64_t queue_us = absl::ToInt64Microseconds(started - received);
    const int64_t compute_us = absl::ToInt64Microseconds(done - started);
    if (status.ok()) {
      response->mutable_timing()->set_queue_us(queue_us);
      response->mutable_timing()->set_compute_us(compute_us);
    }
    LogFields fields;
    fields.Add("method", "Attend")
        .Add("request", DescribeAttendRequest(*request))
        .Add("code", GrpcCodeName(status.error_code()))
        .Add("queue_us", queue_us)
        .Add("compute_us", compute_us)
        .Add("peer", context->peer());
    if (!status.ok()) fields.Add("error", status.error_message());
    LogEvent(status.ok() ? spdlog::level::info : spdlog::level::warn, "request", fields);
    reactor->Finish(status);
    Release();
  });
  return reactor;
}

bool AttentionService::Admit() {
  absl::MutexLock lock(&mu_);
  last_arrival_ = absl::Now();
  if (draining_) return false;
  ++running_;
  return true;
}

void AttentionService::Release() {
  absl::MutexLock lock(&mu_);
  --running_;
}

void AttentionService::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool AttentionService::WaitUntilQuiet(absl::Duration quiet, absl::Time deadline) {
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ == 0; };
  while (true) {
    absl::Time quiet_at;
    {
      absl::MutexLock lock(&mu_);
      if (!mu_.AwaitWithDeadline(absl::Condition(&idle), deadline)) return false;
      quiet_at = last_arrival_ + quiet;
    }
    const absl::Time now = absl::Now();
    if (now >= quiet_at) return true;
    if (now >= deadline) return false;
    absl::SleepFor(std::min(quiet_at, deadline) - now);
  }
}

grpc::ServerUnaryReactor* AttentionService::GetServerInfo(grpc::CallbackServerContext* context,
                                                          const pb::GetServerInfoRequest*,
                                                          pb::ServerInfo* response) {
  response->set_version(ATTNSERVE_VERSION);
  response->set_onednn_version(AttentionEngine::OneDnnVersion());
  response->set_onednn_isa(AttentionEngine::OneDnnIsa());
  response->set_workers(executor_.workers());
  response->set_intra_op_threads(executor_.intra_op_threads());
  response->set_max_message_bytes(limits_.max_message_bytes);
  response->set_max_elements(limits_.max_elements);
  response->add_native_compute_dtypes(pb::DATA_TYPE_FLOAT32);
  for (pb::DataType dtype : {pb::DATA_TYPE_FLOAT32, pb::DATA_TYPE_BFLOAT16, pb::DATA_TYPE_FLOAT16}) {
    response->add_input_dtypes(dtype);
    response->add_output_dtypes(dtype);
  }
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AttentionService::MultiHeadAttend(grpc::CallbackServerContext* context,
                                                            const pb::MultiHeadAttendRequest*,
                                                            pb::AttendResponse*) {
  return FinishNow(context, NotYet("MultiHeadAttend"));
}

grpc::ServerBidiReactor<pb::AttendRequest, pb::AttendResponse>* AttentionService::AttendStream(
    grpc::CallbackServerContext*) {
  return new UnimplementedStream();
}

grpc::ServerUnaryReactor* AttentionService::PutWeights(grpc::CallbackServerContext* context,
                                                       const pb::PutWeightsRequest*,
                                                       pb::WeightsInfo*) {
  return FinishNow(context, NotYet("PutWeights"));
}

grpc::ServerUnaryReactor* AttentionService::ListWeights(grpc::CallbackServerContext* context,
                                                        const pb::ListWeightsRequest*,
                                                        pb::ListWeightsResponse*) {
  return FinishNow(context, NotYet("ListWeights"));
}

grpc::ServerUnaryReactor* AttentionService::DeleteWeights(grpc::CallbackServerContext* context,
                                                          const pb::DeleteWeightsRequest*,
                                                          pb::DeleteWeightsResponse*) {
  return FinishNow(context, NotYet("DeleteWeights"));
}

}  // namespace attn
