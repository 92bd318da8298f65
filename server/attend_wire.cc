// Attend's messages to and from gRPC's bytes (see attend_wire.h).
#include "server/attend_wire.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace attn {
namespace {

namespace pb = attention::v1;

void AppendVarint(uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// The key of length-delimited field `number` (wire type 2: messages, bytes, packed).
void AppendLengthDelimitedKey(int number, std::string& out) {
  AppendVarint((static_cast<uint64_t>(number) << 3) | 2, out);
}

// Field `number` holding `message`, encoded whole.
void AppendMessageField(int number, const google::protobuf::MessageLite& message,
                        std::string& out) {
  AppendLengthDelimitedKey(number, out);
  AppendVarint(message.ByteSizeLong(), out);
  message.AppendToString(&out);
}

}  // namespace

absl::Status ParseRequest(const grpc::ByteBuffer& bytes, google::protobuf::MessageLite* request) {
  grpc::ByteBuffer view(bytes);  // shares the slices: the reader consumes this copy
  grpc::ProtoBufferReader reader(&view);
  if (!reader.status().ok() || !request->ParseFromZeroCopyStream(&reader)) {
    return absl::InvalidArgumentError(absl::StrCat("the request (", bytes.Length(),
                                                   " bytes) is not an ", request->GetTypeName()));
  }
  return absl::OkStatus();
}

grpc::ByteBuffer SerializeMovingTensorData(pb::AttendResponse& response) {
  std::vector<grpc::Slice> slices;
  std::string encoded;  // bytes not yet in a slice
  // The tensors in field order, then the timing, as SerializeAsString writes them.
  const std::pair<int, pb::Tensor*> tensors[] = {
      {pb::AttendResponse::kOutputFieldNumber,
       response.has_output() ? response.mutable_output() : nullptr},
      {pb::AttendResponse::kAttentionFieldNumber,
       response.has_attention() ? response.mutable_attention() : nullptr},
      {pb::AttendResponse::kScoresFieldNumber,
       response.has_scores() ? response.mutable_scores() : nullptr}};
  for (const auto& [number, tensor] : tensors) {
    if (tensor == nullptr) continue;
    // `values` is written after `data`: a tensor with both is encoded whole.
    if (tensor->data().empty() || tensor->values_size() > 0) {
      AppendMessageField(number, *tensor, encoded);
      continue;
    }
    auto* data = new std::string(std::move(*tensor->mutable_data()));
    tensor->clear_data();
    // The tensor: its other fields (shape, dtype), then `data`'s key and length, then the data.
    std::string data_head;
    AppendLengthDelimitedKey(pb::Tensor::kDataFieldNumber, data_head);
    AppendVarint(data->size(), data_head);
    AppendLengthDelimitedKey(number, encoded);
    AppendVarint(tensor->ByteSizeLong() + data_head.size() + data->size(), encoded);
    tensor->AppendToString(&encoded);
    encoded += data_head;
    slices.emplace_back(encoded);
    encoded.clear();
    slices.emplace_back(data->data(), data->size(),
                        [](void* owned) { delete static_cast<std::string*>(owned); }, data);
  }
  if (response.has_timing()) {
    AppendMessageField(pb::AttendResponse::kTimingFieldNumber, response.timing(), encoded);
  }
  if (!encoded.empty()) slices.emplace_back(encoded);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer SerializeSessionAttendResponse(pb::AttendResponse& tensors, int64_t position,
                                                int64_t first_position) {
  std::vector<grpc::Slice> slices;
  if (!SerializeMovingTensorData(tensors).Dump(&slices).ok()) return {};
  std::string encoded;
  for (const auto& [number, value] :
       {std::pair{pb::SessionAttendResponse::kPositionFieldNumber, position},
        std::pair{pb::SessionAttendResponse::kFirstPositionFieldNumber, first_position}}) {
    if (value == 0) continue;  // proto3 leaves zeros out
    AppendVarint(static_cast<uint64_t>(number) << 3, encoded);  // wire type 0: varint
    AppendVarint(static_cast<uint64_t>(value), encoded);
  }
  if (!encoded.empty()) slices.emplace_back(encoded);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer SerializeSessionAttendBatch(std::span<const grpc::ByteBuffer> results) {
  std::vector<grpc::Slice> slices;
  for (const grpc::ByteBuffer& result : results) {
    std::string head;
    AppendLengthDelimitedKey(pb::SessionAttendBatchResponse::kResultsFieldNumber, head);
    AppendVarint(result.Length(), head);
    slices.emplace_back(head);
    std::vector<grpc::Slice> parts;
    if (result.Length() > 0 && !result.Dump(&parts).ok()) return {};
    for (grpc::Slice& part : parts) slices.push_back(std::move(part));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace attn
