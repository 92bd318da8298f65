// attention.v1.AttentionService on the callback API (see attention_service.h).
#include "server/attention_service.h"

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/attend_call.h"
#include "server/attend_stream.h"
#include "server/metrics.h"
#include "server/multi_head_call.h"
#include "server/request_id.h"
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

// One finished call: its log line (with the request id and any traceparent) and its metrics.
void Report(const std::string& peer, const char* method, const RequestTrace& trace,
            const std::string& description, const grpc::Status& status, absl::Time received,
            int64_t queue_us, int64_t compute_us, double flops,
            const google::protobuf::Message& request, const google::protobuf::Message* response) {
  LogFields fields;
  fields.Add("method", method)
      .Add("request_id", trace.request_id)
      .Add("request", description)
      .Add("code", GrpcCodeName(status.error_code()))
      .Add("queue_us", queue_us)
      .Add("compute_us", compute_us)
      .Add("peer", peer);
  if (!trace.traceparent.empty()) fields.Add("traceparent", trace.traceparent);
  if (!status.ok()) fields.Add("error", status.error_message());
  LogEvent(status.ok() ? spdlog::level::info : spdlog::level::warn, "request", fields);
  Metrics::Global().Record(
      {.method = method,
       .code = std::string(GrpcCodeName(status.error_code())),
       .request_s = absl::ToDoubleSeconds(absl::Now() - received),
       .queue_s = queue_us * 1e-6,
       .compute_s = compute_us * 1e-6,
       .flops = flops,
       .bytes_received = static_cast<int64_t>(request.ByteSizeLong()),
       .bytes_sent = status.ok() && response != nullptr
                         ? static_cast<int64_t>(response->ByteSizeLong())
                         : 0});
}

// The call's trace, with its request id echoed in the trailing metadata.
RequestTrace StartTrace(grpc::CallbackServerContext* context) {
  RequestTrace trace = TraceFromMetadata(context->client_metadata());
  context->AddTrailingMetadata("x-request-id", trace.request_id);
  return trace;
}

}  // namespace

AttentionService::AttentionService(const AttentionEngine& engine, const MultiHeadAttention& layer,
                                   WeightRegistry& registry, Executor& executor,
                                   AttendLimits limits)
    : engine_(engine), layer_(layer), registry_(registry), executor_(executor), limits_(limits) {}

grpc::ServerUnaryReactor* AttentionService::RunOnWorker(
    grpc::CallbackServerContext* context, const char* method,
    absl::AnyInvocable<std::string() const> describe, const google::protobuf::Message& request,
    const google::protobuf::Message* response, pb::Timing* timing, Work work) {
  const absl::Time received = absl::Now();
  RequestTrace trace = StartTrace(context);
  if (!gate_.Admit()) {
    Report(context->peer(), method, trace, describe(), kShuttingDown, received, 0, 0, 0, request,
           nullptr);
    return FinishNow(context, kShuttingDown);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  executor_.Submit([this, context, method, describe = std::move(describe), &request, response,
                    timing, work = std::move(work), reactor, received,
                    trace = std::move(trace)]() mutable {
    const absl::Time started = absl::Now();
    double flops = 0;
    grpc::Status status = CheckStillWanted(context);
    if (status.ok()) status = ToGrpcStatus(work(&flops));
    const int64_t queue_us = absl::ToInt64Microseconds(started - received);
    const int64_t compute_us = absl::ToInt64Microseconds(absl::Now() - started);
    if (status.ok() && timing != nullptr) {
      timing->set_queue_us(queue_us);
      timing->set_compute_us(compute_us);
    }
    Report(context->peer(), method, trace, describe(), status, received, queue_us, compute_us, flops,
           request, response);
    reactor->Finish(status);
    gate_.Release();
  });
  return reactor;
}

grpc::Status AttentionService::RunBlocking(const char* method, const std::string& description,
                                           const RequestTrace& trace, const std::string& peer,
                                           const google::protobuf::Message& request,
                                           const google::protobuf::Message* response,
                                           Work work) {
  const absl::Time received = absl::Now();
  if (!gate_.Admit()) {
    Report(peer, method, trace, description, kShuttingDown, received, 0, 0, 0, request, nullptr);
    return kShuttingDown;
  }
  absl::Notification done;
  grpc::Status status;
  int64_t queue_us = 0, compute_us = 0;
  double flops = 0;
  executor_.Submit([&] {
    const absl::Time started = absl::Now();
    status = ToGrpcStatus(work(&flops));
    queue_us = absl::ToInt64Microseconds(started - received);
    compute_us = absl::ToInt64Microseconds(absl::Now() - started);
    done.Notify();
  });
  done.WaitForNotification();
  gate_.Release();
  Report(peer, method, trace, description, status, received, queue_us, compute_us, flops, request,
         response);
  return status;
}

grpc::Status AttentionService::AttendBlocking(const RequestTrace& trace, const std::string& peer,
                                              const pb::AttendRequest& request,
                                              pb::AttendResponse* response) {
  return RunBlocking("Attend", DescribeAttendRequest(request), trace, peer, request, response,
                     [&](double* flops) {
                       return RunAttend(request, limits_, engine_, response, flops);
                     });
}

grpc::Status AttentionService::MultiHeadAttendBlocking(const RequestTrace& trace,
                                                       const std::string& peer,
                                                       const pb::MultiHeadAttendRequest& request,
                                                       pb::AttendResponse* response) {
  return RunBlocking("MultiHeadAttend", DescribeMultiHeadRequest(request), trace, peer, request,
                     response, [&](double* flops) {
                       return RunMultiHeadAttend(request, limits_, layer_, registry_, response,
                                                 flops);
                     });
}

grpc::ServerUnaryReactor* AttentionService::Attend(grpc::CallbackServerContext* context,
                                                   const pb::AttendRequest* request,
                                                   pb::AttendResponse* response) {
  return RunOnWorker(
      context, "Attend", [request] { return DescribeAttendRequest(*request); }, *request,
      response, response->mutable_timing(), [this, request, response](double* flops) {
        return RunAttend(*request, limits_, engine_, response, flops);
      });
}

grpc::Status AttentionService::ComputeAttend(grpc::CallbackServerContext* context,
                                             const RequestTrace& trace,
                                             const pb::AttendRequest& request,
                                             pb::AttendResponse* response, absl::Time received) {
  const absl::Time started = absl::Now();
  double flops = 0;
  grpc::Status status = CheckStillWanted(context);
  if (status.ok()) status = ToGrpcStatus(RunAttend(request, limits_, engine_, response, &flops));
  const int64_t queue_us = absl::ToInt64Microseconds(started - received);
  const int64_t compute_us = absl::ToInt64Microseconds(absl::Now() - started);
  if (status.ok()) {
    response->mutable_timing()->set_queue_us(queue_us);
    response->mutable_timing()->set_compute_us(compute_us);
  }
  Report(context->peer(), "AttendStream", trace, DescribeAttendRequest(request), status, received,
         queue_us, compute_us, flops, request, response);
  return status;
}

grpc::ServerBidiReactor<pb::AttendRequest, pb::AttendResponse>* AttentionService::AttendStream(
    grpc::CallbackServerContext* context) {
  return new ::attn::AttendStream(
      context, gate_, executor_,
      [this, trace = StartTrace(context)](grpc::CallbackServerContext* call,
                                          const pb::AttendRequest& request,
                                          pb::AttendResponse* response, absl::Time received) {
        return ComputeAttend(call, trace, request, response, received);
      });
}

grpc::ServerUnaryReactor* AttentionService::MultiHeadAttend(
    grpc::CallbackServerContext* context, const pb::MultiHeadAttendRequest* request,
    pb::AttendResponse* response) {
  return RunOnWorker(
      context, "MultiHeadAttend", [request] { return DescribeMultiHeadRequest(*request); },
      *request, response, response->mutable_timing(), [this, request, response](double* flops) {
        return RunMultiHeadAttend(*request, limits_, layer_, registry_, response, flops);
      });
}

grpc::ServerUnaryReactor* AttentionService::PutWeights(grpc::CallbackServerContext* context,
                                                       const pb::PutWeightsRequest* request,
                                                       pb::WeightsInfo* response) {
  return RunOnWorker(
      context, "PutWeights", [request] { return absl::StrCat("name=", request->name()); },
      *request, response, nullptr, [this, request, response](double*) -> absl::Status {
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
                                                        const pb::ListWeightsRequest* request,
                                                        pb::ListWeightsResponse* response) {
  const absl::Time received = absl::Now();
  const RequestTrace trace = StartTrace(context);
  for (const auto& [name, weights] : registry_.List()) {
    FillWeightsInfo(name, *weights, response->add_weights());
  }
  Report(context->peer(), "ListWeights", trace, "", grpc::Status::OK, received, 0, 0, 0, *request,
         response);
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AttentionService::DeleteWeights(grpc::CallbackServerContext* context,
                                                          const pb::DeleteWeightsRequest* request,
                                                          pb::DeleteWeightsResponse*) {
  const absl::Time received = absl::Now();
  const RequestTrace trace = StartTrace(context);
  const grpc::Status status = ToGrpcStatus(registry_.Delete(request->name()));
  Report(context->peer(), "DeleteWeights", trace, absl::StrCat("name=", request->name()), status,
         received, 0, 0, 0, *request, nullptr);
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
