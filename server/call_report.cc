// Around every call: trace, log line, metrics (see call_report.h).
#include "server/call_report.h"

#include "absl/time/clock.h"
#include "server/metrics.h"
#include "server/request_log.h"
#include "server/status_convert.h"

namespace attn {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

void Report(const std::string& peer, const char* method, const RequestTrace& trace,
            const std::string& description, const grpc::Status& status, absl::Time received,
            int64_t queue_us, int64_t compute_us, double flops,
            const google::protobuf::Message& request, const google::protobuf::Message* response) {
  LogFields fields;
  fields.Add("method", method)
      .Add("request_id", trace.request_id)
      .Add("request", description)
      .Add("code", GrpcCodeName(status.error_code()))
      .Add("queue_us", queue_us)
      .Add("compute_us", compute_us)
      .Add("peer", peer);
  if (!trace.traceparent.empty()) fields.Add("traceparent", trace.traceparent);
  if (!status.ok()) fields.Add("error", status.error_message());
  LogEvent(status.ok() ? spdlog::level::info : spdlog::level::warn, "request", fields);
  Metrics::Global().Record(
      {.method = method,
       .code = std::string(GrpcCodeName(status.error_code())),
       .request_s = absl::ToDoubleSeconds(absl::Now() - received),
       .queue_s = queue_us * 1e-6,
       .compute_s = compute_us * 1e-6,
       .flops = flops,
       .bytes_received = static_cast<int64_t>(request.ByteSizeLong()),
       .bytes_sent = status.ok() && response != nullptr
                         ? static_cast<int64_t>(response->ByteSizeLong())
                         : 0});
}

RequestTrace StartTrace(grpc::CallbackServerContext* context) {
  RequestTrace trace = TraceFromMetadata(context->client_metadata());
  context->AddTrailingMetadata("x-request-id", trace.request_id);
  return trace;
}

}  // namespace attn
