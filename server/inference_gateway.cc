// The Open Inference Protocol over REST (see inference_gateway.h).
#include "server/inference_gateway.h"

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/http_gateway.h"
#include "src/runtime/dtype.h"

namespace attn {
namespace {

using nlohmann::json;
using Stub = inference::GRPCInferenceService::Stub;

void ReplyJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void ReplyError(httplib::Response& res, int status, const std::string& message) {
  ReplyJson(res, status, json{{"error", message}});
}

// Calls `method` with `request` and the HTTP request's headers as metadata; the gRPC status.
template <typename Request, typename Response>
grpc::Status Call(const httplib::Request& req, Stub& stub,
                  grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                  const Request& request, Response* response) {
  grpc::ClientContext context;
  for (const char* header : {"authorization", "x-request-id", "traceparent"}) {
    if (req.has_header(header)) context.AddMetadata(header, req.get_header_value(header));
  }
  return (stub.*method)(&context, request, response);
}

// Answers a failed call: {"error"} with the HTTP status of its code.
void ReplyStatus(httplib::Response& res, const grpc::Status& status) {
  ReplyError(res, HttpGateway::HttpStatusFor(status.error_code(), status.error_message()),
             status.error_message());
}

// The leaves of a (nested) JSON array, row-major.
void Flatten(const json& data, std::vector<const json*>& leaves) {
  if (!data.is_array()) {
    leaves.push_back(&data);
    return;
  }
  for (const json& item : data) Flatten(item, leaves);
}

// One JSON input tensor into the request; an error message when it is malformed.
std::string AddInput(const json& input, size_t index, inference::ModelInferRequest* request) {
  const std::string field = absl::StrCat("inputs[", index, "]");
  if (!input.is_object() || !input.contains("name") || !input["name"].is_string() ||
      !input.contains("shape") || !input["shape"].is_array() || !input.contains("datatype") ||
      !input["datatype"].is_string() || !input.contains("data")) {
    return absl::StrCat(field, " must be an object with name, shape, datatype and data");
  }
  auto* tensor = request->add_inputs();
  tensor->set_name(input["name"].get<std::string>());
  for (const json& dim : input["shape"]) {
    if (!dim.is_number_integer()) return absl::StrCat(field, ".shape must hold integers");
    tensor->add_shape(dim.get<int64_t>());
  }
  std::string type = input["datatype"].get<std::string>();
  std::vector<const json*> leaves;
  Flatten(input["data"], leaves);
  auto* contents = tensor->mutable_contents();
  for (const json* leaf : leaves) {
    if (type == "BOOL") {
      if (!leaf->is_boolean()) return absl::StrCat(field, ".data must hold booleans for BOOL");
      contents->add_bool_contents(leaf->get<bool>());
    } else if (type == "INT32" || type == "INT64") {
      if (!leaf->is_number_integer()) {
        return absl::StrCat(field, ".data must hold integers for ", type);
      }
      if (type == "INT32") {
        contents->add_int_contents(leaf->get<int32_t>());
      } else {
        contents->add_int64_contents(leaf->get<int64_t>());
      }
    } else if (type == "FP32" || type == "BF16" || type == "FP16") {
      if (!leaf->is_number()) return absl::StrCat(field, ".data must hold numbers for ", type);
      float value = leaf->get<float>();
      if (type == "BF16") value = BFloat16ToFloat(FloatToBFloat16(value));
      if (type == "FP16") value = Float16ToFloat(FloatToFloat16(value));
      contents->add_fp32_contents(value);
    } else {
      break;  // the gRPC service names the datatype it refuses
    }
  }
  // BF16 and FP16 travel as the FP32 values they round to.
  tensor->set_datatype(type == "BF16" || type == "FP16" ? "FP32" : type);
  return "";
}

// The JSON inference request of model `model`; an error message when it is malformed.
std::string ToInferRequest(const json& body, const std::string& model,
                           inference::ModelInferRequest* request) {
  request->set_model_name(model);
  if (!body.is_object()) return "the body must be a JSON object";
  if (body.contains("id")) {
    if (!body["id"].is_string()) return "id must be a string";
    request->set_id(body["id"].get<std::string>());
  }
  if (body.contains("parameters")) {
    if (!body["parameters"].is_object()) return "parameters must be an object";
    for (const auto& [name, value] : body["parameters"].items()) {
      inference::InferParameter& parameter = (*request->mutable_parameters())[name];
      if (value.is_boolean()) {
        parameter.set_bool_param(value.get<bool>());
      } else if (value.is_number_integer()) {
        parameter.set_int64_param(value.get<int64_t>());
      } else if (value.is_number()) {
        parameter.set_string_param(value.dump());  // over REST, scale is a number
      } else if (value.is_string()) {
        parameter.set_string_param(value.get<std::string>());
      } else {
        return absl::StrCat("parameters[", name, "] must be a boolean, number or string");
      }
    }
  }
  if (!body.contains("inputs") || !body["inputs"].is_array()) return "inputs must be an array";
  for (size_t i = 0; i < body["inputs"].size(); ++i) {
    if (std::string error = AddInput(body["inputs"][i], i, request); !error.empty()) return error;
  }
  if (body.contains("outputs")) {
    if (!body["outputs"].is_array()) return "outputs must be an array";
    for (const json& output : body["outputs"]) {
      if (!output.is_object() || !output.contains("name") || !output["name"].is_string()) {
        return "outputs must hold objects with a name";
      }
      request->add_outputs()->set_name(output["name"].get<std::string>());
    }
  }
  return "";
}

json ToJson(const inference::ModelInferResponse& response) {
  json outputs = json::array();
  for (const auto& output : response.outputs()) {
    outputs.push_back({{"name", output.name()},
                       {"datatype", output.datatype()},
                       {"shape", json(std::vector<int64_t>(output.shape().begin(),
                                                           output.shape().end()))},
                       {"data", json(std::vector<float>(output.contents().fp32_contents().begin(),
                                                        output.contents().fp32_contents().end()))}});
  }
  json body = {{"model_name", response.model_name()},
               {"model_version", response.model_version()},
               {"outputs", outputs}};
  if (!response.id().empty()) body["id"] = response.id();
  return body;
}

json ToJson(const inference::ModelMetadataResponse& metadata) {
  auto tensors = [](const auto& list) {
    json all = json::array();
    for (const auto& t : list) {
      all.push_back({{"name", t.name()},
                     {"datatype", t.datatype()},
                     {"shape", json(std::vector<int64_t>(t.shape().begin(), t.shape().end()))}});
    }
    return all;
  };
  return {{"name", metadata.name()},
          {"versions", json(std::vector<std::string>(metadata.versions().begin(),
                                                     metadata.versions().end()))},
          {"platform", metadata.platform()},
          {"inputs", tensors(metadata.inputs())},
          {"outputs", tensors(metadata.outputs())}};
}

}  // namespace

void AddInferenceRoutes(httplib::Server& server, std::shared_ptr<grpc::Channel> channel) {
  auto stub = std::make_shared<Stub>(channel);
  server.Get("/v2/health/live", [stub](const httplib::Request& req, httplib::Response& res) {
    inference::ServerLiveResponse live;
    const grpc::Status s = Call(req, *stub, &Stub::ServerLive, {}, &live);
    if (!s.ok()) return ReplyStatus(res, s);
    ReplyJson(res, live.live() ? 200 : 503, json{{"live", live.live()}});
  });
  server.Get("/v2/health/ready", [stub](const httplib::Request& req, httplib::Response& res) {
    inference::ServerReadyResponse ready;
    const grpc::Status s = Call(req, *stub, &Stub::ServerReady, {}, &ready);
    if (!s.ok()) return ReplyStatus(res, s);
    ReplyJson(res, ready.ready() ? 200 : 503, json{{"ready", ready.ready()}});
  });
  server.Get("/v2", [stub](const httplib::Request& req, httplib::Response& res) {
    inference::ServerMetadataResponse metadata;
    const grpc::Status s = Call(req, *stub, &Stub::ServerMetadata, {}, &metadata);
    if (!s.ok()) return ReplyStatus(res, s);
    ReplyJson(res, 200, json{{"name", metadata.name()},
                             {"version", metadata.version()},
                             {"extensions", json::array()}});
  });
  constexpr char kModel[] = R"(/v2/models/([A-Za-z0-9_.-]{1,128}))";
  server.Get(kModel, [stub](const httplib::Request& req, httplib::Response& res) {
    inference::ModelMetadataRequest request;
    request.set_name(req.matches[1]);
    inference::ModelMetadataResponse metadata;
    const grpc::Status s = Call(req, *stub, &Stub::ModelMetadata, request, &metadata);
    if (!s.ok()) return ReplyStatus(res, s);
    ReplyJson(res, 200, ToJson(metadata));
  });
  server.Get(absl::StrCat(kModel, "/ready"),
             [stub](const httplib::Request& req, httplib::Response& res) {
               inference::ModelReadyRequest request;
               request.set_name(req.matches[1]);
               inference::ModelReadyResponse ready;
               const grpc::Status s = Call(req, *stub, &Stub::ModelReady, request, &ready);
               if (!s.ok()) return ReplyStatus(res, s);
               ReplyJson(res, ready.ready() ? 200 : 503,
                         json{{"name", request.name()}, {"ready", ready.ready()}});
             });
  server.Post(absl::StrCat(kModel, "/infer"),
              [stub](const httplib::Request& req, httplib::Response& res) {
                const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
                if (body.is_discarded()) return ReplyError(res, 400, "the body is not JSON");
                inference::ModelInferRequest request;
                if (std::string error = ToInferRequest(body, req.matches[1], &request);
                    !error.empty()) {
                  return ReplyError(res, 400, error);
                }
                inference::ModelInferResponse response;
                const grpc::Status s = Call(req, *stub, &Stub::ModelInfer, request, &response);
                if (!s.ok()) return ReplyStatus(res, s);
                ReplyJson(res, 200, ToJson(response));
              });
}

}  // namespace attn
