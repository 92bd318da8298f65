// The Open Inference Protocol's REST side on the HTTP port (docs/inference_protocol.md):
//   GET  /v2/health/live             200 {"live": true}
//   GET  /v2/health/ready            200 {"ready": true}, 503 while draining
//   GET  /v2                         server metadata
//   GET  /v2/models/{m}              model metadata
//   GET  /v2/models/{m}/ready        200 {"name", "ready": true}, 404 for no such model
//   POST /v2/models/{m}/infer        the protocol's JSON inference request -> response
// Each route calls inference.GRPCInferenceService over an in-process channel to this very server
// (so admission, tokens -- the Authorization header --, limits, logs and metrics are the gRPC
// call's). JSON tensors are {"name", "shape", "datatype", "data"} with data flat or nested
// row-major; BF16 and FP16 numbers are rounded to that type. Outputs are FP32 (-inf, which JSON
// cannot hold, is null). Errors are {"error": "..."} with the HTTP status of the gRPC code.
// Thread-safe.
#ifndef ATTNSERVE_SERVER_INFERENCE_GATEWAY_H_
#define ATTNSERVE_SERVER_INFERENCE_GATEWAY_H_

#include <grpcpp/grpcpp.h>

#include <memory>

namespace httplib {
class Server;
}

namespace attn {

// Adds the routes to `server`; `channel` (to the gRPC server, in process) must outlive it.
void AddInferenceRoutes(httplib::Server& server, std::shared_ptr<grpc::Channel> channel);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_INFERENCE_GATEWAY_H_
