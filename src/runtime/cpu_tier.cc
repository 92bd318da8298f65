// The CPU tier in use (see cpu_tier.h).
#include "src/runtime/cpu_tier.h"

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
    return __builtin_cpu_supports("amx-bf16") && __builtin_cpu_supports("amx-tile")
               ? CpuTier::kAmx
               : CpuTier::kAvx512Bf16;
  }
  if (avx512) return CpuTier::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuTier::kAvx2;
  return CpuTier::kScalar;
}

bool HostMeetsMinimumIsa() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("x86-64-v2");
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
