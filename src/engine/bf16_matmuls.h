// Whether bf16 compute runs on oneDNN's bf16 matmuls (native) or is emulated in f32 matmuls of
// bf16-rounded operands (AttentionInputs::bf16_in_f32), decided once per process: emulated
// below the avx512_bf16 tier (no bf16 matmul instructions), native at amx, and at avx512_bf16
// by measurement, since the instructions alone do not make it faster: on an Intel Xeon with
// AVX512_BF16 and no AMX, oneDNN 2.6's bf16 2048^3 matmul ran at 165-166 GFLOP/s against
// 291-302 in f32 (two runs), where on another host it ran at 2.2x f32. ATTN_BF16_MATMUL=native
// or emulated overrides the choice (native needs the avx512_bf16 tier). Thread-safe.
#ifndef ATTNSERVE_SRC_ENGINE_BF16_MATMULS_H_
#define ATTNSERVE_SRC_ENGINE_BF16_MATMULS_H_

#include "absl/status/statusor.h"

namespace attn {

enum class Bf16Matmuls { kNative, kEmulated };

// "native" or "emulated".
const char* Bf16MatmulsName(Bf16Matmuls matmuls);

// The choice, made by the first call (after InitCpuTier(): it runs oneDNN primitives). At the
// avx512_bf16 tier it times a 512^3 matmul in bf16 and in f32 (best of 5 each, a few ms) and
// takes native only when bf16 is the faster. INVALID_ARGUMENT for an unknown ATTN_BF16_MATMUL,
// or native where the tier has no bf16 matmuls.
absl::StatusOr<Bf16Matmuls> InitBf16Matmuls();

// InitBf16Matmuls()'s choice; aborts with its error if there is one (main and the tests' setup
// check InitBf16Matmuls() first).
Bf16Matmuls ActiveBf16Matmuls();

}  // namespace attn

#endif  // ATTNSERVE_SRC_ENGINE_BF16_MATMULS_H_
