// attention.v1.AttentionService on the callback API (see attention_service.h).
#include "server/attention_service.h"

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/attend_call.h"
#include "server/attend_stream.h"
#include "server/multi_head_call.h"
#include "server/request_log.h"
#include "server/status_convert.h"
#include "server/weights_proto.h"

namespace attn {
namespace {

namespace pb = attention::v1;

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE,
                                 "the server is shutting down; retry on another replica");

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

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

void LogRequest(grpc::CallbackServerContext* context, const char* method,
                const std::string& description, const grpc::Status& status, int64_t queue_us,
                int64_t compute_us) {
  LogFields fields;
  fields.Add("method", method)
      .Add("request", description)
      .Add("code", GrpcCodeName(status.error_code()))
      .Add("queue_us", queue_us)
      .Add("compute_us", compute_us)
      .Add("peer", context->peer());
  if (!status.ok()) fields.Add("error", status.error_message());
  LogEvent(status.ok() ? spdlog::level::info : spdlog::level::warn, "request", fields);
}

}  // namespace

AttentionService::AttentionService(const AttentionEngine& engine, const MultiHeadAttention& layer,
                                   WeightRegistry& registry, Executor& executor,
                                   AttendLimits limits)
    : engine_(engine), layer_(layer), registry_(registry), executor_(executor), limits_(limits) {}

grpc::ServerUnaryReactor* AttentionService::RunOnWorker(
    grpc::CallbackServerContext* context, const char* method,
    absl::AnyInvocable<std::string() const> describe, pb::Timing* timing,
    absl::AnyInvocable<absl::Status()> work) {
  if (!gate_.Admit()) return FinishNow(context, kShuttingDown);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time received = absl::Now();
  executor_.Submit([this, context, method, describe = std::move(describe), timing,
                    work = std::move(work), reactor, received]() mutable {
    const absl::Time started = absl::Now();
    grpc::Status status = CheckStillWanted(context);
    if (status.ok()) status = ToGrpcStatus(work());
    const int64_t queue_us = absl::ToInt64Microseconds(started - received);
    const int64_t compute_us = absl::ToInt64Microseconds(absl::Now() - started);
    if (status.ok() && timing != nullptr) {
      timing->set_queue_us(queue_us);
      timing->set_compute_us(compute_us);
    }
    LogRequest(context, method, describe(), status, queue_us, compute_us);
    reactor->Finish(status);
    gate_.Release();
  });
  return reactor;
}

grpc::ServerUnaryReactor* AttentionService::Attend(grpc::CallbackServerContext* context,
                                                   const pb::AttendRequest* request,
                                                   pb::AttendResponse* response) {
  return RunOnWorker(
      context, "Attend", [request] { return DescribeAttendRequest(*request); },
      response->mutable_timing(),
      [this, request, response] { return RunAttend(*request, limits_, engine_, response); });
}

grpc::Status AttentionService::ComputeAttend(grpc::CallbackServerContext* context,
                                             const pb::AttendRequest& request,
                                             pb::AttendResponse* response, absl::Time received) {
  const absl::Time started = absl::Now();
  grpc::Status status = CheckStillWanted(context);
  if (status.ok()) status = ToGrpcStatus(RunAttend(request, limits_, engine_, response));
  const int64_t queue_us = absl::ToInt64Microseconds(started - received);
  const int64_t compute_us = absl::ToInt64Microseconds(absl::Now() - started);
  if (status.ok()) {
    response->mutable_timing()->set_queue_us(queue_us);
    response->mutable_timing()->set_compute_us(compute_us);
  }
  LogRequest(context, "AttendStream", DescribeAttendRequest(request), status, queue_us,
             compute_us);
  return status;
}

grpc::ServerBidiReactor<pb::AttendRequest, pb::AttendResponse>* AttentionService::AttendStream(
    grpc::CallbackServerContext* context) {
  return new ::attn::AttendStream(
      context, gate_, executor_,
      [this](grpc::CallbackServerContext* call, const pb::AttendRequest& request,
             pb::AttendResponse* response, absl::Time received) {
        return ComputeAttend(call, request, response, received);
      });
}

grpc::ServerUnaryReactor* AttentionService::MultiHeadAttend(
    grpc::CallbackServerContext* context, const pb::MultiHeadAttendRequest* request,
    pb::AttendResponse* response) {
  return RunOnWorker(
      context, "MultiHeadAttend", [request] { return DescribeMultiHeadRequest(*request); },
      response->mutable_timing(), [this, request, response] {
        return RunMultiHeadAttend(*request, limits_, layer_, registry_, response);
      });
}

grpc::ServerUnaryReactor* AttentionService::PutWeights(grpc::CallbackServerContext* context,
                                                       const pb::PutWeightsRequest* request,
                                                       pb::WeightsInfo* response) {
  return RunOnWorker(
      context, "PutWeights", [request] { return absl::StrCat("name=", request->name()); },
      nullptr, [this, request, response]() -> absl::Status {
        if (absl::Status s = WeightRegistry::CheckName("name", request->name()); !s.ok()) return s;
        if (!request->has_weights()) {
          return absl::InvalidArgumentError("weights is not set");
        }
        absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> weights =
            WeightsFromProto("weights.", request->weights(), limits_.max_elements);
        if (!weights.ok()) return weights.status();
        if (absl::Status s = registry_.Put(request->name(), *weights); !s.ok()) return s;
        FillWeightsInfo(request->name(), **weights, response);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AttentionService::ListWeights(grpc::CallbackServerContext* context,
                                                        const pb::ListWeightsRequest*,
                                                        pb::ListWeightsResponse* response) {
  for (const auto& [name, weights] : registry_.List()) {
    FillWeightsInfo(name, *weights, response->add_weights());
  }
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AttentionService::DeleteWeights(grpc::CallbackServerContext* context,
                                                          const pb::DeleteWeightsRequest* request,
                                                          pb::DeleteWeightsResponse*) {
  const grpc::Status status = ToGrpcStatus(registry_.Delete(request->name()));
  LogRequest(context, "DeleteWeights", absl::StrCat("name=", request->name()), status, 0, 0);
  return FinishNow(context, status);
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

}  // namespace attn
