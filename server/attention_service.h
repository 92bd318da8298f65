// The attention.v1.AttentionService implementation on gRPC's callback API. Reactor threads only
// hand work to the Executor; every computation runs on its workers, which finish the call.
// Draining (for a graceful shutdown) refuses new calls with UNAVAILABLE while the calls already
// accepted run to the end. Thread-safe; the engine and executor must outlive the service.
#ifndef ATTNSERVE_SERVER_ATTENTION_SERVICE_H_
#define ATTNSERVE_SERVER_ATTENTION_SERVICE_H_

#include <cstdint>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "attention/v1/attention.grpc.pb.h"
#include "server/attend_call.h"
#include "src/attention_engine.h"
#include "src/executor.h"

namespace attn {

class AttentionService final : public attention::v1::AttentionService::CallbackService {
 public:
  AttentionService(const AttentionEngine& engine, Executor& executor, AttendLimits limits);

  grpc::ServerUnaryReactor* Attend(grpc::CallbackServerContext* context,
                                   const attention::v1::AttendRequest* request,
                                   attention::v1::AttendResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const attention::v1::GetServerInfoRequest* request,
                                          attention::v1::ServerInfo* response) override;

  // Not implemented yet: each answers UNIMPLEMENTED with a message saying so.
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

 // From now on new Attend calls get UNAVAILABLE.
  void StartDraining();
  // Blocks until no accepted call is still running and no call at all (even a refused one) has
  // arrived for `quiet`, or until `deadline`; returns whether that quiet point was reached.
  // Calls whose bytes were still arriving when draining began reach the service in that time
  // and are answered UNAVAILABLE, instead of being cut off when gRPC itself stops.
  bool WaitUntilQuiet(absl::Duration quiet, absl::Time deadline);

 private:
  // Counts the call as running unless draining; false = refuse it.
  bool Admit();
  void Release();

  const AttentionEngine& engine_;
  Executor& executor_;
  const AttendLimits limits_;
  absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_arrival_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_ATTENTION_SERVICE_H_
