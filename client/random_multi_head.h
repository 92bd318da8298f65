// Seeded random MultiHeadAttend requests (embeddings plus a full layer of weights: W_q, W_k,
// W_v, W_o, biases, optional Add & Norm) for `attn-client mha`, and their check against the
// double reference layer. Pure functions; thread-safe.
#ifndef ATTNSERVE_CLIENT_RANDOM_MULTI_HEAD_H_
#define ATTNSERVE_CLIENT_RANDOM_MULTI_HEAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "attention/v1/attention.pb.h"
#include "src/layer/multi_head_weights.h"

namespace attn {

struct RandomMultiHeadSpec {
  int64_t batch = 1;
  int64_t q_len = 16;
  int64_t d_model = 64;
  int64_t heads = 4;
  int64_t kv_heads = 0;  // 0 = heads
  bool causal = false;
  bool add_norm = false;
  bool average_heads = false;
  uint32_t seed = 1;
};

struct RandomMultiHead {
  RandomMultiHeadSpec spec;
  MultiHeadDims dims;
  attention::v1::MultiHeadAttendRequest request;  // inline weights
  std::vector<float> input, w_q, w_k, w_v, w_o, b_q, b_k, b_v, b_o, gamma, beta;
};

// d_model must be a multiple of heads, heads of kv_heads.
RandomMultiHead MakeRandomMultiHead(const RandomMultiHeadSpec& spec);

struct MultiHeadCheck {
  double output_max_abs_error = 0;
  double probabilities_max_abs_error = 0;
};
MultiHeadCheck CheckMultiHead(const RandomMultiHead& sent,
                              const attention::v1::AttendResponse& got);

}  // namespace attn

#endif  // ATTNSERVE_CLIENT_RANDOM_MULTI_HEAD_H_
