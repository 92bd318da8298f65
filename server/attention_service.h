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

  // Admission around a graceful drain (see call_gate.h).
  CallGate& gate() { return gate_; }

 private:
  // Runs `work` on a worker unless draining, cancelled or past its deadline, logs one line
  // (method, `describe()`, code, queue/compute us, peer), fills `timing` when set, and finishes.
  grpc::ServerUnaryReactor* RunOnWorker(grpc::CallbackServerContext* context,
                                        const char* method,
                                        absl::AnyInvocable<std::string() const> describe,
                                        attention::v1::Timing* timing,
                                        absl::AnyInvocable<absl::Status()> work);

  // One Attend computation with its timing and log line (unary and stream).
  grpc::Status ComputeAttend(grpc::CallbackServerContext* context,
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
