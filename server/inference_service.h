// inference.GRPCInferenceService, the Open Inference Protocol (KServe v2, Triton) beside
// attention.v1 on the same port (docs/inference_protocol.md). Models: "attention" (Attend) and
// "mha.<name>" for each named weight set (MultiHeadAttend). ModelInfer runs through
// AttentionService -- the same admission, limits, bearer tokens, deadline, workers, log line and
// metrics ("ModelInfer/attention", "ModelInfer/mha") -- and answers on its worker. ServerLive
// and ServerReady need no token (they are probes); the rest do when tokens are on. Thread-safe.
#ifndef ATTNSERVE_SERVER_INFERENCE_SERVICE_H_
#define ATTNSERVE_SERVER_INFERENCE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/attention_service.h"
#include "src/weights/weight_registry.h"

namespace attn {

class InferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // Both must outlive this service.
  InferenceService(AttentionService& attention, const WeightRegistry& registry)
      : attention_(attention), registry_(registry) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;

 private:
  // OK when `model` exists (the weights of "mha.<name>" into `weights`); NOT_FOUND otherwise.
  absl::Status FindModel(const std::string& model,
                         std::shared_ptr<const MultiHeadWeights>* weights) const;

  AttentionService& attention_;
  const WeightRegistry& registry_;
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_INFERENCE_SERVICE_H_
