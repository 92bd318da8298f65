// Linked into the test binaries that run once per CPU tier (attn_tier_gtest in CMakeLists.txt):
// before any test, applies the tier cap of ATTN_MAX_CPU_ISA (so oneDNN is capped before its
// first primitive), and skips every test (ctest reads "CPU tier skipped" as a skip) when the
// cap names a tier this host cannot run, or the host's own (the uncapped run tests that one).
#include <cstdlib>

#include "gtest/gtest.h"
#include "src/cpu_tier.h"

namespace attn {
namespace {

class CpuTierEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const absl::StatusOr<CpuTier> tier = InitCpuTier();
    ASSERT_TRUE(tier.ok()) << tier.status();
    const char* cap = std::getenv("ATTN_MAX_CPU_ISA");
    if (cap == nullptr || *cap == '\0') return;
    const CpuTier wanted = *ParseCpuTier(cap);  // InitCpuTier() checked it
    if (wanted > *tier) {
      GTEST_SKIP() << "CPU tier skipped: this host cannot run " << CpuTierName(wanted)
                   << " (it runs " << CpuTierName(*tier) << ")";
    }
    if (wanted == HostCpuTier()) {
      GTEST_SKIP() << "CPU tier skipped: " << CpuTierName(wanted)
                   << " is this host's own, which the uncapped run tests";
    }
  }
};

[[maybe_unused]] ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new CpuTierEnvironment);

}  // namespace
}  // namespace attn
