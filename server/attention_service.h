// The attention.v1.AttentionService implementation on gRPC's callback API. Reactor threads only
// hand work to the Executor; every computation runs on its workers, which finish the call.
// Thread-safe; the engine and executor must outlive the service.
#ifndef ATTNSERVE_SERVER_ATTENTION_SERVICE_H_
#define ATTNSERVE_SERVER_ATTENTION_SERVICE_H_

#include <string>

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

 private:
  const AttentionEngine& engine_;
  Executor& executor_;
  const AttendLimits limits_;
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_ATTENTION_SERVICE_H_
