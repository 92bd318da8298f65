// Element sizes, names and f32 <-> bf16/f16 conversions (see dtype.h). Portable bit arithmetic:
// round to nearest even, NaN kept quiet, overflow to infinity, f16 subnormals exact.
#include "src/runtime/dtype.h"

#include <cstring>

namespace attn {
namespace {

uint32_t FloatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

float BitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

}  // namespace

int64_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return 4;
    case DType::kBFloat16:
    case DType::kFloat16:
      return 2;
    case DType::kBool:
      return 1;
  }
  return 0;
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "FLOAT32";
    case DType::kBFloat16:
      return "BFLOAT16";
    case DType::kFloat16:
      return "FLOAT16";
    case DType::kBool:
      return "BOOL";
  }
  return "UNKNOWN";
}

float BFloat16ToFloat(uint16_t bits) { return BitsToFloat(uint32_t{bits} << 16); }

uint16_t FloatToBFloat16(float value) {
  const uint32_t bits = FloatBits(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  // Adding 0x7FFF plus the lowest kept bit rounds to nearest, ties to even; a carry into the
  // exponent is correct, and overflow lands exactly on infinity.
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float Float16ToFloat(uint16_t bits) {
  const uint32_t sign = uint32_t{bits & 0x8000u} << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) return BitsToFloat(sign | 0x7F800000u | (mantissa << 13));
  if (exponent != 0) return BitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // Zero or subnormal: mantissa * 2^-24, exact in f32.
  const float magnitude = static_cast<float>(mantissa) * BitsToFloat(0x33800000u);
  return sign != 0 ? -magnitude : magnitude;
}

uint16_t FloatToFloat16(float value) {
  const uint32_t bits = FloatBits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return sign | 0x7E00u | static_cast<uint16_t>((abs_bits >> 13) & 0x3FFu);
  if (abs_bits >= 0x477FF000u) return sign | 0x7C00u;  // rounds past 65504: infinity
  const int32_t exponent = static_cast<int32_t>(abs_bits >> 23) - 127;
  if (exponent >= -14) {
    // Normal f16: keep 10 mantissa bits, round the 13 dropped ones to nearest even.
    const uint32_t rebased = abs_bits - (112u << 23);
    const uint32_t rounding = 0x0FFFu + ((rebased >> 13) & 1u);
    return sign | static_cast<uint16_t>((rebased + rounding) >> 13);
  }
  if (exponent < -25) return sign;  // below half the smallest subnormal: zero
  // Subnormal f16: value / 2^-24 rounded to nearest even integer.
  const uint32_t mantissa = (abs_bits & 0x7FFFFFu) | 0x800000u;
  // value = mantissa * 2^(exponent - 23); in units of 2^-24 that is mantissa >> (-exponent - 1).
  const int shift = -exponent - 1;  // 14..24
  const uint32_t kept = mantissa >> shift;
  const uint32_t dropped = mantissa & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  const uint32_t rounded = kept + ((dropped > half || (dropped == half && (kept & 1u))) ? 1 : 0);
  return sign | static_cast<uint16_t>(rounded);
}

void DecodeToFloat(DType dtype, const void* src, int64_t count, float* dst) {
  const auto* bytes = static_cast<const unsigned char*>(src);
  switch (dtype) {
    case DType::kFloat32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kBFloat16:
    case DType::kFloat16:
      for (int64_t i = 0; i < count; ++i) {
        const uint16_t bits = static_cast<uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8));
        dst[i] = dtype == DType::kBFloat16 ? BFloat16ToFloat(bits) : Float16ToFloat(bits);
      }
      return;
    case DType::kBool:
      for (int64_t i = 0; i < count; ++i) dst[i] = bytes[i] != 0 ? 1.0f : 0.0f;
      return;
  }
}

void EncodeFromFloat(const float* src, int64_t count, DType dtype, void* dst) {
  auto* bytes = static_cast<unsigned char*>(dst);
  switch (dtype) {
    case DType::kFloat32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::kBFloat16:
    case DType::kFloat16:
      for (int64_t i = 0; i < count; ++i) {
        const uint16_t bits =
            dtype == DType::kBFloat16 ? FloatToBFloat16(src[i]) : FloatToFloat16(src[i]);
        bytes[2 * i] = static_cast<unsigned char>(bits & 0xFF);
        bytes[2 * i + 1] = static_cast<unsigned char>(bits >> 8);
      }
      return;
    case DType::kBool:
      for (int64_t i = 0; i < count; ++i) bytes[i] = src[i] != 0.0f ? 1 : 0;
      return;
  }
}

}  // namespace attn
