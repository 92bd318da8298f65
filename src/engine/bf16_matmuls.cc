// The choice between native and emulated bf16 matmuls (see bf16_matmuls.h).
#include "src/engine/bf16_matmuls.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "dnnl.hpp"
#include "src/runtime/cpu_tier.h"

namespace attn {
namespace {

using dnnl::memory;

// Best of 5 runs of an n^3 matmul of `type` operands (weights in the layout the primitive
// prefers, as the engine's K^T is), in seconds.
double BestMatmulSeconds(memory::data_type type) {
  constexpr int64_t n = 512;
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc a_md({n, n}, type, memory::format_tag::ab);
  const memory::desc any_md({n, n}, type, memory::format_tag::any);
  const memory::desc c_md({n, n}, memory::data_type::f32, memory::format_tag::ab);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, any_md, c_md), engine);
  memory a(a_md, engine), b(pd.weights_desc(), engine), c(c_md, engine);
  // Zeros: the time does not depend on the values.
  std::fill_n(static_cast<char*>(a.get_data_handle()), a_md.get_size(), 0);
  std::fill_n(static_cast<char*>(b.get_data_handle()), pd.weights_desc().get_size(), 0);
  const dnnl::matmul matmul(pd);
  double best = 1e30;
  for (int run = 0; run < 6; ++run) {  // the first generates the kernel and is not counted
    const double start = omp_get_wtime();
    matmul.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    stream.wait();
    if (run > 0) best = std::min(best, omp_get_wtime() - start);
  }
  return best;
}

absl::StatusOr<Bf16Matmuls> Choose() {
  absl::StatusOr<CpuTier> tier = InitCpuTier();
  if (!tier.ok()) return tier.status();
  const char* forced = std::getenv("ATTN_BF16_MATMUL");
  if (forced != nullptr && *forced != '\0') {
    const std::string name = absl::AsciiStrToLower(forced);
    if (name == "emulated") return Bf16Matmuls::kEmulated;
    if (name != "native") {
      return absl::InvalidArgumentError(absl::StrCat(
          "ATTN_BF16_MATMUL: unknown value \"", forced, "\" (expected native or emulated)"));
    }
    if (!HasNativeBf16(*tier)) {
      return absl::InvalidArgumentError(
          absl::StrCat("ATTN_BF16_MATMUL=native: CPU tier ", CpuTierName(*tier),
                       " has no bf16 matmuls (avx512_bf16 or amx needed)"));
    }
    return Bf16Matmuls::kNative;
  }
  if (!HasNativeBf16(*tier)) return Bf16Matmuls::kEmulated;
  if (*tier == CpuTier::kAmx) return Bf16Matmuls::kNative;
  try {
    return BestMatmulSeconds(memory::data_type::bf16) <
                   BestMatmulSeconds(memory::data_type::f32)
               ? Bf16Matmuls::kNative
               : Bf16Matmuls::kEmulated;
  } catch (const dnnl::error&) {  // no bf16 matmul after all: emulate
    return Bf16Matmuls::kEmulated;
  }
}

}  // namespace

const char* Bf16MatmulsName(Bf16Matmuls matmuls) {
  return matmuls == Bf16Matmuls::kNative ? "native" : "emulated";
}

absl::StatusOr<Bf16Matmuls> InitBf16Matmuls() {
  static const absl::StatusOr<Bf16Matmuls> matmuls = Choose();
  return matmuls;
}

Bf16Matmuls ActiveBf16Matmuls() {
  const absl::StatusOr<Bf16Matmuls> matmuls = InitBf16Matmuls();
  if (!matmuls.ok()) {
    std::fprintf(stderr, "attnserve: %s\n", matmuls.status().ToString().c_str());
    std::abort();
  }
  return *matmuls;
}

}  // namespace attn
