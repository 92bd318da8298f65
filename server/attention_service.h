// The attention.v1.AttentionService implementation on gRPC's callback API. Reactor threads only
// hand work to the Executor; every computation (and every weight decode) runs on its workers,
// which finish the call. Draining (for a graceful shutdown) refuses new calls with UNAVAILABLE
// while the calls already accepted run to the end. Thread-safe; the engine, layer, registry and
// executor must outlive the service.
#ifndef ATTNSERVE_SERVER_ATTENTION_SERVICE_H_
#define ATTNSERVE_SERVER_ATTENTION_SERVICE_H_

#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "attention/v1/attention.grpc.pb.h"
#include "server/call_gate.h"
#include "server/request_fields.h"
#include "server/request_id.h"
#include "src/attention_engine.h"
#include "src/executor.h"
#include "src/multi_head_attention.h"
#include "src/weight_registry.h"

namespace attn {

class AttentionService final : public attention::v1::AttentionService::CallbackService {
 public:
  AttentionService(const AttentionEngine& engine, const MultiHeadAttention& layer,
                   WeightRegistry& registry, Executor& executor, AttendLimits limits);

  grpc::ServerUnaryReactor* Attend(grpc::CallbackServerContext* context,
                                   const attention::v1::AttendRequest* request,
                                   attention::v1::AttendResponse* response) override;
  grpc::ServerUnaryReactor* MultiHeadAttend(grpc::CallbackServerContext* context,
                                            const attention::v1::MultiHeadAttendRequest* request,
                                            attention::v1::AttendResponse* response) override;
  grpc::ServerBidiReactor<attention::v1::AttendRequest, attention::v1::AttendResponse>*
  AttendStream(grpc::CallbackServerContext* context) override;
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

  // The same computations for the HTTP/JSON gateway: run on a worker while the caller waits
  // (never on a gRPC thread), with the same admission, log line and metrics.
  grpc::Status AttendBlocking(const RequestTrace& trace, const std::string& peer,
                              const attention::v1::AttendRequest& request,
                              attention::v1::AttendResponse* response);
  grpc::Status MultiHeadAttendBlocking(const RequestTrace& trace, const std::string& peer,
                                       const attention::v1::MultiHeadAttendRequest& request,
                                       attention::v1::AttendResponse* response);

  // Admission around a graceful drain (see call_gate.h).
  CallGate& gate() { return gate_; }
  const CallGate& gate() const { return gate_; }

 private:
  // A worker's part of a call: its status; it may add the FLOPs it computed.
  using Work = absl::AnyInvocable<absl::Status(double* flops)>;

  // Runs `work` on a worker unless draining, cancelled or past its deadline; logs one line
  // (method, request id, `describe()`, code, queue/compute us, peer), records metrics, fills
  // `timing` when set, and finishes. The request id goes back in the trailing metadata.
  grpc::ServerUnaryReactor* RunOnWorker(grpc::CallbackServerContext* context,
                                        const char* method,
                                        absl::AnyInvocable<std::string() const> describe,
                                        const google::protobuf::Message& request,
                                        const google::protobuf::Message* response,
                                        attention::v1::Timing* timing, Work work);

  grpc::Status RunBlocking(const char* method, const std::string& description,
                           const RequestTrace& trace, const std::string& peer,
                           const google::protobuf::Message& request,
                           const google::protobuf::Message* response, Work work);

  // One AttendStream message: its computation, timing, log line and metrics.
  grpc::Status ComputeAttend(grpc::CallbackServerContext* context, const RequestTrace& trace,
                             const attention::v1::AttendRequest& request,
                             attention::v1::AttendResponse* response, absl::Time received);

  const AttentionEngine& engine_;
  const MultiHeadAttention& layer_;
  WeightRegistry& registry_;
  Executor& executor_;
  const AttendLimits limits_;
  CallGate gate_;
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_ATTENTION_SERVICE_H_
