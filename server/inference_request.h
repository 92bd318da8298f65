// The Open Inference Protocol's ModelInfer (proto/inference/grpc_predict_v2.proto) translated to
// attention.v1 and back: a request's named input tensors (raw contents or typed contents) become
// an AttendRequest (model "attention") or a MultiHeadAttendRequest (model "mha.<weights name>"),
// its parameters (causal, scale, compute_dtype) their fields, the outputs it asks for their
// attention_maps; the AttendResponse becomes the outputs asked for, raw when the request's
// inputs were raw, typed otherwise. Errors are INVALID_ARGUMENT naming the input or parameter
// and the numbers. Pure functions; thread-safe.
#ifndef ATTNSERVE_SERVER_INFERENCE_REQUEST_H_
#define ATTNSERVE_SERVER_INFERENCE_REQUEST_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "attention/v1/attention.pb.h"
#include "inference/grpc_predict_v2.pb.h"

namespace attn {

// The model "attention" and the prefix of the models of named weights ("mha.<name>").
inline constexpr char kAttentionModel[] = "attention";
inline constexpr char kMultiHeadModelPrefix[] = "mha.";

// What a translated request asks for back: the outputs in order ("OUTPUT", "ATTENTION",
// "SCORES") and whether they travel raw.
struct InferAnswerPlan {
  std::vector<std::string> outputs;
  bool raw = false;
};

// `request` (model "attention") as `attend`.
absl::Status ToAttendRequest(const inference::ModelInferRequest& request,
                             attention::v1::AttendRequest* attend, InferAnswerPlan* plan);
// `request` (model "mha.<weights_name>") as `multi_head`.
absl::Status ToMultiHeadRequest(const inference::ModelInferRequest& request,
                                const std::string& weights_name,
                                attention::v1::MultiHeadAttendRequest* multi_head,
                                InferAnswerPlan* plan);
// The answer of `request` from `attend`'s response.
void ToInferResponse(const inference::ModelInferRequest& request, const InferAnswerPlan& plan,
                     const attention::v1::AttendResponse& answer,
                     inference::ModelInferResponse* response);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_INFERENCE_REQUEST_H_
