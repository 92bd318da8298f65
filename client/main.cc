// attn-client: the command-line client of attnserve.
//   attn-client info | health [--service S] | demo | attend --shape B,H,Sq,Sk,D [...] [--verify]
//   attn-client mha [--batch B --tokens S --d_model M --heads H ...] [--weights_name N] [--verify]
//   attn-client weights list | put NAME --weights_file F.safetensors | delete NAME
// Every subcommand takes --address. Exit status 0 = success, 1 = the call or the check failed,
// 2 = bad usage.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/attention_client.h"
#include "client/demo.h"
#include "client/random_multi_head.h"
#include "client/random_request.h"
#include "client/verify.h"
#include "client/weights_file_proto.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "server host:port");
ABSL_FLAG(double, timeout_s, 60, "deadline of each call, seconds");
ABSL_FLAG(std::string, service, "attention.v1.AttentionService",
          "health: the service to check (\"\" = the whole server)");
ABSL_FLAG(std::string, shape, "1,8,128,128,64", "attend: B,H,Sq,Sk,D");
ABSL_FLAG(int64_t, kv_heads, 0, "attend: key/value heads (0 = H; H must be a multiple)");
ABSL_FLAG(int64_t, value_dim, 0, "attend: value head size Dv (0 = D)");
ABSL_FLAG(std::string, causal, "none", "attend: none, upper_left or lower_right");
ABSL_FLAG(std::string, maps, "probabilities", "attend: none, probabilities, scores or both");
ABSL_FLAG(std::string, dtype, "f32", "attend: f32, bf16 or f16 (inputs and output)");
ABSL_FLAG(uint32_t, seed, 1, "attend: random seed");
ABSL_FLAG(bool, verify, false, "attend, mha: check the answer against the double reference");
ABSL_FLAG(int64_t, batch, 1, "mha: batch size B");
ABSL_FLAG(int64_t, tokens, 16, "mha: tokens per sequence S (self-attention)");
ABSL_FLAG(int64_t, d_model, 64, "mha: embedding width (random weights)");
ABSL_FLAG(int64_t, heads, 4, "mha: attention heads (random weights; --kv_heads for GQA)");
ABSL_FLAG(bool, add_norm, false, "mha: random weights include Add & Norm (LayerNorm)");
ABSL_FLAG(bool, average_heads, false, "mha: return maps averaged over heads");
ABSL_FLAG(std::string, weights_name, "", "mha: use the server's named weights instead");
ABSL_FLAG(std::string, weights_file, "", "weights put: the .safetensors file to upload");

namespace {

namespace pb = attention::v1;

constexpr char kUsage[] =
    "attn-client <command> [flags]\n"
    "  info     print the server's version, oneDNN, threads and limits\n"
    "  health   exit 0 when --service is SERVING\n"
    "  demo     the \"I am good\" example, step by step\n"
    "  attend   send random inputs of --shape; --verify checks the answer\n"
    "  mha      MultiHeadAttend on random embeddings, with random weights (--verify checks\n"
    "           them) or the server's --weights_name\n"
    "  weights  list | put NAME --weights_file F.safetensors | delete NAME\n";

int Usage(const std::string& problem) {
  std::cerr << problem << "\n\n" << kUsage;
  return 2;
}

int Failed(const absl::Status& status) {
  std::cerr << "error: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
            << "\n";
  return 1;
}

int Info(const attn::AttentionClient& client) {
  absl::StatusOr<pb::ServerInfo> info = client.GetServerInfo();
  if (!info.ok()) return Failed(info.status());
  std::cout << info->DebugString();
  return 0;
}

int Health(const attn::AttentionClient& client) {
  const std::string service = absl::GetFlag(FLAGS_service);
  auto status = client.CheckHealth(service);
  if (!status.ok()) return Failed(status.status());
  std::cout << "\"" << service << "\": "
            << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(*status) << "\n";
  return *status == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

absl::StatusOr<attn::RandomAttendSpec> SpecFromFlags() {
  absl::StatusOr<std::vector<int64_t>> shape = attn::ParseShapeList(absl::GetFlag(FLAGS_shape));
  if (!shape.ok()) return shape.status();
  attn::RandomAttendSpec spec;
  const std::vector<int64_t>& s = *shape;
  const int64_t kv_heads = absl::GetFlag(FLAGS_kv_heads);
  const int64_t value_dim = absl::GetFlag(FLAGS_value_dim);
  spec.dims = {.batch = s[0], .heads = s[1], .kv_heads = kv_heads > 0 ? kv_heads : s[1],
               .q_len = s[2], .kv_len = s[3], .head_dim = s[4],
               .value_dim = value_dim > 0 ? value_dim : s[4]};
  const std::string causal = absl::GetFlag(FLAGS_causal);
  if (causal == "none") {
    spec.causal = pb::CAUSAL_NONE;
  } else if (causal == "upper_left") {
    spec.causal = pb::CAUSAL_UPPER_LEFT;
  } else if (causal == "lower_right") {
    spec.causal = pb::CAUSAL_LOWER_RIGHT;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--causal \"", causal, "\": use none, upper_left or lower_right"));
  }
  const std::string maps = absl::GetFlag(FLAGS_maps);
  if (maps == "none") {
    spec.maps = pb::ATTENTION_MAPS_NONE;
  } else if (maps == "probabilities") {
    spec.maps = pb::ATTENTION_MAPS_PROBABILITIES;
  } else if (maps == "scores") {
    spec.maps = pb::ATTENTION_MAPS_SCORES;
  } else if (maps == "both") {
    spec.maps = pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--maps \"", maps, "\": use none, probabilities, scores or both"));
  }
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  if (dtype == "f32") {
    spec.dtype = attn::DType::kFloat32;
  } else if (dtype == "bf16") {
    spec.dtype = attn::DType::kBFloat16;
  } else if (dtype == "f16") {
    spec.dtype = attn::DType::kFloat16;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--dtype \"", dtype, "\": use f32, bf16 or f16"));
  }
  spec.seed = absl::GetFlag(FLAGS_seed);
  return spec;
}

int Attend(const attn::AttentionClient& client) {
  absl::StatusOr<attn::RandomAttendSpec> spec = SpecFromFlags();
  if (!spec.ok()) return Usage(std::string(spec.status().message()));
  const attn::RandomAttend sent = attn::MakeRandomAttend(*spec);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<pb::AttendResponse> response = client.Attend(sent.request);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!response.ok()) return Failed(response.status());
  const attn::AttentionDims& d = spec->dims;
  std::printf("attend B=%ld H=%ld Hkv=%ld Sq=%ld Sk=%ld D=%ld Dv=%ld: output [%s], "
              "client %.3f ms, server queue %ld us, compute %ld us\n",
              d.batch, d.heads, d.kv_heads, d.q_len, d.kv_len, d.head_dim, d.value_dim,
              absl::StrJoin(response->output().shape(), ",").c_str(), ms,
              response->timing().queue_us(), response->timing().compute_us());
  if (!absl::GetFlag(FLAGS_verify)) return 0;
  const attn::VerifyReport report = attn::VerifyAttend(sent, *response);
  std::printf("verify: max |error| output %.3g, probabilities %.3g, scores %.3g: %s\n",
              report.output_max_abs_error, report.probabilities_max_abs_error,
              report.scores_max_abs_error, report.ok ? "OK" : report.failure.c_str());
  return report.ok ? 0 : 1;
}

// d_model of the server's weights `name`.
absl::StatusOr<int64_t> NamedWeightsWidth(const attn::AttentionClient& client,
                                          const std::string& name) {
  absl::StatusOr<pb::ListWeightsResponse> list = client.ListWeights();
  if (!list.ok()) return list.status();
  for (const pb::WeightsInfo& info : list->weights()) {
    if (info.name() == name) return info.d_model();
  }
  return absl::NotFoundError(absl::StrCat("the server holds no weights named \"", name, "\""));
}

int MultiHead(const attn::AttentionClient& client) {
  attn::RandomMultiHeadSpec spec;
  spec.batch = absl::GetFlag(FLAGS_batch);
  spec.q_len = absl::GetFlag(FLAGS_tokens);
  spec.d_model = absl::GetFlag(FLAGS_d_model);
  spec.heads = absl::GetFlag(FLAGS_heads);
  spec.kv_heads = absl::GetFlag(FLAGS_kv_heads);
  spec.add_norm = absl::GetFlag(FLAGS_add_norm);
  spec.average_heads = absl::GetFlag(FLAGS_average_heads);
  spec.seed = absl::GetFlag(FLAGS_seed);
  const std::string causal = absl::GetFlag(FLAGS_causal);
  if (causal != "none" && causal != "upper_left") {
    return Usage("mha: --causal must be none or upper_left (self-attention)");
  }
  spec.causal = causal == "upper_left";
  const std::string name = absl::GetFlag(FLAGS_weights_name);
  if (!name.empty()) {
    if (absl::GetFlag(FLAGS_verify)) return Usage("mha: --verify needs random weights, not --weights_name");
    absl::StatusOr<int64_t> width = NamedWeightsWidth(client, name);
    if (!width.ok()) return Failed(width.status());
    spec.d_model = *width;
    spec.heads = 1;
  }
  if (spec.batch < 1 || spec.q_len < 1 || spec.heads < 1 || spec.d_model % spec.heads != 0 ||
      (spec.kv_heads > 0 && spec.heads % spec.kv_heads != 0)) {
    return Usage("mha: need --batch, --tokens >= 1, --d_model a multiple of --heads, and --heads "
                 "a multiple of --kv_heads");
  }
  attn::RandomMultiHead sent = attn::MakeRandomMultiHead(spec);
  if (!name.empty()) sent.request.set_weights_name(name);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<pb::AttendResponse> response = client.MultiHeadAttend(sent.request);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!response.ok()) return Failed(response.status());
  std::printf("mha input [%ld,%ld,%ld] weights %s: output [%s], maps [%s], client %.3f ms, "
              "server queue %ld us, compute %ld us\n",
              spec.batch, spec.q_len, spec.d_model, name.empty() ? "random" : name.c_str(),
              absl::StrJoin(response->output().shape(), ",").c_str(),
              absl::StrJoin(response->attention().shape(), ",").c_str(), ms,
              response->timing().queue_us(), response->timing().compute_us());
  if (!absl::GetFlag(FLAGS_verify)) return 0;
  const attn::MultiHeadCheck check = attn::CheckMultiHead(sent, *response);
  const bool ok = check.output_max_abs_error <= 1e-4 && check.probabilities_max_abs_error <= 1e-4;
  std::printf("verify: max |error| output %.3g, probabilities %.3g (limit 1e-4): %s\n",
              check.output_max_abs_error, check.probabilities_max_abs_error,
              ok ? "OK" : "MISMATCH");
  return ok ? 0 : 1;
}

void PrintWeightsInfo(const pb::WeightsInfo& w) {
  std::printf("%s: num_heads=%d num_kv_heads=%d d_model=%ld head_dim=%ld value_dim=%ld "
              "d_out=%ld bytes=%ld\n",
              w.name().c_str(), w.num_heads(), w.num_kv_heads(), w.d_model(), w.head_dim(),
              w.value_dim(), w.d_out(), w.bytes());
}

int Weights(const attn::AttentionClient& client, const std::vector<char*>& args) {
  const std::string verb = args.size() > 2 ? args[2] : "";
  if (verb == "list" && args.size() == 3) {
    absl::StatusOr<pb::ListWeightsResponse> list = client.ListWeights();
    if (!list.ok()) return Failed(list.status());
    for (const pb::WeightsInfo& info : list->weights()) PrintWeightsInfo(info);
    return 0;
  }
  if (verb == "put" && args.size() == 4) {
    const std::string file = absl::GetFlag(FLAGS_weights_file);
    if (file.empty()) return Usage("weights put: give --weights_file F.safetensors");
    absl::StatusOr<pb::Weights> weights = attn::WeightsProtoFromFile(file);
    if (!weights.ok()) return Failed(weights.status());
    pb::PutWeightsRequest request;
    request.set_name(args[3]);
    *request.mutable_weights() = *std::move(weights);
    absl::StatusOr<pb::WeightsInfo> info = client.PutWeights(request);
    if (!info.ok()) return Failed(info.status());
    PrintWeightsInfo(*info);
    return 0;
  }
  if (verb == "delete" && args.size() == 4) {
    const absl::Status status = client.DeleteWeights(args[3]);
    if (!status.ok()) return Failed(status);
    std::printf("deleted %s\n", args[3]);
    return 0;
  }
  return Usage("weights: use list, put NAME --weights_file F, or delete NAME");
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Usage("expected a command");
  const std::string command = args[1];
  if (command != "weights" && args.size() != 2) return Usage("expected exactly one command");
  const attn::AttentionClient client(
      absl::GetFlag(FLAGS_address), 256 << 20,
      absl::Milliseconds(absl::GetFlag(FLAGS_timeout_s) * 1000));
  if (command == "info") return Info(client);
  if (command == "health") return Health(client);
  if (command == "demo") {
    const absl::Status status = attn::RunDemo(client, std::cout);
    return status.ok() ? 0 : Failed(status);
  }
  if (command == "attend") return Attend(client);
  if (command == "mha") return MultiHead(client);
  if (command == "weights") return Weights(client, args);
  return Usage(absl::StrCat("unknown command \"", command, "\""));
}
