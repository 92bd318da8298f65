// The "I am good" demo: three tokens with 4-dimensional embeddings attend to each other
// (Q = K = V = the embeddings), and every step of softmax(QK^T / sqrt(d_k)) V is printed as a
// table labelled by token, from the numbers the server returns.
#ifndef ATTNSERVE_CLIENT_DEMO_H_
#define ATTNSERVE_CLIENT_DEMO_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/attention_client.h"

namespace attn {

// The demo's tokens, "I", "am", "good", and its request: Q = K = V = their embeddings
// [1,1,3,4], with the probabilities and the scaled scores asked for.
std::vector<std::string> DemoTokens();
attention::v1::AttendRequest DemoRequest();

absl::Status RunDemo(const AttentionClient& client, std::ostream& out);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_DEMO_H_
