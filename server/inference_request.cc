// ModelInfer <-> attention.v1 (see inference_request.h).
#include "server/inference_request.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <map>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace attn {
namespace {

namespace pb = attention::v1;
using inference::InferParameter;
using inference::ModelInferRequest;
using Input = inference::ModelInferRequest::InferInputTensor;

// Where one input's values are: its raw bytes (nullptr when typed) and its message.
struct InputRef {
  const Input* input = nullptr;
  const std::string* raw = nullptr;
};

std::string Field(const Input& input) { return absl::StrCat("inputs[", input.name(), "]"); }

// The inputs by name, each named once and one of `known`; raw contents for all or none.
absl::StatusOr<std::map<std::string, InputRef>> InputsByName(
    const ModelInferRequest& request, const std::vector<std::string>& known) {
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw_input_contents has ", request.raw_input_contents_size(), " entries but inputs has ",
        request.inputs_size(), ": give every input's contents raw, or none"));
  }
  std::map<std::string, InputRef> inputs;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const Input& input = request.inputs(i);
    if (std::find(known.begin(), known.end(), input.name()) == known.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Field(input), " is not an input of model ", request.model_name(),
                       " (", absl::StrJoin(known, ", "), ")"));
    }
    if (!inputs.emplace(input.name(), InputRef{&input, raw ? &request.raw_input_contents(i)
                                                            : nullptr})
             .second) {
      return absl::InvalidArgumentError(absl::StrCat(Field(input), " is given twice"));
    }
  }
  return inputs;
}

// A float input (FP32, BF16, FP16) as an attention.v1 tensor: raw bytes in `data`, typed FP32
// in `values`.
absl::Status ToFloatTensor(const InputRef& ref, pb::Tensor* tensor) {
  const Input& input = *ref.input;
  const std::string& type = input.datatype();
  const pb::DataType dtype = type == "FP32"   ? pb::DATA_TYPE_FLOAT32
                             : type == "BF16" ? pb::DATA_TYPE_BFLOAT16
                             : type == "FP16" ? pb::DATA_TYPE_FLOAT16
                                              : pb::DATA_TYPE_UNSPECIFIED;
  if (dtype == pb::DATA_TYPE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        Field(input), ".datatype must be FP32, BF16 or FP16; got \"", type.substr(0, 40), "\""));
  }
  tensor->mutable_shape()->CopyFrom(input.shape());
  tensor->set_dtype(dtype);
  if (ref.raw != nullptr) {
    tensor->set_data(*ref.raw);
    return absl::OkStatus();
  }
  if (dtype != pb::DATA_TYPE_FLOAT32) {
    return absl::InvalidArgumentError(absl::StrCat(
        Field(input), ": ", type, " has no typed contents; send it in raw_input_contents"));
  }
  tensor->mutable_values()->CopyFrom(input.contents().fp32_contents());
  return absl::OkStatus();
}

// KEY_LENGTHS (INT32 or INT64, [B]) into the mask's key_lengths.
absl::Status ToKeyLengths(const InputRef& ref, pb::Mask* mask) {
  const Input& input = *ref.input;
  const bool int64 = input.datatype() == "INT64";
  if (!int64 && input.datatype() != "INT32") {
    return absl::InvalidArgumentError(absl::StrCat(
        Field(input), ".datatype must be INT32 or INT64; got \"",
        input.datatype().substr(0, 40), "\""));
  }
  if (input.shape_size() != 1 || input.shape(0) < 0 || input.shape(0) > INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        Field(input), " must have shape [B] with 0 <= B < 2^31; got rank ", input.shape_size(),
        input.shape_size() == 1 ? absl::StrCat(", B = ", input.shape(0)) : ""));
  }
  std::vector<int64_t> lengths;
  if (ref.raw != nullptr) {
    const size_t size = int64 ? 8 : 4;
    if (ref.raw->size() != static_cast<size_t>(input.shape(0)) * size) {
      return absl::InvalidArgumentError(absl::StrCat(
          Field(input), " has ", ref.raw->size(), " raw bytes; shape [", input.shape(0),
          "] of ", input.datatype(), " needs ", input.shape(0) * static_cast<int64_t>(size)));
    }
    for (size_t at = 0; at < ref.raw->size(); at += size) {
      int64_t value = 0;
      if (int64) {
        std::memcpy(&value, ref.raw->data() + at, 8);
      } else {
        int32_t narrow = 0;
        std::memcpy(&narrow, ref.raw->data() + at, 4);
        value = narrow;
      }
      lengths.push_back(value);
    }
  } else if (int64) {
    lengths.assign(input.contents().int64_contents().begin(),
                   input.contents().int64_contents().end());
  } else {
    lengths.assign(input.contents().int_contents().begin(), input.contents().int_contents().end());
  }
  if (static_cast<int64_t>(lengths.size()) != input.shape(0)) {
    return absl::InvalidArgumentError(absl::StrCat(Field(input), " has ", lengths.size(),
                                                   " values; shape [", input.shape(0),
                                                   "] needs ", input.shape(0)));
  }
  for (int64_t length : lengths) {
    if (length < 0 || length > INT32_MAX) {
      return absl::InvalidArgumentError(
          absl::StrCat(Field(input), " values must be in [0, 2^31); got ", length));
    }
    mask->add_key_lengths(static_cast<int32_t>(length));
  }
  return absl::OkStatus();
}

// ALLOWED (BOOL) as a BOOL tensor, one byte per element.
absl::Status ToAllowed(const InputRef& ref, pb::Tensor* tensor) {
  const Input& input = *ref.input;
  if (input.datatype() != "BOOL") {
    return absl::InvalidArgumentError(absl::StrCat(Field(input), ".datatype must be BOOL; got \"",
                                                   input.datatype().substr(0, 40), "\""));
  }
  tensor->mutable_shape()->CopyFrom(input.shape());
  tensor->set_dtype(pb::DATA_TYPE_BOOL);
  if (ref.raw != nullptr) {
    tensor->set_data(*ref.raw);
  } else {
    std::string bytes;
    for (bool value : input.contents().bool_contents()) bytes.push_back(value ? 1 : 0);
    tensor->set_data(std::move(bytes));
  }
  return absl::OkStatus();
}

// The mask inputs shared by both models.
absl::Status ToMask(const std::map<std::string, InputRef>& inputs, pb::Mask* mask) {
  if (auto it = inputs.find("KEY_LENGTHS"); it != inputs.end()) {
    if (absl::Status s = ToKeyLengths(it->second, mask); !s.ok()) return s;
  }
  if (auto it = inputs.find("ALLOWED"); it != inputs.end()) {
    if (absl::Status s = ToAllowed(it->second, mask->mutable_allowed()); !s.ok()) return s;
  }
  if (auto it = inputs.find("BIAS"); it != inputs.end()) {
    if (absl::Status s = ToFloatTensor(it->second, mask->mutable_bias()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Require(const std::map<std::string, InputRef>& inputs, const std::string& name) {
  if (inputs.contains(name)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("inputs must include ", name));
}

// The request's parameters: causal, scale, compute_dtype (and average_heads for "mha.*").
struct Parameters {
  pb::Causal causal = pb::CAUSAL_NONE;
  bool has_scale = false;
  float scale = 0;
  pb::DataType compute_dtype = pb::DATA_TYPE_UNSPECIFIED;
  bool average_heads = false;
};

absl::StatusOr<Parameters> ParseParameters(const ModelInferRequest& request, bool multi_head) {
  Parameters parsed;
  for (const auto& [name, value] : request.parameters()) {
    const std::string field = absl::StrCat("parameters[", name.substr(0, 40), "]");
    const std::string text =
        value.parameter_choice_case() == InferParameter::kStringParam ? value.string_param() : "";
    if (name == "causal") {
      const std::map<std::string, pb::Causal> kinds = {{"none", pb::CAUSAL_NONE},
                                                      {"upper_left", pb::CAUSAL_UPPER_LEFT},
                                                      {"lower_right", pb::CAUSAL_LOWER_RIGHT}};
      auto it = kinds.find(text);
      if (it == kinds.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " must be the string none, upper_left or lower_right; got \"",
            text.substr(0, 40), "\""));
      }
      parsed.causal = it->second;
    } else if (name == "scale") {
      // KServe's InferParameter has no double: a decimal string (or a whole number).
      double scale = 0;
      const bool ok =
          value.parameter_choice_case() == InferParameter::kInt64Param
              ? (scale = static_cast<double>(value.int64_param()), true)
              : value.parameter_choice_case() == InferParameter::kStringParam &&
                    absl::SimpleAtod(text, &scale);
      if (!ok) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, " must be a number as a decimal string, e.g. \"0.125\""));
      }
      parsed.has_scale = true;
      parsed.scale = static_cast<float>(scale);
    } else if (name == "compute_dtype") {
      if (text != "float32" && text != "bfloat16") {
        return absl::InvalidArgumentError(absl::StrCat(
            field, " must be the string float32 or bfloat16; got \"", text.substr(0, 40), "\""));
      }
      parsed.compute_dtype = text == "float32" ? pb::DATA_TYPE_FLOAT32 : pb::DATA_TYPE_BFLOAT16;
    } else if (name == "average_heads" && multi_head) {
      if (value.parameter_choice_case() != InferParameter::kBoolParam) {
        return absl::InvalidArgumentError(absl::StrCat(field, " must be a bool"));
      }
      parsed.average_heads = value.bool_param();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " is not a parameter of model ", request.model_name(), " (causal, scale, ",
          "compute_dtype", multi_head ? ", average_heads" : "", ")"));
    }
  }
  return parsed;
}

// The outputs asked for (default OUTPUT), and the maps they need.
absl::StatusOr<pb::AttentionMaps> ParseOutputs(const ModelInferRequest& request,
                                               InferAnswerPlan* plan) {
  plan->raw = request.raw_input_contents_size() > 0;
  bool probabilities = false, scores = false;
  for (const auto& output : request.outputs()) {
    const std::string& name = output.name();
    if (name != "OUTPUT" && name != "ATTENTION" && name != "SCORES") {
      return absl::InvalidArgumentError(absl::StrCat(
          "outputs[", name.substr(0, 40), "] is not an output of model ", request.model_name(),
          " (OUTPUT, ATTENTION, SCORES)"));
    }
    if (std::find(plan->outputs.begin(), plan->outputs.end(), name) != plan->outputs.end()) {
      return absl::InvalidArgumentError(absl::StrCat("outputs[", name, "] is asked for twice"));
    }
    plan->outputs.push_back(name);
    probabilities |= name == "ATTENTION";
    scores |= name == "SCORES";
  }
  if (plan->outputs.empty()) plan->outputs.push_back("OUTPUT");
  return probabilities && scores ? pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES
         : probabilities         ? pb::ATTENTION_MAPS_PROBABILITIES
         : scores                ? pb::ATTENTION_MAPS_SCORES
                                 : pb::ATTENTION_MAPS_NONE;
}

// The floats of an answer tensor (raw f32 bytes or values).
std::vector<float> FloatsOf(const pb::Tensor& tensor) {
  if (tensor.values_size() > 0) return {tensor.values().begin(), tensor.values().end()};
  std::vector<float> values(tensor.data().size() / sizeof(float));
  std::memcpy(values.data(), tensor.data().data(), values.size() * sizeof(float));
  return values;
}

}  // namespace

absl::Status ToAttendRequest(const ModelInferRequest& request, pb::AttendRequest* attend,
                             InferAnswerPlan* plan) {
  absl::StatusOr<std::map<std::string, InputRef>> inputs = InputsByName(
      request, {"QUERY", "KEY", "VALUE", "KEY_LENGTHS", "ALLOWED", "BIAS"});
  if (!inputs.ok()) return inputs.status();
  for (const char* name : {"QUERY", "KEY", "VALUE"}) {
    if (absl::Status s = Require(*inputs, name); !s.ok()) return s;
  }
  absl::StatusOr<Parameters> parameters = ParseParameters(request, false);
  if (!parameters.ok()) return parameters.status();
  absl::StatusOr<pb::AttentionMaps> maps = ParseOutputs(request, plan);
  if (!maps.ok()) return maps.status();
  if (absl::Status s = ToFloatTensor(inputs->at("QUERY"), attend->mutable_query()); !s.ok()) {
    return s;
  }
  if (absl::Status s = ToFloatTensor(inputs->at("KEY"), attend->mutable_key()); !s.ok()) return s;
  if (absl::Status s = ToFloatTensor(inputs->at("VALUE"), attend->mutable_value()); !s.ok()) {
    return s;
  }
  if (absl::Status s = ToMask(*inputs, attend->mutable_mask()); !s.ok()) return s;
  attend->mutable_mask()->set_causal(parameters->causal);
  if (parameters->has_scale) attend->set_scale(parameters->scale);
  attend->set_compute_dtype(parameters->compute_dtype);
  attend->set_attention_maps(*maps);
  return absl::OkStatus();
}

absl::Status ToMultiHeadRequest(const ModelInferRequest& request, const std::string& weights_name,
                                pb::MultiHeadAttendRequest* multi_head, InferAnswerPlan* plan) {
  absl::StatusOr<std::map<std::string, InputRef>> inputs =
      InputsByName(request, {"INPUT", "CONTEXT", "KEY_LENGTHS", "ALLOWED", "BIAS"});
  if (!inputs.ok()) return inputs.status();
  if (absl::Status s = Require(*inputs, "INPUT"); !s.ok()) return s;
  absl::StatusOr<Parameters> parameters = ParseParameters(request, true);
  if (!parameters.ok()) return parameters.status();
  absl::StatusOr<pb::AttentionMaps> maps = ParseOutputs(request, plan);
  if (!maps.ok()) return maps.status();
  if (absl::Status s = ToFloatTensor(inputs->at("INPUT"), multi_head->mutable_input()); !s.ok()) {
    return s;
  }
  if (auto it = inputs->find("CONTEXT"); it != inputs->end()) {
    if (absl::Status s = ToFloatTensor(it->second, multi_head->mutable_context()); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = ToMask(*inputs, multi_head->mutable_mask()); !s.ok()) return s;
  multi_head->mutable_mask()->set_causal(parameters->causal);
  multi_head->set_weights_name(weights_name);
  if (parameters->has_scale) multi_head->set_scale(parameters->scale);
  multi_head->set_compute_dtype(parameters->compute_dtype);
  multi_head->set_attention_maps(*maps);
  multi_head->set_average_heads(parameters->average_heads);
  return absl::OkStatus();
}

void ToInferResponse(const ModelInferRequest& request, const InferAnswerPlan& plan,
                     const pb::AttendResponse& answer, inference::ModelInferResponse* response) {
  response->set_model_name(request.model_name());
  response->set_model_version(request.model_version());
  response->set_id(request.id());
  for (const std::string& name : plan.outputs) {
    const pb::Tensor& tensor = name == "OUTPUT"      ? answer.output()
                               : name == "ATTENTION" ? answer.attention()
                                                     : answer.scores();
    auto* output = response->add_outputs();
    output->set_name(name);
    output->set_datatype("FP32");
    output->mutable_shape()->CopyFrom(tensor.shape());
    if (plan.raw && tensor.values_size() == 0) {
      response->add_raw_output_contents(tensor.data());
    } else if (plan.raw) {
      const std::vector<float> values = FloatsOf(tensor);
      response->add_raw_output_contents(reinterpret_cast<const char*>(values.data()),
                                        values.size() * sizeof(float));
    } else {
      const std::vector<float> values = FloatsOf(tensor);
      output->mutable_contents()->mutable_fp32_contents()->Add(values.begin(), values.end());
    }
  }
}

}  // namespace attn
