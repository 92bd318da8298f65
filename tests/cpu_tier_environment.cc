// Linked into the test binaries that run once per CPU tier (attn_tier_gtest in CMakeLists.txt):
// before any test, applies the tier cap of ATTN_MAX_CPU_ISA (so oneDNN is capped before its
// first primitive); at a capped bf16 tier (avx512_bf16, amx) it forces native bf16 matmuls
// (ATTN_BF16_MATMUL=native: the uncapped run tests the measured choice, which may be emulated).
// It skips every test (ctest reads "CPU tier skipped" as a skip) when the cap names a tier this
// host cannot run, or the host's own below the bf16 tiers (the uncapped run tests that one).
#include <cstdlib>

#include "gtest/gtest.h"
#include "src/engine/bf16_matmuls.h"
#include "src/runtime/cpu_tier.h"

namespace attn {
namespace {

class CpuTierEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const absl::StatusOr<CpuTier> tier = InitCpuTier();
    ASSERT_TRUE(tier.ok()) << tier.status();
    const char* cap = std::getenv("ATTN_MAX_CPU_ISA");
    if (cap == nullptr || *cap == '\0') {
      ASSERT_TRUE(InitBf16Matmuls().ok()) << InitBf16Matmuls().status();
      return;
    }
    const CpuTier wanted = *ParseCpuTier(cap);  // InitCpuTier() checked it
    if (wanted > *tier) {
      GTEST_SKIP() << "CPU tier skipped: this host cannot run " << CpuTierName(wanted)
                   << " (it runs " << CpuTierName(*tier) << ")";
    }
    if (HasNativeBf16(wanted)) setenv("ATTN_BF16_MATMUL", "native", /*overwrite=*/1);
    ASSERT_TRUE(InitBf16Matmuls().ok()) << InitBf16Matmuls().status();
    if (wanted == HostCpuTier() && !HasNativeBf16(wanted)) {
      GTEST_SKIP() << "CPU tier skipped: " << CpuTierName(wanted)
                   << " is this host's own, which the uncapped run tests";
    }
  }
};

[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new CpuTierEnvironment);

}  // namespace
}  // namespace attn
