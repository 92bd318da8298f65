// What every call of the service does around its work: its trace (request id echoed in the
// trailing metadata), its log line and metrics once finished, and the reactors that answer at
// once. Functions; thread-safe.
#ifndef ATTNSERVE_SERVER_CALL_REPORT_H_
#define ATTNSERVE_SERVER_CALL_REPORT_H_

#include <cstdint>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "server/request_id.h"

namespace attn {

// A unary call finished at once with `status`.
grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                    const grpc::Status& status);

// A stream refused before it starts (e.g. UNAUTHENTICATED). Deletes itself when done.
class RefusedStream : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// One finished call: its log line (with the request id and any traceparent) and its metrics.
void Report(const std::string& peer, const char* method, const RequestTrace& trace,
            const std::string& description, const grpc::Status& status, absl::Time received,
            int64_t queue_us, int64_t compute_us, double flops,
            const google::protobuf::Message& request, const google::protobuf::Message* response);

// The call's trace, with its request id echoed in the trailing metadata.
RequestTrace StartTrace(grpc::CallbackServerContext* context);

}  // namespace attn

#endif  // ATTNSERVE_SERVER_CALL_REPORT_H_
