// Where a computation writes an AttendResponse's tensors: the f32 maps, and the output when it is
// answered as f32 or `values`, go straight into the response's own buffers (no copy); a
// BFLOAT16/FLOAT16 output is staged in f32 and rounded into the response by Finish(). One per
// call; not thread-safe.
#ifndef ATTNSERVE_SERVER_RESPONSE_WRITER_H_
#define ATTNSERVE_SERVER_RESPONSE_WRITER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "attention/v1/attention.pb.h"
#include "server/request_fields.h"
#include "src/runtime/dtype.h"

namespace attn {

class ResponseWriter {
 public:
  // Sizes the response's tensors; shapes were checked by CheckResponseSize.
  ResponseWriter(std::span<const int64_t> output_shape, DType output_dtype,
                 std::span<const int64_t> map_shape, const MapsWanted& maps, bool use_values,
                 attention::v1::AttendResponse* response);

  float* output() { return output_; }
  float* probabilities() { return probabilities_; }  // nullptr when not asked for
  float* scores() { return scores_; }                // nullptr when not asked for

  // Encodes a staged output in its dtype.
  void Finish();

 private:
  std::vector<int64_t> output_shape_;
  DType output_dtype_;
  attention::v1::AttendResponse* response_;
  std::vector<float> staged_output_;
  float* output_ = nullptr;
  float* probabilities_ = nullptr;
  float* scores_ = nullptr;
};

}  // namespace attn

#endif  // ATTNSERVE_SERVER_RESPONSE_WRITER_H_
