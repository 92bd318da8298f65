// The AttendStream and SessionAttendStream reactor (see attend_stream.h).
#include "server/attend_stream.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/attend_wire.h"
#include "server/session_call.h"

namespace attn {
namespace {

// An answer's wire form, its tensors moved out; and an answer made empty for the next request.
grpc::ByteBuffer Serialize(attention::v1::AttendResponse& response) {
  return SerializeMovingTensorData(response);
}
grpc::ByteBuffer Serialize(SessionAnswer& answer) {
  return SerializeSessionAttendResponse(answer.tensors, answer.position, answer.first_position);
}
void Clear(attention::v1::AttendResponse& response) { response.Clear(); }
void Clear(SessionAnswer& answer) { answer = SessionAnswer(); }

}  // namespace

template <typename Request, typename Answer>
ComputeStream<Request, Answer>::ComputeStream(grpc::CallbackServerContext* context,
                                              CallGate& gate, Executor& executor,
                                              Compute compute)
    : context_(context), gate_(gate), executor_(executor), compute_(std::move(compute)) {
  StartRead(&request_bytes_);
  gate_.RegisterStream(this);
}

template <typename Request, typename Answer>
void ComputeStream<Request, Answer>::OnReadDone(bool ok) {
  if (!ok) {  // the client finished writing (or the call ended)
    FinishOnce(grpc::Status::OK);
    return;
  }
  const absl::Time received = absl::Now();
  if (absl::Status parsed = ParseRequest(request_bytes_, &request_); !parsed.ok()) {
    FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(parsed.message())));
    return;
  }
  if (absl::Status admitted = gate_.Admit(); !admitted.ok()) {
    FinishOnce(grpc::Status(static_cast<grpc::StatusCode>(admitted.code()),
                            std::string(admitted.message())));
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (state_ == State::kFinished) {
      gate_.Release();  // a drain finished the stream meanwhile
      return;
    }
    state_ = State::kComputing;
  }
  executor_.Submit([this, received] {
    const grpc::Status status = compute_(context_, request_, &response_, received);
    executor_.FinishedComputing();
    gate_.Release();
    std::lock_guard lock(mu_);
    if (!status.ok()) {
      FinishLocked(status);
      return;
    }
    state_ = State::kWriting;
    response_bytes_ = Serialize(response_);
    StartWrite(&response_bytes_);
  });
}

template <typename Request, typename Answer>
void ComputeStream<Request, Answer>::OnWriteDone(bool ok) {
  std::lock_guard lock(mu_);
  if (!ok) {
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away mid-stream"));
    return;
  }
  ++answered_;
  if (draining_) {
    FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              absl::StrCat("the server is shutting down after answering ",
                                           answered_, " requests of this stream")));
    return;
  }
  Clear(response_);
  response_bytes_.Clear();
  state_ = State::kReading;
  StartRead(&request_bytes_);
}

template <typename Request, typename Answer>
void ComputeStream<Request, Answer>::OnDrain() {
  std::lock_guard lock(mu_);
  draining_ = true;
  if (state_ == State::kReading) {
    FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              absl::StrCat("the server is shutting down after answering ",
                                           answered_, " requests of this stream")));
  }
}

template <typename Request, typename Answer>
void ComputeStream<Request, Answer>::OnDone() {
  gate_.UnregisterStream(this);
  delete this;
}

template <typename Request, typename Answer>
void ComputeStream<Request, Answer>::FinishOnce(const grpc::Status& status) {
  std::lock_guard lock(mu_);
  FinishLocked(status);
}

template <typename Request, typename Answer>
void ComputeStream<Request, Answer>::FinishLocked(const grpc::Status& status) {
  if (state_ == State::kFinished) return;
  state_ = State::kFinished;
  Finish(status);
}

template class ComputeStream<attention::v1::AttendRequest, attention::v1::AttendResponse>;
template class ComputeStream<attention::v1::SessionAttendRequest, SessionAnswer>;

}  // namespace attn
