// Multi-head weights stored as a safetensors file, the format of `--weights_dir` and of
// scripts/export_weights.py. Tensors (row-major, F32/BF16/F16, multiplying from the right):
//   w_q [d_model, H*D], w_k [d_ctx, Hkv*D], w_v [d_ctx, Hkv*Dv]; optional w_o [H*Dv, d_out],
//   b_q, b_k, b_v, b_o (1-D), add_norm.gamma and add_norm.beta [d_model].
// __metadata__ (strings): num_heads (required), num_kv_heads (default num_heads),
//   add_norm.epsilon (required when add_norm.gamma is present).
// Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_WEIGHTS_WEIGHTS_FILE_H_
#define ATTNSERVE_SRC_WEIGHTS_WEIGHTS_FILE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "src/layer/multi_head_weights.h"
#include "src/weights/safetensors.h"

namespace attn {

// Validates the file's tensors and metadata as a weight set (unknown tensor names are errors,
// so a typo is not silently ignored) and packs them.
absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> WeightsFromSafetensors(
    const SafetensorsFile& file);

// Reads `path` (refusing files over `max_bytes`) and builds its weights.
absl::StatusOr<std::shared_ptr<const MultiHeadWeights>> LoadWeightsFile(const std::string& path,
                                                                        int64_t max_bytes);

}  // namespace attn

#endif  // ATTNSERVE_SRC_WEIGHTS_WEIGHTS_FILE_H_
