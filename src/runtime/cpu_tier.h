// The CPU tier the engine's kernels run at, chosen once per process at run time: the best tier
// the CPU has, capped by the ATTN_MAX_CPU_ISA environment variable (for tests and benches, like
// oneDNN's own ONEDNN_MAX_CPU_ISA). The same cap is handed to oneDNN, so its kernels and the
// project's own (online_softmax, operand_copies) run at the same tier. Thread-safe.
#ifndef ATTNSERVE_SRC_RUNTIME_CPU_TIER_H_
#define ATTNSERVE_SRC_RUNTIME_CPU_TIER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace attn {

// Ordered: each tier has everything the ones before it have.
enum class CpuTier {
  kScalar,      // x86-64-v2: portable kernels, oneDNN's SSE4.1 kernels
  kAvx2,        // AVX2 + FMA (x86-64-v3)
  kAvx512,      // AVX-512 F, BW, VL (and VNNI where present); bf16 emulated in f32
  kAvx512Bf16,  // and AVX512_BF16: native bf16 matmuls
  kAmx,         // and AMX (bf16 tiles, through oneDNN)
};

// "scalar", "avx2", "avx512", "avx512_bf16" or "amx".
const char* CpuTierName(CpuTier tier);

// A tier from its name (case-insensitive); INVALID_ARGUMENT naming the accepted ones.
absl::StatusOr<CpuTier> ParseCpuTier(absl::string_view name);

// The best tier this CPU (and OS) runs, ignoring any cap.
CpuTier HostCpuTier();

// Whether the CPU is at least x86-64-v2, the minimum the binaries run on.
bool HostMeetsMinimumIsa();

// The tier in use: HostCpuTier() capped by ATTN_MAX_CPU_ISA. The first call reads the variable
// and caps oneDNN to the same tier (dnnl::set_max_cpu_isa), so it must come before oneDNN's
// first primitive; later calls return the same tier. An unknown value of the variable is an
// error of that first call (and every later one).
absl::StatusOr<CpuTier> InitCpuTier();

// InitCpuTier()'s tier; aborts with the variable's error if it is malformed. For the kernels'
// dispatch, after main() or the tests' setup has checked InitCpuTier().
CpuTier ActiveCpuTier();

// Whether bf16 matmuls run natively at `tier` (AVX512_BF16 or AMX). Below it bf16 compute is
// emulated: operands rounded to bf16, then f32 matmuls (a product of two bf16 values is exact
// in f32).
inline bool HasNativeBf16(CpuTier tier) { return tier >= CpuTier::kAvx512Bf16; }

}  // namespace attn

#endif  // ATTNSERVE_SRC_RUNTIME_CPU_TIER_H_
