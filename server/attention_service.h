// The attention.v1.AttentionService implementation on gRPC's callback API. Reactor threads only
// hand work to the Executor; every computation (and every weight decode) runs on its workers,
// which finish the call. Attend, MultiHeadAttend and AttendStream take their requests and
// answer as raw bytes (attend_wire.h), so that the tensors of their responses reach gRPC
// without a copy. Draining (for a graceful shutdown) refuses new calls with UNAVAILABLE while
// the calls already accepted run to the end. Thread-safe; the engine, layer, registry and
// executor must outlive the service.
#ifndef ATTNSERVE_SERVER_ATTENTION_SERVICE_H_
#define ATTNSERVE_SERVER_ATTENTION_SERVICE_H_

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "attention/v1/attention.grpc.pb.h"
#include "server/auth_tokens.h"
#include "server/call_gate.h"
#include "server/memory_budget.h"
#include "server/request_fields.h"
#include "server/request_id.h"
#include "src/engine/attention_engine.h"
#include "src/kv/session_store.h"
#include "src/layer/multi_head_attention.h"
#include "src/runtime/executor.h"
#include "src/weights/weight_registry.h"

namespace attn {

// Every method of attention.v1.AttentionService on the callback API, the attention calls (and
// the session steps) on raw bytes. Spelled out method by method (a raw streaming method cannot be layered over
// CallbackService's typed one: their signatures differ only in the return type), so a method
// added to the proto must be added here.
namespace internal {
using pb_service = attention::v1::AttentionService;
using SessionMethods = pb_service::WithCallbackMethod_CreateSession<
    pb_service::WithCallbackMethod_GetSession<pb_service::WithCallbackMethod_ListSessions<
        pb_service::WithCallbackMethod_CloseSession<pb_service::WithCallbackMethod_ForkSession<
            pb_service::WithCallbackMethod_TruncateSession<
                pb_service::WithRawCallbackMethod_SessionAttend<
                    pb_service::WithRawCallbackMethod_SessionAttendBatch<
                        pb_service::WithRawCallbackMethod_SessionAttendStream<
                            pb_service::Service>>>>>>>>>;
}  // namespace internal
using AttentionServiceBase = internal::pb_service::WithRawCallbackMethod_Attend<
    internal::pb_service::WithRawCallbackMethod_MultiHeadAttend<
        internal::pb_service::WithRawCallbackMethod_AttendStream<
            internal::pb_service::WithCallbackMethod_PutWeights<
                internal::pb_service::WithCallbackMethod_ListWeights<
                    internal::pb_service::WithCallbackMethod_DeleteWeights<
                        internal::pb_service::WithCallbackMethod_GetServerInfo<
                            internal::SessionMethods>>>>>>>;

class AttentionService final : public AttentionServiceBase {
 public:
  // Admission: at most `max_inflight` computing + `max_queue` waiting (0 = unlimited), and
  // `memory_budget_bytes` of estimated working memory at once (0 = unlimited).
  struct Admission {
    int64_t max_inflight = 0;
    int64_t max_queue = 0;
    int64_t memory_budget_bytes = 0;
  };

  AttentionService(const AttentionEngine& engine, const MultiHeadAttention& layer,
                   WeightRegistry& registry, SessionStore& sessions, Executor& executor,
                   AttendLimits limits, Admission admission);

  grpc::ServerUnaryReactor* Attend(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* MultiHeadAttend(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AttendStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* PutWeights(grpc::CallbackServerContext* context,
                                       const attention::v1::PutWeightsRequest* request,
                                       attention::v1::WeightsInfo* response) override;
  grpc::ServerUnaryReactor* ListWeights(grpc::CallbackServerContext* context,
                                        const attention::v1::ListWeightsRequest* request,
                                        attention::v1::ListWeightsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteWeights(grpc::CallbackServerContext* context,
                                          const attention::v1::DeleteWeightsRequest* request,
                                          attention::v1::DeleteWeightsResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const attention::v1::GetServerInfoRequest* request,
                                          attention::v1::ServerInfo* response) override;

  // KV-cache sessions (session_service.cc). A session belongs to the bearer token that created
  // it (with --auth_tokens_file); to any other it does not exist.
  grpc::ServerUnaryReactor* CreateSession(grpc::CallbackServerContext* context,
                                          const attention::v1::CreateSessionRequest* request,
                                          attention::v1::Session* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* context,
                                       const attention::v1::GetSessionRequest* request,
                                       attention::v1::Session* response) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* context,
                                         const attention::v1::ListSessionsRequest* request,
                                         attention::v1::ListSessionsResponse* response) override;
  grpc::ServerUnaryReactor* CloseSession(grpc::CallbackServerContext* context,
                                         const attention::v1::CloseSessionRequest* request,
                                         attention::v1::CloseSessionResponse* response) override;
  grpc::ServerUnaryReactor* ForkSession(grpc::CallbackServerContext* context,
                                        const attention::v1::ForkSessionRequest* request,
                                        attention::v1::Session* response) override;
  grpc::ServerUnaryReactor* TruncateSession(grpc::CallbackServerContext* context,
                                            const attention::v1::TruncateSessionRequest* request,
                                            attention::v1::Session* response) override;
  grpc::ServerUnaryReactor* SessionAttend(grpc::CallbackServerContext* context,
                                          const grpc::ByteBuffer* request,
                                          grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* SessionAttendBatch(grpc::CallbackServerContext* context,
                                               const grpc::ByteBuffer* request,
                                               grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* SessionAttendStream(
      grpc::CallbackServerContext* context) override;

  // The same computations for the HTTP/JSON gateway: run on a worker while the caller waits
  // (never on a gRPC thread), with the same admission, log line and metrics.
  // `authorization` is the caller's Authorization header, checked like the gRPC metadata.
  grpc::Status AttendBlocking(const RequestTrace& trace, const std::string& peer,
                              const std::optional<std::string>& authorization,
                              const attention::v1::AttendRequest& request,
                              attention::v1::AttendResponse* response);
  grpc::Status MultiHeadAttendBlocking(const RequestTrace& trace, const std::string& peer,
                                       const std::optional<std::string>& authorization,
                                       const attention::v1::MultiHeadAttendRequest& request,
                                       attention::v1::AttendResponse* response);

  // Attend and MultiHeadAttend for another protocol's front (inference_service.h), under
  // `method` in the log and metrics: the same admission, limits, bearer token, deadline and
  // workers as the gRPC calls; `refused` (when not OK) refuses the call with it, logged and
  // counted like a bad request. `done` gets the status once `response` is filled; the request
  // and response must outlive it.
  void AttendFor(grpc::CallbackServerContext* context, const char* method,
                 const attention::v1::AttendRequest& request,
                 attention::v1::AttendResponse* response, const absl::Status& refused,
                 absl::AnyInvocable<void(const grpc::Status&) &&> done);
  void MultiHeadAttendFor(grpc::CallbackServerContext* context, const char* method,
                          const attention::v1::MultiHeadAttendRequest& request,
                          attention::v1::AttendResponse* response, const absl::Status& refused,
                          absl::AnyInvocable<void(const grpc::Status&) &&> done);
  // OK, or UNAUTHENTICATED when tokens are required and the call carries none of them.
  absl::Status AuthorizeCall(grpc::CallbackServerContext* context) const {
    return Authorize(context);
  }

  // From now on every call of this service (not health, not reflection) must carry a bearer
  // token `auth` accepts. Call before the server starts; `auth` must outlive the service.
  void RequireTokens(const AuthTokens* auth) { auth_ = auth; }

  // Admission around a graceful drain (see call_gate.h).
  CallGate& gate() { return gate_; }
  const CallGate& gate() const { return gate_; }

 private:
  // A worker's part of a call: its status; `call` says when to stop and takes the FLOPs.
  using Work = absl::AnyInvocable<absl::Status(CallContext* call)>;

  // Everything the shared path needs about one call.
  struct Job {
    const char* method = "";
    std::string peer;
    RequestTrace trace;
    absl::AnyInvocable<std::string() const> describe;
    const google::protobuf::Message* request = nullptr;
    const google::protobuf::Message* response = nullptr;
    attention::v1::Timing* timing = nullptr;  // filled on success when set
    int64_t working_bytes = 0;                // reserved from the memory budget
    absl::Time deadline = absl::InfiniteFuture();
    std::function<bool()> cancelled;          // may be empty
    absl::Status authorized;                  // not OK: refused with this status
    Work work;
    // When set, called right before the job is handed to the workers, in the order jobs are
    // (session steps take their turns there: see SessionTurns).
    // It may set the job's working_bytes.
    absl::AnyInvocable<void(Job& job)> on_submit = nullptr;
  };

  // OK, or UNAUTHENTICATED when tokens are required and `authorization` has none of them.
  absl::Status Authorize(const std::optional<std::string>& authorization) const;
  absl::Status Authorize(grpc::CallbackServerContext* context) const;
  // Who owns the sessions this call creates and may see: its bearer token with
  // --auth_tokens_file, else "" (everyone).
  std::string OwnerOf(grpc::CallbackServerContext* context) const;
  // A session call answered on the reactor thread (they only touch the store): authorizes,
  // runs `body`, logs and records it, finishes.
  grpc::ServerUnaryReactor* RunSessionCall(
      grpc::CallbackServerContext* context, const char* method, std::string description,
      const google::protobuf::Message& request, const google::protobuf::Message* response,
      absl::FunctionRef<absl::Status(const std::string& owner)> body);
  // SessionAttend (one step) or SessionAttendBatch on raw bytes.
  grpc::ServerUnaryReactor* RunSessionSteps(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request_bytes,
                                            grpc::ByteBuffer* response_bytes, bool batch);

  // Makes `job` (a MultiHeadAttend's) a step of KV-cache session request.session_id: routing
  // checked, the session leased and in line at submission, the step run in its turn.
  void OnSession(grpc::CallbackServerContext* context,
                 const attention::v1::MultiHeadAttendRequest& request,
                 attention::v1::AttendResponse& response, Job& job);
  // A Job for a gRPC call (its peer, deadline, cancellation, request id).
  Job GrpcJob(grpc::CallbackServerContext* context, const char* method,
              absl::AnyInvocable<std::string() const> describe,
              const google::protobuf::Message& request, const google::protobuf::Message* response,
              attention::v1::Timing* timing, int64_t working_bytes, Work work);
  // On the calling worker: refuses a call no longer wanted, reserves its working memory, runs
  // it (stoppable between chunks), fills timing, logs and records metrics; returns its status.
  grpc::Status RunNow(Job& job, absl::Time received);
  // Admits `job` (or refuses it at once), runs it on a worker and then calls `finish`.
  void Execute(Job job, absl::AnyInvocable<void(const grpc::Status&) &&> finish);
  // Execute for a unary gRPC call, finishing its reactor.
  grpc::ServerUnaryReactor* RunOnWorker(Job job, grpc::CallbackServerContext* context);
  // The same for a unary call on raw bytes (attend_wire.h): parses `request_bytes` into a
  // Request (refusing bytes that are not one), runs the Job `make_job` makes of it, and answers
  // with the bytes of the response that job filled.
  template <typename Request>
  grpc::ServerUnaryReactor* RunRawOnWorker(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request_bytes,
      grpc::ByteBuffer* response_bytes,
      absl::FunctionRef<Job(const Request&, attention::v1::AttendResponse&)> make_job);
  // Execute, waiting for the result (HTTP threads).
  grpc::Status RunBlocking(Job job);

  const AttentionEngine& engine_;
  const MultiHeadAttention& layer_;
  WeightRegistry& registry_;
  SessionStore& sessions_;
  Executor& executor_;
  const AttendLimits limits_;
  CallGate gate_;
  MemoryBudget budget_;
  const AuthTokens* auth_ = nullptr;
  std::mutex submit_mu_;  // jobs with on_submit are handed to the workers one at a time
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_ATTENTION_SERVICE_H_
