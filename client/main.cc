// attn-client: the command-line client of attnserve.
//   attn-client info | health [--service S] | demo | attend --shape B,H,Sq,Sk,D [...] [--verify]
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
#include "client/random_request.h"
#include "client/verify.h"

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
ABSL_FLAG(bool, verify, false, "attend: check the answer against the double reference");

namespace {

namespace pb = attention::v1;

constexpr char kUsage[] =
    "attn-client <command> [flags]\n"
    "  info     print the server's version, oneDNN, threads and limits\n"
    "  health   exit 0 when --service is SERVING\n"
    "  demo     the \"I am good\" example, step by step\n"
    "  attend   send random inputs of --shape; --verify checks the answer\n";

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

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) return Usage("expected exactly one command");
  const std::string command = args[1];
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
  return Usage(absl::StrCat("unknown command \"", command, "\""));
}
