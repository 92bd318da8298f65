// The CPU tier in use (see cpu_tier.h).
#include "src/runtime/cpu_tier.h"

#include <cpuid.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "dnnl.hpp"

namespace attn {
namespace {

constexpr CpuTier kTiers[] = {CpuTier::kScalar, CpuTier::kAvx2, CpuTier::kAvx512,
                              CpuTier::kAvx512Bf16, CpuTier::kAmx};

// The oneDNN ISA that runs no more than `tier`.
dnnl::cpu_isa OneDnnIsaOf(CpuTier tier) {
  switch (tier) {
    case CpuTier::kScalar:
      return dnnl::cpu_isa::sse41;
    case CpuTier::kAvx2:
      return dnnl::cpu_isa::avx2;
    case CpuTier::kAvx512:
      return dnnl::cpu_isa::avx512_core_vnni;
    case CpuTier::kAvx512Bf16:
      return dnnl::cpu_isa::avx512_core_bf16;
    case CpuTier::kAmx:
      break;
  }
  return dnnl::cpu_isa::all;
}

// The tier of oneDNN's kernels at `isa` (its effective ISA, after any cap of its own).
CpuTier TierOfOneDnnIsa(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::avx512_core_amx:
      return CpuTier::kAmx;
    case dnnl::cpu_isa::avx512_core_bf16:
      return CpuTier::kAvx512Bf16;
    case dnnl::cpu_isa::avx512_core:
    case dnnl::cpu_isa::avx512_core_vnni:
      return CpuTier::kAvx512;
    case dnnl::cpu_isa::avx2:
    case dnnl::cpu_isa::avx2_vnni:
      return CpuTier::kAvx2;
    default:
      return CpuTier::kScalar;
  }
}

// CPUID leaf 7's AMX-BF16 and AMX-TILE bits (EDX 22 and 24), read directly: clang 14's
// __builtin_cpu_supports knows no AMX. (Whether the OS grants AMX, oneDNN checks: the tier is
// capped by its effective ISA.)
bool HasAmxBf16() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  return (edx >> 22 & 1) != 0 && (edx >> 24 & 1) != 0;
}

// CMPXCHG16B (CPUID 1, ECX 13) and LAHF/SAHF in 64-bit mode (CPUID 0x80000001, ECX 0): the
// rest of x86-64-v2.
bool HasCmpxchg16bAndLahf() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || (ecx >> 13 & 1) == 0) return false;
  return __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) != 0 && (ecx & 1) != 0;
}

absl::StatusOr<CpuTier> ChooseTier() {
  CpuTier tier = HostCpuTier();
  if (const char* cap = std::getenv("ATTN_MAX_CPU_ISA"); cap != nullptr && *cap != '\0') {
    absl::StatusOr<CpuTier> capped = ParseCpuTier(cap);
    if (!capped.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ATTN_MAX_CPU_ISA: ", capped.status().message()));
    }
    tier = std::min(tier, *capped);
    // Fails only when oneDNN already dispatched; its effective ISA below then says what holds.
    (void)dnnl::set_max_cpu_isa(OneDnnIsaOf(tier));
  }
  // oneDNN may be capped further (ONEDNN_MAX_CPU_ISA, or an OS that withholds AMX): the
  // engine's layouts must be ones its kernels at that ISA take.
  return std::min(tier, TierOfOneDnnIsa(dnnl::get_effective_cpu_isa()));
}

}  // namespace

const char* CpuTierName(CpuTier tier) {
  switch (tier) {
    case CpuTier::kScalar:
      return "scalar";
    case CpuTier::kAvx2:
      return "avx2";
    case CpuTier::kAvx512:
      return "avx512";
    case CpuTier::kAvx512Bf16:
      return "avx512_bf16";
    case CpuTier::kAmx:
      break;
  }
  return "amx";
}

absl::StatusOr<CpuTier> ParseCpuTier(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (CpuTier tier : kTiers) {
    if (lower == CpuTierName(tier)) return tier;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown CPU tier \"", name,
                   "\" (expected scalar, avx2, avx512, avx512_bf16 or amx)"));
}

CpuTier HostCpuTier() {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  if (avx512 && __builtin_cpu_supports("avx512bf16")) {
    return HasAmxBf16() ? CpuTier::kAmx : CpuTier::kAvx512Bf16;
  }
  if (avx512) return CpuTier::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuTier::kAvx2;
  return CpuTier::kScalar;
}

bool HostMeetsMinimumIsa() {
  __builtin_cpu_init();
  // x86-64-v2 by its features (clang 14, which builds the fuzzers, knows no level names).
  return __builtin_cpu_supports("sse3") && __builtin_cpu_supports("ssse3") &&
         __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("sse4.2") &&
         __builtin_cpu_supports("popcnt") && HasCmpxchg16bAndLahf();
}

absl::StatusOr<CpuTier> InitCpuTier() {
  static const absl::StatusOr<CpuTier> tier = ChooseTier();
  return tier;
}

CpuTier ActiveCpuTier() {
  const absl::StatusOr<CpuTier> tier = InitCpuTier();
  if (!tier.ok()) {
    std::fprintf(stderr, "attnserve: %s\n", tier.status().ToString().c_str());
    std::abort();
  }
  return *tier;
}

}  // namespace attn
