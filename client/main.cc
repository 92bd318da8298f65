// attn-client: the command-line client of attnserve.
//   attn-client info | health [--service S] | demo | attend --shape B,H,Sq,Sk,D [...] [--verify]
//   attn-client attend ... --save_request=F | --save_request_json=F   (write it, call nothing)
//   attn-client heatmap --out=F.png|F.svg [--tokens=I,am,good] [--head=N|--average] [--shape ...]
//   attn-client mha [--batch B --tokens S --d_model M --heads H ...] [--weights_name N] [--verify]
//   attn-client weights list | put NAME --weights_file F.safetensors | delete NAME
//   attn-client decode [--prefill N --steps M --heads H --kv_heads G --head_dim D
//                      --kv_dtype float32|bfloat16] [--verify]
//   attn-client bench --shape B,H,Sq,Sk,D [--concurrency N --connections C --duration 10s
//                     --warmup 1s --json]
//   attn-client bench --decode [--prefill N --heads H --kv_heads G --head_dim D --kv_dtype T]
// Every subcommand takes --address. Exit status 0 = success, 1 = the call or the check failed,
// 2 = bad usage.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/attend_flags.h"
#include "client/attention_client.h"
#include "client/decode.h"
#include "client/demo.h"
#include "client/heatmap.h"
#include "client/load_flags.h"
#include "client/random_multi_head.h"
#include "client/random_request.h"
#include "client/verify.h"
#include "client/weights_file_proto.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/delimited_message_util.h"
#include "google/protobuf/util/json_util.h"
#include "proto/tensor_codec.h"
#include "src/runtime/memory_reuse.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "server host:port");
ABSL_FLAG(double, timeout_s, 60, "deadline of each call, seconds");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA of the server's certificate: connect over TLS");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mutual TLS; with --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM key of --tls_cert");
ABSL_FLAG(std::string, token_file, "",
          "file holding a bearer token, sent as 'authorization: Bearer <token>'");
ABSL_FLAG(std::string, service, "attention.v1.AttentionService",
          "health: the service to check (\"\" = the whole server)");
ABSL_FLAG(std::string, connections, "0",
          "bench: connections the concurrent calls are spread over, 1 to --concurrency "
          "(0 = one per call)");
ABSL_FLAG(bool, verify, false,
          "attend, mha: check the answer against the double reference; decode: check every "
          "step against stateless Attend");
ABSL_FLAG(int64_t, batch, 1, "mha: batch size B");
ABSL_FLAG(std::string, tokens, "",
          "mha: tokens per sequence S (default 16); heatmap: comma-separated token labels");
ABSL_FLAG(int64_t, d_model, 64, "mha: embedding width (random weights)");
ABSL_FLAG(int64_t, heads, 4,
          "mha, decode: attention heads (random weights; --kv_heads for GQA)");
ABSL_FLAG(int64_t, head_dim, 64, "decode: dims per head");
ABSL_FLAG(int64_t, prefill, 1000, "decode: tokens of the first step; bench --decode: context");
ABSL_FLAG(bool, decode, false,
          "bench: decode steps on KV-cache sessions (one per call kept outstanding; --prefill, "
          "--heads, --kv_heads, --head_dim, --kv_dtype) instead of Attend");
ABSL_FLAG(int64_t, steps, 100, "decode: one-token steps after it");
ABSL_FLAG(std::string, kv_dtype, "float32", "decode: what the session's pages hold, float32 or "
          "bfloat16");
ABSL_FLAG(bool, add_norm, false, "mha: random weights include Add & Norm (LayerNorm)");
ABSL_FLAG(bool, average_heads, false, "mha: return maps averaged over heads");
ABSL_FLAG(std::string, weights_name, "", "mha: use the server's named weights instead");
ABSL_FLAG(std::string, weights_file, "", "weights put: the .safetensors file to upload");
ABSL_FLAG(std::string, save_request, "",
          "attend: write the AttendRequest to this file and exit (no call): its varint length, "
          "then the serialized message, as ghz -b/-B read it");
ABSL_FLAG(std::string, save_request_json, "",
          "attend: write the AttendRequest as protobuf JSON (tensors in \"values\"; f32 only) "
          "to this file and exit (no call)");
ABSL_FLAG(std::string, out, "", "heatmap: the image to write, FILE.png or FILE.svg");
ABSL_FLAG(std::optional<int64_t>, head, std::nullopt, "heatmap: the head to draw (default 0)");
ABSL_FLAG(bool, average, false, "heatmap: draw the average over heads instead of --head");

namespace {

namespace pb = attention::v1;

constexpr char kUsage[] =
    "attn-client <command> [flags]\n"
    "  info     print the server's version, oneDNN, threads and limits\n"
    "  health   exit 0 when --service is SERVING\n"
    "  demo     the \"I am good\" example, step by step\n"
    "  attend   send random inputs of --shape; --verify checks the answer; --save_request=F\n"
    "           (or --save_request_json=F) writes the request to F instead of sending it\n"
    "  heatmap  draw an attention map (batch 0, --head or --average) to --out=F.png or F.svg:\n"
    "           the demo's, or random inputs of --shape; --tokens=a,b,c labels the axes\n"
    "  mha      MultiHeadAttend on random embeddings, with random weights (--verify checks\n"
    "           them) or the server's --weights_name\n"
    "  weights  list | put NAME --weights_file F.safetensors | delete NAME\n"
    "  decode   a KV-cache session: --prefill tokens, then --steps one-token steps of random\n"
    "           q, k, v; prints the wire bytes and time per step; --verify checks every step\n"
    "           against stateless Attend resending the whole past\n"
    "  bench    closed-loop load: --concurrency calls of --shape outstanding for --duration\n"
    "           after --warmup, over --connections (default one per call); prints requests/s,\n"
    "           latency percentiles, errors by code (--json); --decode: decode steps instead,\n"
    "           each caller on its own KV-cache session of --prefill tokens\n";

int Usage(const std::string& problem) {
  std::cerr << problem << "\n\n" << kUsage;
  return 2;
}

int Failed(const absl::Status& status) {
  std::cerr << "error: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
            << "\n";
  return 1;
}

// A client of --address with --timeout_s and `security`, on a connection of its own.
std::unique_ptr<attn::AttentionClient> NewClient(const attn::ClientSecurity& security) {
  return std::make_unique<attn::AttentionClient>(
      absl::GetFlag(FLAGS_address), 256 << 20,
      absl::Milliseconds(absl::GetFlag(FLAGS_timeout_s) * 1000), security);
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

int WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary);
  file << bytes;
  file.close();
  if (!file) return Failed(absl::InternalError(absl::StrCat("cannot write ", path)));
  std::printf("wrote %s (%zu bytes)\n", path.c_str(), bytes.size());
  return 0;
}

// attend --save_request / --save_request_json: the request goes to files, not to the server.
int SaveRequest(const attn::RandomAttend& sent) {
  const std::string binary_path = absl::GetFlag(FLAGS_save_request);
  const std::string json_path = absl::GetFlag(FLAGS_save_request_json);
  if (!json_path.empty() && sent.spec.dtype != attn::DType::kFloat32) {
    return Usage("attend: --save_request_json needs --dtype=f32 (JSON \"values\" are float32)");
  }
  if (!binary_path.empty()) {
    // Length-delimited: ghz reads a file as count-delimited messages first, and a bare message
    // can parse as a wrong one that way.
    std::string bytes;
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::util::SerializeDelimitedToZeroCopyStream(sent.request, &stream);
    if (const int status = WriteFile(binary_path, bytes)) return status;
  }
  if (json_path.empty()) return 0;
  const attn::AttentionDims& d = sent.spec.dims;
  const int64_t q_shape[] = {d.batch, d.heads, d.q_len, d.head_dim};
  const int64_t k_shape[] = {d.batch, d.kv_heads, d.kv_len, d.head_dim};
  const int64_t v_shape[] = {d.batch, d.kv_heads, d.kv_len, d.value_dim};
  pb::AttendRequest request = sent.request;
  for (auto [shape, values, tensor] :
       {std::tuple(std::span<const int64_t>(q_shape), &sent.query, request.mutable_query()),
        std::tuple(std::span<const int64_t>(k_shape), &sent.key, request.mutable_key()),
        std::tuple(std::span<const int64_t>(v_shape), &sent.value, request.mutable_value())}) {
    tensor->Clear();
    attn::EncodeFloatTensor(shape, values->data(), attn::DType::kFloat32, true, tensor);
  }
  std::string json;
  const auto printed = google::protobuf::util::MessageToJsonString(request, &json);
  if (!printed.ok()) return Failed(absl::InternalError(printed.ToString()));
  return WriteFile(json_path, json);
}

int Attend(const attn::AttentionClient& client) {
  absl::StatusOr<attn::RandomAttendSpec> spec = attn::RandomAttendSpecFromFlags();
  if (!spec.ok()) return Usage(std::string(spec.status().message()));
  const attn::RandomAttend sent = attn::MakeRandomAttend(*spec);
  if (!absl::GetFlag(FLAGS_save_request).empty() ||
      !absl::GetFlag(FLAGS_save_request_json).empty()) {
    return SaveRequest(sent);
  }
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

// The decode options of the flags (decode, bench --decode), or a usage error.
absl::StatusOr<attn::DecodeOptions> DecodeOptionsFromFlags() {
  attn::DecodeOptions options;
  options.heads = absl::GetFlag(FLAGS_heads);
  options.kv_heads = absl::GetFlag(FLAGS_kv_heads) == 0 ? options.heads
                                                        : absl::GetFlag(FLAGS_kv_heads);
  options.head_dim = absl::GetFlag(FLAGS_head_dim);
  options.prefill = absl::GetFlag(FLAGS_prefill);
  options.steps = absl::GetFlag(FLAGS_steps);
  options.verify = absl::GetFlag(FLAGS_verify);
  options.seed = absl::GetFlag(FLAGS_seed);
  const std::string kv_dtype = absl::GetFlag(FLAGS_kv_dtype);
  if (kv_dtype != "float32" && kv_dtype != "bfloat16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_dtype=", kv_dtype, ": use float32 or bfloat16"));
  }
  options.bf16_pages = kv_dtype == "bfloat16";
  if (options.prefill < 1 || options.steps < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--prefill=", options.prefill,
                                                   " --steps=", options.steps,
                                                   ": use --prefill >= 1 and --steps >= 0"));
  }
  return options;
}

// decode: a synthetic decode through a KV-cache session (client/decode.h).
int Decode(const attn::AttentionClient& client) {
  absl::StatusOr<attn::DecodeOptions> parsed = DecodeOptionsFromFlags();
  if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
  const attn::DecodeOptions& options = *parsed;
  const std::string kv_dtype = options.bf16_pages ? "bfloat16" : "float32";
  absl::StatusOr<attn::DecodeReport> report = attn::RunDecode(client, options);
  if (!report.ok()) return Failed(report.status());
  std::printf("decode H=%ld Hkv=%ld D=%ld %s pages: prefill %ld tokens %.2f ms, %ld steps "
              "%.3f ms each (median), %ld bytes on the wire per step; %ld tokens cached\n",
              options.heads, options.kv_heads, options.head_dim, kv_dtype.c_str(),
              options.prefill, report->prefill_ms, options.steps, report->step_ms_median,
              report->step_wire_bytes, report->tokens);
  if (!options.verify) return 0;
  std::printf("verify: %ld steps against stateless Attend (%ld bytes on the wire for the last), "
              "max |error| %.3g <= %.0e: OK\n",
              report->steps_checked, report->stateless_wire_bytes, report->max_abs_error,
              attn::kDecodeTolerance);
  return 0;
}

// bench --decode: a closed loop of decode steps, each client on its own KV-cache session (prefilled
// once, truncated back every attn::kDecodeLoadSteps steps), closed after the run.
int BenchDecode(const attn::ClientSecurity& security) {
  absl::StatusOr<attn::DecodeOptions> decode = DecodeOptionsFromFlags();
  if (!decode.ok()) return Usage(std::string(decode.status().message()));
  absl::StatusOr<attn::LoadOptions> options = attn::LoadOptionsFromFlags();
  if (!options.ok()) return Usage(std::string(options.status().message()));
  std::vector<std::unique_ptr<attn::AttentionClient>> clients;
  for (int i = 0; i < options->concurrency; ++i) clients.push_back(NewClient(security));
  std::vector<std::string> ids(options->concurrency);
  std::vector<int64_t> wire_bytes(options->concurrency, 0);
  const attn::LoadResult result = attn::RunClosedLoop(*options, [&](int i) {
    return attn::MakeDecodeLoadCall(*clients[i], *decode, decode->seed + i, &ids[i],
                                    &wire_bytes[i]);
  });
  for (int i = 0; i < options->concurrency; ++i) {
    if (!ids[i].empty()) clients[i]->CloseSession(ids[i]).IgnoreError();  // or it expires
  }
  return attn::PrintLoadResult(
      {.target = absl::GetFlag(FLAGS_address),
       .request = absl::StrCat("decode step H=", decode->heads, " Hkv=", decode->kv_heads,
                               " D=", decode->head_dim, " ",
                               decode->bf16_pages ? "bfloat16" : "float32", " pages, context ",
                               decode->prefill, "..", decode->prefill + attn::kDecodeLoadSteps - 1,
                               ", ", wire_bytes[0], " bytes on the wire per step"),
       .connections = options->concurrency},
      *options, result);
}

// bench: a closed loop of Attend calls, each caller with its own copy of the request, the
// callers spread round robin over --connections connections.
int Bench(const attn::ClientSecurity& security) {
  if (absl::GetFlag(FLAGS_decode)) return BenchDecode(security);
  absl::StatusOr<attn::RandomAttendSpec> spec = attn::RandomAttendSpecFromFlags();
  if (!spec.ok()) return Usage(std::string(spec.status().message()));
  absl::StatusOr<attn::LoadOptions> options = attn::LoadOptionsFromFlags();
  if (!options.ok()) return Usage(std::string(options.status().message()));
  // A string flag, so that a value that is no number is a usage error too (exit 2).
  const std::string connections_flag = absl::GetFlag(FLAGS_connections);
  int connections = 0;
  if (!absl::SimpleAtoi(connections_flag, &connections) || connections < 0 ||
      connections > options->concurrency) {
    return Usage(absl::StrCat("--connections=", connections_flag, ": use 1 to --concurrency (",
                              options->concurrency, "), or 0 for one per call"));
  }
  if (connections == 0) connections = options->concurrency;
  std::vector<std::unique_ptr<attn::AttentionClient>> clients;
  for (int i = 0; i < connections; ++i) clients.push_back(NewClient(security));
  attn::KeepFreedMemoryForReuse();  // as attnserve and engine-load do
  const pb::AttendRequest request = attn::MakeRandomAttend(*spec).request;
  const attn::LoadResult result = attn::RunClosedLoop(*options, [&](int i) -> attn::LoadCall {
    const attn::AttentionClient* client = clients[i % connections].get();
    return [client, request, response = pb::AttendResponse()]() mutable {
      return client->Attend(request, &response);
    };
  });
  return attn::PrintLoadResult({.target = absl::GetFlag(FLAGS_address),
                                .request = attn::DescribeRandomAttend(*spec),
                                .connections = connections},
                               *options, result);
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
  const std::string tokens = absl::GetFlag(FLAGS_tokens);
  spec.q_len = 16;
  if (!tokens.empty() && !absl::SimpleAtoi(tokens, &spec.q_len)) {
    return Usage("mha: --tokens must be a number");
  }
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

// The heatmap's request (the demo's, or random inputs of --shape) and what labels its axes.
struct HeatmapInput {
  pb::AttendRequest request;
  int64_t heads = 0, q_len = 0, kv_len = 0;
  std::vector<std::string> row_labels, col_labels;
};

absl::StatusOr<HeatmapInput> HeatmapInputFromFlags() {
  HeatmapInput in;
  absl::StatusOr<pb::Causal> causal = attn::CausalFromFlag();
  if (!causal.ok()) return causal.status();
  if (absl::GetFlag(FLAGS_shape).has_value()) {
    absl::StatusOr<attn::RandomAttendSpec> spec = attn::RandomAttendSpecFromFlags();
    if (!spec.ok()) return spec.status();
    spec->maps = pb::ATTENTION_MAPS_PROBABILITIES;
    in.request = attn::MakeRandomAttend(*spec).request;
    in.heads = spec->dims.heads;
    in.q_len = spec->dims.q_len;
    in.kv_len = spec->dims.kv_len;
    for (int64_t i = 0; i < in.q_len; ++i) in.row_labels.push_back(absl::StrCat("q", i));
    for (int64_t j = 0; j < in.kv_len; ++j) in.col_labels.push_back(absl::StrCat("k", j));
  } else {
    in.request = attn::DemoRequest();
    in.request.set_attention_maps(pb::ATTENTION_MAPS_PROBABILITIES);
    in.request.mutable_mask()->set_causal(*causal);
    in.heads = in.request.query().shape(1);
    in.q_len = in.request.query().shape(2);
    in.kv_len = in.request.key().shape(2);
    in.row_labels = in.col_labels = attn::DemoTokens();
  }
  const std::string tokens = absl::GetFlag(FLAGS_tokens);
  if (!tokens.empty()) {
    std::vector<std::string> words = absl::StrSplit(tokens, ',');
    if (static_cast<int64_t>(words.size()) != in.q_len || in.q_len != in.kv_len) {
      return absl::InvalidArgumentError(absl::StrCat(
          "heatmap: --tokens has ", words.size(), " tokens but the map is ", in.q_len, " x ",
          in.kv_len, " (queries x keys); they must all match"));
    }
    in.row_labels = in.col_labels = words;
  }
  return in;
}

int Heatmap(const attn::AttentionClient& client) {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return Usage("heatmap: give --out=FILE.png or --out=FILE.svg");
  absl::StatusOr<attn::ImageFormat> format = attn::ImageFormatOf(out);
  if (!format.ok()) return Usage(std::string(format.status().message()));
  absl::StatusOr<HeatmapInput> in = HeatmapInputFromFlags();
  if (!in.ok()) return Usage(std::string(in.status().message()));
  const bool average = absl::GetFlag(FLAGS_average);
  const std::optional<int64_t> head_flag = absl::GetFlag(FLAGS_head);
  const int64_t head = head_flag.value_or(0);
  if (average && head_flag.has_value()) {
    return Usage("heatmap: give --head or --average, not both");
  }
  if (head < 0 || head >= in->heads) {
    return Usage(absl::StrCat("heatmap: --head=", head,
                              " is out of range: the request has heads 0 to ", in->heads - 1));
  }
  absl::StatusOr<pb::AttendResponse> response = client.Attend(in->request);
  if (!response.ok()) return Failed(response.status());
  absl::StatusOr<attn::FloatTensor> maps =
      attn::DecodeFloatTensor("attention", response->attention(), INT64_MAX);
  if (!maps.ok()) return Failed(maps.status());

  // Batch 0: head `head`, or the mean over the heads.
  attn::Heatmap map;
  map.rows = static_cast<int>(in->q_len);
  map.cols = static_cast<int>(in->kv_len);
  const int64_t cells = in->q_len * in->kv_len;
  map.values.assign(cells, 0.0f);
  const int64_t first = average ? 0 : head, last = average ? in->heads : head + 1;
  for (int64_t h = first; h < last; ++h) {
    for (int64_t i = 0; i < cells; ++i) {
      map.values[i] += maps->data[h * cells + i] / static_cast<float>(last - first);
    }
  }
  map.row_labels = in->row_labels;
  map.col_labels = in->col_labels;
  map.title = average ? absl::StrCat("Attention, average of ", in->heads, " heads")
                      : absl::StrCat("Attention, head ", head);
  map.row_axis = "queries";
  map.col_axis = "keys";
  const absl::Status written = attn::WriteHeatmap(map, *format, out);
  if (!written.ok()) return Failed(written);
  std::printf("wrote %s: %s, %d x %d (queries x keys)\n", out.c_str(), map.title.c_str(),
              map.rows, map.cols);
  return 0;
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

absl::StatusOr<std::string> ReadFileFlag(const char* flag, const std::string& path) {
  if (path.empty()) return std::string();
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(flag, ": cannot read ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// TLS files and the token (the token file's first line, trimmed) from the flags.
absl::StatusOr<attn::ClientSecurity> SecurityFromFlags() {
  attn::ClientSecurity security;
  const std::pair<const char*, std::string*> files[] = {
      {"--tls_ca", &security.root_ca},
      {"--tls_cert", &security.cert_chain},
      {"--tls_key", &security.private_key},
      {"--token_file", &security.token}};
  const std::string paths[] = {absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert),
                               absl::GetFlag(FLAGS_tls_key), absl::GetFlag(FLAGS_token_file)};
  for (size_t i = 0; i < 4; ++i) {
    absl::StatusOr<std::string> contents = ReadFileFlag(files[i].first, paths[i]);
    if (!contents.ok()) return contents.status();
    *files[i].second = *std::move(contents);
  }
  security.token = std::string(absl::StripAsciiWhitespace(
      security.token.substr(0, security.token.find('\n'))));
  if (security.root_ca.empty() && !security.cert_chain.empty()) {
    return absl::InvalidArgumentError("--tls_cert needs --tls_ca");
  }
  return security;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Usage("expected a command");
  const std::string command = args[1];
  if (command != "weights" && args.size() != 2) return Usage("expected exactly one command");
  absl::StatusOr<attn::ClientSecurity> security = SecurityFromFlags();
  if (!security.ok()) return Usage(std::string(security.status().message()));
  if (command == "bench") return Bench(*security);
  const std::unique_ptr<attn::AttentionClient> client_of_flags = NewClient(*security);
  const attn::AttentionClient& client = *client_of_flags;
  if (command == "info") return Info(client);
  if (command == "health") return Health(client);
  if (command == "demo") {
    const absl::Status status = attn::RunDemo(client, std::cout);
    return status.ok() ? 0 : Failed(status);
  }
  if (command == "attend") return Attend(client);
  if (command == "mha") return MultiHead(client);
  if (command == "decode") return Decode(client);
  if (command == "heatmap") return Heatmap(client);
  if (command == "weights") return Weights(client, args);
  return Usage(absl::StrCat("unknown command \"", command, "\""));
}
