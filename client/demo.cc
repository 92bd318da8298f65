// The "I am good" demo (see demo.h).
#include "client/demo.h"

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "proto/tensor_codec.h"

namespace attn {
namespace {

namespace pb = attention::v1;

constexpr int kTokens = 3;
constexpr int kDim = 4;
const std::array<const char*, kTokens> kWords = {"I", "am", "good"};
// Small fixed embeddings, one row per token.
const std::array<float, kTokens * kDim> kEmbeddings = {
    1.0f, 0.0f, 1.0f, 0.0f,  // I
    0.0f, 2.0f, 0.0f, 2.0f,  // am
    1.0f, 1.0f, 1.0f, 1.0f,  // good
};

void PrintTable(std::ostream& out, const std::string& title, const std::vector<float>& values,
                int columns, bool token_columns) {
  out << title << "\n" << absl::StrFormat("%8s", "");
  for (int c = 0; c < columns; ++c) {
    out << (token_columns ? absl::StrFormat("%9s", kWords[c]) : absl::StrFormat("%8s%d", "d", c));
  }
  out << "\n";
  for (int r = 0; r < kTokens; ++r) {
    out << absl::StrFormat("%8s", kWords[r]);
    for (int c = 0; c < columns; ++c) out << absl::StrFormat("%9.4f", values[r * columns + c]);
    out << "\n";
  }
  out << "\n";
}

}  // namespace

std::vector<std::string> DemoTokens() { return {kWords.begin(), kWords.end()}; }

pb::AttendRequest DemoRequest() {
  const int64_t shape[] = {1, 1, kTokens, kDim};
  pb::AttendRequest request;
  for (pb::Tensor* t : {request.mutable_query(), request.mutable_key(), request.mutable_value()}) {
    EncodeFloatTensor(shape, kEmbeddings.data(), DType::kFloat32, false, t);
  }
  request.set_attention_maps(pb::ATTENTION_MAPS_PROBABILITIES_AND_SCORES);
  return request;
}

absl::Status RunDemo(const AttentionClient& client, std::ostream& out) {
  absl::StatusOr<pb::AttendResponse> response = client.Attend(DemoRequest());
  if (!response.ok()) return response.status();

  auto decode = [](const char* name, const pb::Tensor& t) -> absl::StatusOr<std::vector<float>> {
    absl::StatusOr<FloatTensor> f = DecodeFloatTensor(name, t, 1 << 20);
    if (!f.ok()) return f.status();
    return std::vector<float>(f->data, f->data + f->count);
  };
  absl::StatusOr<std::vector<float>> scaled = decode("scores", response->scores());
  absl::StatusOr<std::vector<float>> probabilities = decode("attention", response->attention());
  absl::StatusOr<std::vector<float>> output = decode("output", response->output());
  for (const auto* part : {&scaled, &probabilities, &output}) {
    if (!part->ok()) return part->status();
  }
  const float scale = 1.0f / std::sqrt(float{kDim});
  std::vector<float> raw(scaled->size());
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = (*scaled)[i] / scale;

  out << "Self-attention over the tokens \"I am good\" (d_k = " << kDim
      << "; Q = K = V = the embeddings below), computed by the server.\n\n";
  PrintTable(out, "Embeddings (one row per token):",
             std::vector<float>(kEmbeddings.begin(), kEmbeddings.end()), kDim, false);
  PrintTable(out, "Step 1: raw scores Q K^T (row = the token attending, column = the token attended to):",
             raw, kTokens, true);
  PrintTable(out, absl::StrFormat("Step 2: scaled scores Q K^T / sqrt(%d) (keeps softmax from saturating):", kDim),
             *scaled, kTokens, true);
  PrintTable(out, "Step 3: attention map softmax(scaled scores), each row sums to 1:", *probabilities,
             kTokens, true);
  PrintTable(out, "Step 4: output = attention map x V, one row per token:", *output, kDim, false);
  out << absl::StrFormat("Server time: queue %d us, compute %d us.\n", response->timing().queue_us(),
                         response->timing().compute_us());
  return absl::OkStatus();
}

}  // namespace attn
