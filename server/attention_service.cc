// attention.v1.AttentionService on the callback API (see attention_service.h).
#include "server/attention_service.h"

#include <chrono>
#include <future>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/attend_call.h"
#include "server/attend_stream.h"
#include "server/attend_wire.h"
#include "server/call_report.h"
#include "server/metrics.h"
#include "server/multi_head_call.h"
#include "server/multi_head_session_call.h"
#include "server/session_routing.h"
#include "server/request_id.h"
#include "server/request_log.h"
#include "server/status_convert.h"
#include "server/weights_proto.h"
#include "src/engine/bf16_matmuls.h"
#include "src/runtime/cpu_tier.h"

namespace attn {
namespace {

namespace pb = attention::v1;

}  // namespace

AttentionService::AttentionService(const AttentionEngine& engine, const MultiHeadAttention& layer,
                                   WeightRegistry& registry, SessionStore& sessions,
                                   Executor& executor, AttendLimits limits, Admission admission)
    : engine_(engine),
      layer_(layer),
      registry_(registry),
      sessions_(sessions),
      executor_(executor),
      limits_(limits),
      gate_(admission.max_inflight, admission.max_queue),
      budget_(admission.memory_budget_bytes) {}

grpc::Status AttentionService::RunNow(Job& job, absl::Time received) {
  const absl::Time started = absl::Now();
  // Asked before computing and between chunks: the caller still wants the answer.
  const auto cancelled = job.cancelled;
  const absl::Time deadline = job.deadline;
  CallContext call;
  call.stop = [cancelled, deadline]() -> absl::Status {
    // (gRPC also reports a call whose deadline passed as cancelled: deadline first.)
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("the deadline passed");
    if (cancelled && cancelled()) return absl::CancelledError("the call was cancelled");
    return absl::OkStatus();
  };
  absl::Status status = call.stop();
  if (!status.ok()) {
    status = absl::Status(status.code(), absl::StrCat(status.message(), " before computing"));
  } else {
    status = budget_.Acquire(job.working_bytes, deadline);
    if (status.ok()) {
      status = job.work(&call);
      budget_.Release(job.working_bytes);
    }
  }
  const grpc::Status result = ToGrpcStatus(status);
  const int64_t queue_us = absl::ToInt64Microseconds(started - received);
  const int64_t compute_us = absl::ToInt64Microseconds(absl::Now() - started);
  if (result.ok() && job.timing != nullptr) {
    job.timing->set_queue_us(queue_us);
    job.timing->set_compute_us(compute_us);
  }
  Report(job.peer, job.method, job.trace, job.describe(), result, received, queue_us, compute_us,
         call.flops, *job.request, job.response);
  return result;
}

void AttentionService::Execute(Job job, absl::AnyInvocable<void(const grpc::Status&) &&> finish) {
  const absl::Time received = absl::Now();
  absl::Status admitted = job.authorized;
  if (admitted.ok()) admitted = gate_.Admit();
  if (!admitted.ok()) {
    const grpc::Status refused = ToGrpcStatus(admitted);
    Report(job.peer, job.method, job.trace, job.describe(), refused, received, 0, 0, 0,
           *job.request, nullptr);
    std::move(finish)(refused);
    return;
  }
  std::unique_lock<std::mutex> in_order;
  if (job.on_submit) {
    in_order = std::unique_lock(submit_mu_);
    auto on_submit = std::move(job.on_submit);
    on_submit(job);
  }
  executor_.Submit([this, job = std::move(job), finish = std::move(finish), received]() mutable {
    const grpc::Status status = RunNow(job, received);
    executor_.FinishedComputing();
    std::move(finish)(status);
    gate_.Release();
  });
}

AttentionService::Job AttentionService::GrpcJob(grpc::CallbackServerContext* context,
                                                const char* method,
                                                absl::AnyInvocable<std::string() const> describe,
                                                const google::protobuf::Message& request,
                                                const google::protobuf::Message* response,
                                                pb::Timing* timing, int64_t working_bytes,
                                                Work work) {
  return Job{.method = method,
             .peer = context->peer(),
             .trace = StartTrace(context),
             .describe = std::move(describe),
             .request = &request,
             .response = response,
             .timing = timing,
             .working_bytes = working_bytes,
             .deadline = absl::FromChrono(context->deadline()),
             .cancelled = [context] { return context->IsCancelled(); },
             .authorized = Authorize(context),
             .work = std::move(work)};
}

grpc::ServerUnaryReactor* AttentionService::RunOnWorker(Job job,
                                                        grpc::CallbackServerContext* context) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Execute(std::move(job), [reactor](const grpc::Status& status) { reactor->Finish(status); });
  return reactor;
}

grpc::Status AttentionService::RunBlocking(Job job) {
  std::promise<grpc::Status> result;
  Execute(std::move(job), [&](const grpc::Status& status) { result.set_value(status); });
  return result.get_future().get();
}

absl::Status AttentionService::Authorize(const std::optional<std::string>& authorization) const {
  return auth_ == nullptr ? absl::OkStatus() : auth_->Check(authorization);
}

absl::Status AttentionService::Authorize(grpc::CallbackServerContext* context) const {
  if (auth_ == nullptr) return absl::OkStatus();
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return auth_->Check(std::nullopt);
  return auth_->Check(std::string(it->second.data(), it->second.size()));
}

grpc::Status AttentionService::AttendBlocking(const RequestTrace& trace, const std::string& peer,
                                              const std::optional<std::string>& authorization,
                                              const pb::AttendRequest& request,
                                              pb::AttendResponse* response) {
  return RunBlocking(Job{
      .method = "Attend",
      .peer = peer,
      .trace = trace,
      .describe = [&request] { return DescribeAttendRequest(request); },
      .request = &request,
      .response = response,
      .timing = response->mutable_timing(),
      .working_bytes = EstimateAttendBytes(request, executor_.intra_op_threads()),
      .deadline = absl::InfiniteFuture(),
      .cancelled = {},
      .authorized = Authorize(authorization),
      .work = [this, &request, response](CallContext* call) {
        return RunAttend(request, limits_, engine_, response, call);
      }});
}

grpc::Status AttentionService::MultiHeadAttendBlocking(const RequestTrace& trace,
                                                       const std::string& peer,
                                                       const std::optional<std::string>& authorization,
                                                       const pb::MultiHeadAttendRequest& request,
                                                       pb::AttendResponse* response) {
  return RunBlocking(Job{
      .method = "MultiHeadAttend",
      .peer = peer,
      .trace = trace,
      .describe = [&request] { return DescribeMultiHeadRequest(request); },
      .request = &request,
      .response = response,
      .timing = response->mutable_timing(),
      .working_bytes =
          EstimateMultiHeadBytes(request, registry_, executor_.intra_op_threads()),
      .deadline = absl::InfiniteFuture(),
      .cancelled = {},
      .authorized = Authorize(authorization),
      .work = [this, &request, response](CallContext* call) {
        return RunMultiHeadAttend(request, limits_, layer_, registry_, response, call);
      }});
}

template <typename Request>
grpc::ServerUnaryReactor* AttentionService::RunRawOnWorker(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes,
    absl::FunctionRef<Job(const Request&, pb::AttendResponse&)> make_job) {
  // The call's messages, kept until the worker has finished it.
  struct Messages {
    Request request;
    pb::AttendResponse response;
  };
  auto messages = std::make_shared<Messages>();
  const absl::Status parsed = ParseRequest(*request_bytes, &messages->request);
  Job job = make_job(messages->request, messages->response);
  // Bytes that are not a Request are refused (and logged) like an unauthorized call, after it.
  if (job.authorized.ok()) job.authorized = parsed;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Execute(std::move(job),
          [reactor, messages, response_bytes](const grpc::Status& status) {
            if (status.ok()) *response_bytes = SerializeMovingTensorData(messages->response);
            reactor->Finish(status);
          });
  return reactor;
}

grpc::ServerUnaryReactor* AttentionService::Attend(grpc::CallbackServerContext* context,
                                                   const grpc::ByteBuffer* request_bytes,
                                                   grpc::ByteBuffer* response_bytes) {
  return RunRawOnWorker<pb::AttendRequest>(
      context, request_bytes, response_bytes,
      [&](const pb::AttendRequest& request, pb::AttendResponse& response) {
        return GrpcJob(context, "Attend", [&request] { return DescribeAttendRequest(request); },
                       request, &response, response.mutable_timing(),
                       EstimateAttendBytes(request, executor_.intra_op_threads()),
                       [this, &request, &response](CallContext* call) {
                         return RunAttend(request, limits_, engine_, &response, call);
                       });
      });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AttentionService::AttendStream(
    grpc::CallbackServerContext* context) {
  if (absl::Status authorized = Authorize(context); !authorized.ok()) {
    return new RefusedStream(ToGrpcStatus(authorized));
  }
  return new ::attn::AttendStream(
      context, gate_, executor_,
      [this, trace = StartTrace(context)](grpc::CallbackServerContext* call,
                                          const pb::AttendRequest& request,
                                          pb::AttendResponse* response, absl::Time received) {
        Job job{.method = "AttendStream",
                .peer = call->peer(),
                .trace = trace,
                .describe = [&request] { return DescribeAttendRequest(request); },
                .request = &request,
                .response = response,
                .timing = response->mutable_timing(),
                .working_bytes = EstimateAttendBytes(request, executor_.intra_op_threads()),
                .deadline = absl::FromChrono(call->deadline()),
                .cancelled = [call] { return call->IsCancelled(); },
                .authorized = absl::OkStatus(),  // the stream was authorized when it opened
                .work = [this, &request, response](CallContext* compute) {
                  return RunAttend(request, limits_, engine_, response, compute);
                }};
        return RunNow(job, received);
      });
}

grpc::ServerUnaryReactor* AttentionService::MultiHeadAttend(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  return RunRawOnWorker<pb::MultiHeadAttendRequest>(
      context, request_bytes, response_bytes,
      [&](const pb::MultiHeadAttendRequest& request, pb::AttendResponse& response) {
        Job job = GrpcJob(
            context, "MultiHeadAttend", [&request] { return DescribeMultiHeadRequest(request); },
            request, &response, response.mutable_timing(),
            EstimateMultiHeadBytes(request, registry_, executor_.intra_op_threads()),
            [this, &request, &response](CallContext* call) {
              return RunMultiHeadAttend(request, limits_, layer_, registry_, &response, call);
            });
        if (!request.session_id().empty()) OnSession(context, request, response, job);
        return job;
      });
}

void AttentionService::AttendFor(grpc::CallbackServerContext* context, const char* method,
                                 const pb::AttendRequest& request, pb::AttendResponse* response,
                                 const absl::Status& refused,
                                 absl::AnyInvocable<void(const grpc::Status&) &&> done) {
  Job job = GrpcJob(context, method, [&request] { return DescribeAttendRequest(request); },
                    request, response, response->mutable_timing(),
                    EstimateAttendBytes(request, executor_.intra_op_threads()),
                    [this, &request, response](CallContext* call) {
                      return RunAttend(request, limits_, engine_, response, call);
                    });
  if (job.authorized.ok()) job.authorized = refused;
  Execute(std::move(job), std::move(done));
}

void AttentionService::MultiHeadAttendFor(grpc::CallbackServerContext* context,
                                          const char* method,
                                          const pb::MultiHeadAttendRequest& request,
                                          pb::AttendResponse* response, const absl::Status& refused,
                                          absl::AnyInvocable<void(const grpc::Status&) &&> done) {
  Job job = GrpcJob(context, method, [&request] { return DescribeMultiHeadRequest(request); },
                    request, response, response->mutable_timing(),
                    EstimateMultiHeadBytes(request, registry_, executor_.intra_op_threads()),
                    [this, &request, response](CallContext* call) {
                      return RunMultiHeadAttend(request, limits_, layer_, registry_, response,
                                                call);
                    });
  if (job.authorized.ok()) job.authorized = refused;
  Execute(std::move(job), std::move(done));
}

void AttentionService::OnSession(grpc::CallbackServerContext* context,
                                 const pb::MultiHeadAttendRequest& request,
                                 pb::AttendResponse& response, Job& job) {
  if (job.authorized.ok()) {
    job.authorized = CheckRouting(RoutingHeader(context), request.session_id(), false,
                                  "session_id");
  }
  // The session leased and in line as the job is handed to the workers (as SessionAttend's).
  auto turns = std::make_shared<std::unique_ptr<SessionTurns>>();
  job.on_submit = [this, turns, &request, owner = OwnerOf(context)](Job&) {
    const std::string* ids[] = {&request.session_id()};
    *turns = std::make_unique<SessionTurns>(sessions_, ids, owner, false);
  };
  job.work = [this, turns, &request, &response,
              deadline = job.deadline](CallContext* call) -> absl::Status {
    SessionTurns& held = **turns;
    if (!held.status().ok()) return held.status();
    if (absl::Status s = held.Wait(deadline); !s.ok()) return s;
    absl::Status status = RunMultiHeadSessionStep(request, limits_, layer_, registry_, held,
                                                  sessions_, engine_, &response, call);
    turns->reset();  // the session's next step may go
    return status;
  };
}

grpc::ServerUnaryReactor* AttentionService::PutWeights(grpc::CallbackServerContext* context,
                                                       const pb::PutWeightsRequest* request,
                                                       pb::WeightsInfo* response) {
  return RunOnWorker(GrpcJob(
      context, "PutWeights", [request] { return absl::StrCat("name=", request->name()); },
      *request, response, nullptr, 0, [this, request, response](CallContext*) -> absl::Status {
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
      }), context);
}

grpc::ServerUnaryReactor* AttentionService::ListWeights(grpc::CallbackServerContext* context,
                                                        const pb::ListWeightsRequest* request,
                                                        pb::ListWeightsResponse* response) {
  const absl::Time received = absl::Now();
  const RequestTrace trace = StartTrace(context);
  const grpc::Status status = ToGrpcStatus(Authorize(context));
  if (status.ok()) {
    for (const auto& [name, weights] : registry_.List()) {
      FillWeightsInfo(name, *weights, response->add_weights());
    }
  }
  Report(context->peer(), "ListWeights", trace, "", status, received, 0, 0, 0, *request, response);
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* AttentionService::DeleteWeights(grpc::CallbackServerContext* context,
                                                          const pb::DeleteWeightsRequest* request,
                                                          pb::DeleteWeightsResponse*) {
  const absl::Time received = absl::Now();
  const RequestTrace trace = StartTrace(context);
  absl::Status deleted = Authorize(context);
  if (deleted.ok()) deleted = registry_.Delete(request->name());
  const grpc::Status status = ToGrpcStatus(deleted);
  Report(context->peer(), "DeleteWeights", trace, absl::StrCat("name=", request->name()), status,
         received, 0, 0, 0, *request, nullptr);
  return FinishNow(context, status);
}

grpc::ServerUnaryReactor* AttentionService::GetServerInfo(grpc::CallbackServerContext* context,
                                                          const pb::GetServerInfoRequest*,
                                                          pb::ServerInfo* response) {
  if (absl::Status authorized = Authorize(context); !authorized.ok()) {
    return FinishNow(context, ToGrpcStatus(authorized));
  }
  response->set_version(ATTNSERVE_VERSION);
  response->set_onednn_version(AttentionEngine::OneDnnVersion());
  response->set_onednn_isa(AttentionEngine::OneDnnIsa());
  response->set_workers(executor_.workers());
  response->set_intra_op_threads(executor_.intra_op_threads());
  response->set_max_message_bytes(limits_.max_message_bytes);
  response->set_max_elements(limits_.max_elements);
  response->set_cpu_tier(CpuTierName(ActiveCpuTier()));
  response->add_native_compute_dtypes(pb::DATA_TYPE_FLOAT32);
  // Attend computes in bf16 on request: natively where bf16 matmuls are chosen (bf16_matmuls.h),
  // else emulated in f32 matmuls of bf16-rounded operands.
  if (ActiveBf16Matmuls() == Bf16Matmuls::kNative) {
    response->add_native_compute_dtypes(pb::DATA_TYPE_BFLOAT16);
  }
  for (pb::DataType dtype : {pb::DATA_TYPE_FLOAT32, pb::DATA_TYPE_BFLOAT16, pb::DATA_TYPE_FLOAT16}) {
    response->add_input_dtypes(dtype);
    response->add_output_dtypes(dtype);
  }
  return FinishNow(context, grpc::Status::OK);
}

}  // namespace attn
