// The Open Inference Protocol's gRPC service (see inference_service.h).
#include "server/inference_service.h"

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/inference_request.h"
#include "server/status_convert.h"

namespace attn {
namespace {

namespace pb = attention::v1;
using Metadata = inference::ModelMetadataResponse::TensorMetadata;

void AddTensor(google::protobuf::RepeatedPtrField<Metadata>* list, const char* name,
               const char* datatype, std::initializer_list<int64_t> shape) {
  Metadata* tensor = list->Add();
  tensor->set_name(name);
  tensor->set_datatype(datatype);
  for (int64_t dim : shape) tensor->add_shape(dim);
}

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace

absl::Status InferenceService::FindModel(const std::string& model,
                                         std::shared_ptr<const MultiHeadWeights>* weights) const {
  if (model == kAttentionModel) return absl::OkStatus();
  if (absl::StartsWith(model, kMultiHeadModelPrefix)) {
    absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> found =
        registry_.Get(model.substr(std::strlen(kMultiHeadModelPrefix)));
    if (found.ok()) {
      *weights = *std::move(found);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(absl::StrCat(
      "model \"", model.substr(0, 80), "\" does not exist: models are \"attention\" and \"mha.",
      "<name>\" for each weight set the server holds"));
}

grpc::ServerUnaryReactor* InferenceService::ServerLive(grpc::CallbackServerContext* context,
                                                       const inference::ServerLiveRequest*,
                                                       inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(grpc::CallbackServerContext* context,
                                                        const inference::ServerReadyRequest*,
                                                        inference::ServerReadyResponse* response) {
  response->set_ready(!attention_.gate().draining());
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(grpc::CallbackServerContext* context,
                                                       const inference::ModelReadyRequest* request,
                                                       inference::ModelReadyResponse* response) {
  absl::Status status = attention_.AuthorizeCall(context);
  std::shared_ptr<const MultiHeadWeights> weights;
  if (status.ok()) status = FindModel(request->name(), &weights);
  response->set_ready(status.ok() && !attention_.gate().draining());
  return Finish(context, status);
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  const absl::Status status = attention_.AuthorizeCall(context);
  response->set_name("attnserve");
  response->set_version(ATTNSERVE_VERSION);
  return Finish(context, status);
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::Status status = attention_.AuthorizeCall(context);
  std::shared_ptr<const MultiHeadWeights> weights;
  if (status.ok()) status = FindModel(request->name(), &weights);
  if (!status.ok()) return Finish(context, status);
  response->set_name(request->name());
  *response->add_versions() = std::string("1");  // (GCC 12's -Wrestrict misreads add_versions("1"))
  response->set_platform("attnserve");
  auto* in = response->mutable_inputs();
  auto* out = response->mutable_outputs();
  if (weights == nullptr) {  // "attention": [B,H,S,D] tensors as in Attend
    for (const char* name : {"QUERY", "KEY", "VALUE"}) AddTensor(in, name, "FP32", {-1, -1, -1, -1});
    AddTensor(in, "KEY_LENGTHS", "INT32", {-1});
    AddTensor(in, "ALLOWED", "BOOL", {-1, -1, -1, -1});
    AddTensor(in, "BIAS", "FP32", {-1, -1, -1, -1});
    AddTensor(out, "OUTPUT", "FP32", {-1, -1, -1, -1});
    AddTensor(out, "ATTENTION", "FP32", {-1, -1, -1, -1});
    AddTensor(out, "SCORES", "FP32", {-1, -1, -1, -1});
  } else {  // "mha.<name>": embeddings of the weights' widths
    const MultiHeadDims& d = weights->dims();
    AddTensor(in, "INPUT", "FP32", {-1, -1, d.d_model});
    AddTensor(in, "CONTEXT", "FP32", {-1, -1, d.d_ctx});
    AddTensor(in, "KEY_LENGTHS", "INT32", {-1});
    AddTensor(in, "ALLOWED", "BOOL", {-1, -1, -1, -1});
    AddTensor(in, "BIAS", "FP32", {-1, -1, -1, -1});
    AddTensor(out, "OUTPUT", "FP32", {-1, -1, d.d_out});
    AddTensor(out, "ATTENTION", "FP32", {-1, d.num_heads, -1, -1});
    AddTensor(out, "SCORES", "FP32", {-1, d.num_heads, -1, -1});
  }
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(grpc::CallbackServerContext* context,
                                                       const inference::ModelInferRequest* request,
                                                       inference::ModelInferResponse* response) {
  // The translated call, kept until its worker has answered.
  struct Call {
    pb::AttendRequest attend;
    pb::MultiHeadAttendRequest multi_head;
    pb::AttendResponse answer;
    InferAnswerPlan plan;
  };
  auto call = std::make_shared<Call>();
  std::shared_ptr<const MultiHeadWeights> weights;
  absl::Status status = FindModel(request->model_name(), &weights);
  const bool multi_head = weights != nullptr;
  if (status.ok()) {
    status = multi_head ? ToMultiHeadRequest(*request,
                                             request->model_name().substr(
                                                 std::strlen(kMultiHeadModelPrefix)),
                                             &call->multi_head, &call->plan)
                        : ToAttendRequest(*request, &call->attend, &call->plan);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto done = [reactor, call, request, response](const grpc::Status& result) {
    if (result.ok()) ToInferResponse(*request, call->plan, call->answer, response);
    reactor->Finish(result);
  };
  // A request that does not translate is refused like a bad Attend: logged, counted.
  if (multi_head) {
    attention_.MultiHeadAttendFor(context, "ModelInfer/mha", call->multi_head, &call->answer,
                                  status, std::move(done));
  } else {
    attention_.AttendFor(context, "ModelInfer/attention", call->attend, &call->answer, status,
                         std::move(done));
  }
  return reactor;
}

}  // namespace attn
