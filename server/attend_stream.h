// The reactor of AttendStream and SessionAttendStream: reads one request, computes it on a
// worker, writes its response, and only then reads the next, so answers keep request order and a slow reader makes
// the server wait instead of buffering without bound. A request that fails ends the stream with
// its status (the answers before it were already delivered). A drain ends an idle stream with
// UNAVAILABLE at once, and a busy one after its current answer. Messages travel as raw bytes
// (attend_wire.h): each request is parsed here (bytes that are not a Request end the stream
// with INVALID_ARGUMENT), and each answer's tensor bytes reach gRPC without a copy. Deletes
// itself when done. Instantiated for AttendRequest -> AttendResponse and SessionAttendRequest ->
// SessionAnswer (session_call.h).
#ifndef ATTNSERVE_SERVER_ATTEND_STREAM_H_
#define ATTNSERVE_SERVER_ATTEND_STREAM_H_

#include <cstdint>
#include <functional>
#include <mutex>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "attention/v1/attention.pb.h"
#include "server/call_gate.h"
#include "src/runtime/executor.h"

namespace attn {

template <typename Request, typename Answer>
class ComputeStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                            public Drainable {
 public:
  // Computes one request into a response on a worker thread (timing and logging included).
  using Compute = std::function<grpc::Status(grpc::CallbackServerContext*, const Request&,
                                             Answer*, absl::Time received)>;

  // `gate` and `executor` must outlive the stream.
  ComputeStream(grpc::CallbackServerContext* context, CallGate& gate, Executor& executor,
                Compute compute);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;
  void OnDrain() override;

 private:
  enum class State { kReading, kComputing, kWriting, kFinished };

  // Finishes the stream unless it already was.
  void FinishOnce(const grpc::Status& status);
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::CallbackServerContext* const context_;
  CallGate& gate_;
  Executor& executor_;
  const Compute compute_;
  grpc::ByteBuffer request_bytes_;
  grpc::ByteBuffer response_bytes_;
  Request request_;
  Answer response_;
  std::mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kReading;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t answered_ ABSL_GUARDED_BY(mu_) = 0;
};

using AttendStream = ComputeStream<attention::v1::AttendRequest, attention::v1::AttendResponse>;

}  // namespace attn

#endif  // ATTNSERVE_SERVER_ATTEND_STREAM_H_
