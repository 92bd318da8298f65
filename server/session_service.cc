// AttentionService's KV-cache session methods (see attention_service.h and docs/sessions.md):
// the management calls answer on the reactor thread (they only touch the store); the steps run
// on the workers, their sessions leased and put in line as they are handed over.
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/attend_stream.h"
#include "server/attend_wire.h"
#include "server/attention_service.h"
#include "server/call_report.h"
#include "server/session_call.h"
#include "server/session_proto.h"
#include "server/session_routing.h"
#include "server/status_convert.h"
#include "src/kv/session_store.h"

namespace attn {
namespace {

namespace pb = attention::v1;

// The sessions a call's steps name, for SessionTurns.
std::vector<const std::string*> SessionIds(
    std::span<const pb::SessionAttendRequest* const> requests) {
  std::vector<const std::string*> ids;
  for (const pb::SessionAttendRequest* r : requests) ids.push_back(&r->session_id());
  return ids;
}

}  // namespace

std::string AttentionService::OwnerOf(grpc::CallbackServerContext* context) const {
  if (auth_ == nullptr) return "";
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  return it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
}

grpc::ServerUnaryReactor* AttentionService::RunSessionCall(
    grpc::CallbackServerContext* context, const char* method, std::string description,
    const google::protobuf::Message& request, const google::protobuf::Message* response,
    absl::FunctionRef<absl::Status(const std::string& owner)> body) {
  const absl::Time received = absl::Now();
  const RequestTrace trace = StartTrace(context);
  absl::Status status = Authorize(context);
  if (status.ok()) status = body(OwnerOf(context));
  const grpc::Status result = ToGrpcStatus(status);
  Report(context->peer(), method, trace, description, result, received, 0, 0, 0, request,
         result.ok() ? response : nullptr);
  return FinishNow(context, result);
}

grpc::ServerUnaryReactor* AttentionService::CreateSession(grpc::CallbackServerContext* context,
                                                          const pb::CreateSessionRequest* request,
                                                          pb::Session* response) {
  // The log line names the session when the client drew a valid id (the server's own is not
  // yet drawn).
  const std::string named = SessionStore::IsSessionId(request->session_id())
                                ? absl::StrCat("session=", request->session_id(), " ")
                                : "";
  return RunSessionCall(
      context, "CreateSession",
      absl::StrCat(named, "layers=", request->num_layers(), " heads=", request->num_heads(), "/",
                   request->num_kv_heads(), " dims=", request->head_dim(), "/",
                   request->value_dim(), " kv_dtype=", pb::DataType_Name(request->kv_dtype())),
      *request, response, [&](const std::string& owner) -> absl::Status {
        absl::StatusOr<SessionConfig> config = SessionConfigFromProto(*request);
        if (!config.ok()) return config.status();
        // A client routing by id sends it in the header, the message, or both (then equal).
        const std::string header = RoutingHeader(context);
        const std::string& id = request->session_id().empty() ? header : request->session_id();
        if (absl::Status s = CheckRouting(header, id, false, "session_id"); !s.ok()) return s;
        absl::StatusOr<SessionInfo> info = sessions_.Create(*config, owner, id);
        if (!info.ok()) return info.status();
        FillSession(*info, response);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AttentionService::GetSession(grpc::CallbackServerContext* context,
                                                       const pb::GetSessionRequest* request,
                                                       pb::Session* response) {
  return RunSessionCall(context, "GetSession", absl::StrCat("session=", request->session_id()),
                        *request, response, [&](const std::string& owner) -> absl::Status {
                          if (absl::Status s = CheckRouting(RoutingHeader(context),
                                                            request->session_id(), false,
                                                            "session_id");
                              !s.ok()) {
                            return s;
                          }
                          absl::StatusOr<SessionInfo> info =
                              sessions_.Get(request->session_id(), owner);
                          if (!info.ok()) return info.status();
                          FillSession(*info, response);
                          return absl::OkStatus();
                        });
}

grpc::ServerUnaryReactor* AttentionService::ListSessions(grpc::CallbackServerContext* context,
                                                         const pb::ListSessionsRequest* request,
                                                         pb::ListSessionsResponse* response) {
  return RunSessionCall(context, "ListSessions", "", *request, response,
                        [&](const std::string& owner) {
                          for (const SessionInfo& info : sessions_.List(owner)) {
                            FillSession(info, response->add_sessions());
                          }
                          return absl::OkStatus();
                        });
}

grpc::ServerUnaryReactor* AttentionService::CloseSession(grpc::CallbackServerContext* context,
                                                         const pb::CloseSessionRequest* request,
                                                         pb::CloseSessionResponse* response) {
  return RunSessionCall(context, "CloseSession", absl::StrCat("session=", request->session_id()),
                        *request, response, [&](const std::string& owner) {
                          absl::Status s = CheckRouting(RoutingHeader(context),
                                                        request->session_id(), false,
                                                        "session_id");
                          return s.ok() ? sessions_.Close(request->session_id(), owner) : s;
                        });
}

grpc::ServerUnaryReactor* AttentionService::ForkSession(grpc::CallbackServerContext* context,
                                                        const pb::ForkSessionRequest* request,
                                                        pb::Session* response) {
  return RunSessionCall(
      context, "ForkSession",
      absl::StrCat("session=", request->session_id(),
                   request->has_tokens() ? absl::StrCat(" tokens=", request->tokens()) : ""),
      *request, response, [&](const std::string& owner) -> absl::Status {
        if (absl::Status s =
                CheckRouting(RoutingHeader(context), request->session_id(), false, "session_id");
            !s.ok()) {
          return s;
        }
        absl::StatusOr<SessionInfo> info = sessions_.Fork(
            request->session_id(),
            request->has_tokens() ? std::optional<int64_t>(request->tokens()) : std::nullopt,
            owner);
        if (!info.ok()) return info.status();
        FillSession(*info, response);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AttentionService::TruncateSession(
    grpc::CallbackServerContext* context, const pb::TruncateSessionRequest* request,
    pb::Session* response) {
  return RunSessionCall(
      context, "TruncateSession",
      absl::StrCat("session=", request->session_id(), " tokens=", request->tokens()), *request,
      response, [&](const std::string& owner) -> absl::Status {
        if (absl::Status s =
                CheckRouting(RoutingHeader(context), request->session_id(), false, "session_id");
            !s.ok()) {
          return s;
        }
        absl::StatusOr<SessionInfo> info =
            sessions_.Truncate(request->session_id(), request->tokens(), owner);
        if (!info.ok()) return info.status();
        FillSession(*info, response);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AttentionService::SessionAttend(grpc::CallbackServerContext* context,
                                                          const grpc::ByteBuffer* request_bytes,
                                                          grpc::ByteBuffer* response_bytes) {
  return RunSessionSteps(context, request_bytes, response_bytes, /*batch=*/false);
}

grpc::ServerUnaryReactor* AttentionService::SessionAttendBatch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
    grpc::ByteBuffer* response_bytes) {
  return RunSessionSteps(context, request_bytes, response_bytes, /*batch=*/true);
}

grpc::ServerUnaryReactor* AttentionService::RunSessionSteps(grpc::CallbackServerContext* context,
                                                            const grpc::ByteBuffer* request_bytes,
                                                            grpc::ByteBuffer* response_bytes,
                                                            bool batch) {
  // The call's messages and turns, kept until the worker has finished it.
  struct Call {
    pb::SessionAttendRequest step;
    pb::SessionAttendBatchRequest steps;
    std::vector<const pb::SessionAttendRequest*> requests;
    std::vector<SessionAnswer> answers;
    std::unique_ptr<SessionTurns> turns;
  };
  auto call = std::make_shared<Call>();
  const absl::Status parsed =
      ParseRequest(*request_bytes, batch ? static_cast<google::protobuf::MessageLite*>(&call->steps)
                                         : &call->step);
  if (batch) {
    for (const pb::SessionAttendRequest& step : call->steps.steps()) {
      call->requests.push_back(&step);
    }
  } else {
    call->requests.push_back(&call->step);
  }
  call->answers.resize(call->requests.size());
  const google::protobuf::Message& request =
      batch ? static_cast<const google::protobuf::Message&>(call->steps) : call->step;
  Job job{.method = batch ? "SessionAttendBatch" : "SessionAttend",
          .peer = context->peer(),
          .trace = StartTrace(context),
          .describe =
              [call, batch] {
                return batch ? absl::StrCat("steps=", call->requests.size())
                             : DescribeSessionStep(call->step);
              },
          .request = &request,
          .response = call->answers.empty() ? nullptr : &call->answers[0].tensors,
          // (a batch's answers carry no timing: the batch is timed as one call)
          .timing = batch ? nullptr : call->answers[0].tensors.mutable_timing(),
          .working_bytes = 0,  // estimated when the sessions are leased (on_submit)
          .deadline = absl::FromChrono(context->deadline()),
          .cancelled = [context] { return context->IsCancelled(); },
          .authorized = Authorize(context),
          .work = [this, call, batch,
                   deadline = absl::FromChrono(context->deadline())](CallContext* compute)
              -> absl::Status {
            if (!call->turns->status().ok()) return call->turns->status();
            if (batch && call->requests.empty()) {
              return absl::InvalidArgumentError("steps is empty");
            }
            if (absl::Status s = call->turns->Wait(deadline); !s.ok()) return s;
            std::vector<SessionAnswer*> answers;
            for (SessionAnswer& answer : call->answers) answers.push_back(&answer);
            return ::attn::RunSessionSteps(call->requests, *call->turns, sessions_, engine_,
                                           limits_, answers, compute, batch);
          }};
  if (job.authorized.ok()) job.authorized = parsed;
  const std::string header = RoutingHeader(context);
  for (size_t i = 0; i < call->requests.size() && job.authorized.ok(); ++i) {
    job.authorized = CheckRouting(header, call->requests[i]->session_id(), batch,
                                  batch ? absl::StrCat("steps[", i, "].session_id")
                                        : std::string("session_id"));
  }
  // Leased and in line as the job is handed to the workers (in the order jobs are).
  job.on_submit = [this, call, batch, context](Job& submitted) {
    call->turns = std::make_unique<SessionTurns>(sessions_, SessionIds(call->requests),
                                                 OwnerOf(context), batch);
    submitted.working_bytes = call->turns->EstimateBytes(call->requests);
  };
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Execute(std::move(job), [reactor, call, response_bytes, batch](const grpc::Status& status) {
    if (status.ok()) {
      std::vector<grpc::ByteBuffer> results;
      for (SessionAnswer& answer : call->answers) {
        results.push_back(SerializeSessionAttendResponse(answer.tensors, answer.position,
                                                         answer.first_position));
      }
      *response_bytes = batch ? SerializeSessionAttendBatch(results) : std::move(results[0]);
    }
    call->turns.reset();  // the session's next step may go
    reactor->Finish(status);
  });
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
AttentionService::SessionAttendStream(grpc::CallbackServerContext* context) {
  if (absl::Status authorized = Authorize(context); !authorized.ok()) {
    return new RefusedStream(ToGrpcStatus(authorized));
  }
  using Stream = ComputeStream<pb::SessionAttendRequest, SessionAnswer>;
  return new Stream(
      context, gate_, executor_,
      [this, trace = StartTrace(context), owner = OwnerOf(context),
       header = RoutingHeader(context)](
          grpc::CallbackServerContext* stream, const pb::SessionAttendRequest& request,
          SessionAnswer* answer, absl::Time received) {
        // The stream's steps come one at a time: each takes its turn as it starts.
        const pb::SessionAttendRequest* requests[] = {&request};
        SessionTurns turns(sessions_, SessionIds(requests), owner, false);
        SessionAnswer* answers[] = {answer};
        Job job{.method = "SessionAttendStream",
                .peer = stream->peer(),
                .trace = trace,
                .describe = [&request] { return DescribeSessionStep(request); },
                .request = &request,
                .response = &answer->tensors,
                .timing = answer->tensors.mutable_timing(),
                .working_bytes = turns.EstimateBytes(requests),
                .deadline = absl::FromChrono(stream->deadline()),
                .cancelled = [stream] { return stream->IsCancelled(); },
                .authorized = absl::OkStatus(),  // the stream was authorized when it opened
                .work = [&](CallContext* compute) -> absl::Status {
                  if (absl::Status s =
                          CheckRouting(header, request.session_id(), false, "session_id");
                      !s.ok()) {
                    return s;
                  }
                  if (!turns.status().ok()) return turns.status();
                  const absl::Time deadline = absl::FromChrono(stream->deadline());
                  if (absl::Status s = turns.Wait(deadline); !s.ok()) return s;
                  return ::attn::RunSessionSteps(requests, turns, sessions_, engine_, limits_,
                                                 answers, compute, false);
                }};
        return RunNow(job, received);
      });
}

}  // namespace attn
