// transport-ceiling: the most Attend calls per second gRPC and loopback TCP allow for one
// shape's bytes, the server overhead's ceiling. It serves AttentionService.Attend with the
// answer attnserve would give to `attn-client bench`'s request (same request flags: computed
// once at start-up by the server's own RunAttend, so it is the real answer), serialised once
// and handed to gRPC as shared slices on every call: the request is received but neither parsed
// nor computed. Listens like attnserve (--address, --port_file, the same message-size limit)
// until SIGTERM/SIGINT. bench/server_overhead.sh measures it next to the server.
#include <pthread.h>
#include <signal.h>

#include <fstream>
#include <iostream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "attention/v1/attention.grpc.pb.h"
#include "client/attend_flags.h"
#include "client/random_request.h"
#include "server/attend_call.h"
#include "server/server_runner.h"
#include "src/engine/attention_engine.h"

ABSL_FLAG(std::string, address, "127.0.0.1:0", "host:port to listen on; port 0 picks a free one");
ABSL_FLAG(std::string, port_file, "",
          "if set, the bound port is written to this file once serving");

namespace {

namespace pb = attention::v1;

// Attend answers `answer`; every other method is UNIMPLEMENTED.
using RawAttendService =
    pb::AttentionService::WithRawCallbackMethod_Attend<pb::AttentionService::CallbackService>;

class CeilingService final : public RawAttendService {
 public:
  explicit CeilingService(const std::string& answer) {
    const grpc::Slice slice(answer);
    answer_ = grpc::ByteBuffer(&slice, 1);
  }

  grpc::ServerUnaryReactor* Attend(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* /*request*/,
                                   grpc::ByteBuffer* response) override {
    *response = answer_;  // shares the slice: no copy
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  grpc::ByteBuffer answer_;
};

int Usage(const std::string& problem) {
  std::cerr << "transport-ceiling: " << problem << "\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "transport-ceiling --shape B,H,Sq,Sk,D [request flags of attn-client bench] "
      "[--address 127.0.0.1:0 --port_file F]: answers Attend with a prepared answer");
  if (absl::ParseCommandLine(argc, argv).size() != 1) return Usage("takes flags only");
  absl::StatusOr<attn::RandomAttendSpec> spec = attn::RandomAttendSpecFromFlags();
  if (!spec.ok()) return Usage(std::string(spec.status().message()));
  // SIGTERM/SIGINT go to the sigwait below, not to any thread gRPC starts.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const attn::ServerOptions options;  // attnserve's defaults
  const attn::AttentionEngine engine({.primitive_cache_capacity = 8});
  pb::AttendResponse answer;
  const absl::Status computed =
      attn::RunAttend(attn::MakeRandomAttend(*spec).request, options.Limits(), engine, &answer);
  if (!computed.ok()) return Usage(computed.ToString());
  CeilingService service(answer.SerializeAsString());

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_address), grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "transport-ceiling: cannot listen on " << absl::GetFlag(FLAGS_address) << "\n";
    return 1;
  }
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    std::ofstream(path) << port << "\n";
  }
  std::cout << "transport-ceiling on port " << port << ": " << answer.ByteSizeLong()
            << " bytes per answer" << std::endl;
  int signal = 0;
  sigwait(&stop_signals, &signal);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}
