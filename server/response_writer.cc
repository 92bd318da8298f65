// Writing computed tensors into an AttendResponse (see response_writer.h).
#include "server/response_writer.h"

#include "proto/tensor_codec.h"

namespace attn {

ResponseWriter::ResponseWriter(std::span<const int64_t> output_shape, DType output_dtype,
                               std::span<const int64_t> map_shape, const MapsWanted& maps,
                               bool use_values, attention::v1::AttendResponse* response)
    : output_shape_(output_shape.begin(), output_shape.end()),
      output_dtype_(output_dtype),
      response_(response) {
  if (use_values || output_dtype == DType::kFloat32) {
    output_ = ReserveFloatOutput(output_shape, use_values, response->mutable_output());
  } else {
    int64_t count = 1;
    for (int64_t dim : output_shape) count *= dim;
    staged_output_.resize(count);
    output_ = staged_output_.data();
  }
  if (maps.probabilities) {
    probabilities_ = ReserveFloatOutput(map_shape, use_values, response->mutable_attention());
  }
  if (maps.scores) {
    scores_ = ReserveFloatOutput(map_shape, use_values, response->mutable_scores());
  }
}

void ResponseWriter::Finish() {
  if (staged_output_.empty()) return;
  EncodeFloatTensor(output_shape_, staged_output_.data(), output_dtype_, false,
                    response_->mutable_output());
}

}  // namespace attn
