// Element types the engine understands, and conversions between f32 and bf16/f16 (round to
// nearest even, NaN preserved, overflow to +-inf) one element or a whole buffer at a time.
// All functions are pure and thread-safe.
#ifndef ATTNSERVE_SRC_RUNTIME_DTYPE_H_
#define ATTNSERVE_SRC_RUNTIME_DTYPE_H_

#include <cstdint>
#include <string_view>

namespace attn {

enum class DType { kFloat32, kBFloat16, kFloat16, kBool };

// Bytes per element: 4, 2, 2, 1.
int64_t DTypeSize(DType dtype);
// "FLOAT32", "BFLOAT16", "FLOAT16", "BOOL".
std::string_view DTypeName(DType dtype);

float BFloat16ToFloat(uint16_t bits);
uint16_t FloatToBFloat16(float value);
float Float16ToFloat(uint16_t bits);
uint16_t FloatToFloat16(float value);

// dst[i] = src[i] as f32, for src of dtype kFloat32, kBFloat16 or kFloat16 (little-endian bytes,
// any alignment).
void DecodeToFloat(DType dtype, const void* src, int64_t count, float* dst);
// dst = src rounded to `dtype` (kFloat32, kBFloat16 or kFloat16), little-endian, any alignment.
void EncodeFromFloat(const float* src, int64_t count, DType dtype, void* dst);

}  // namespace attn

#endif  // ATTNSERVE_SRC_RUNTIME_DTYPE_H_
