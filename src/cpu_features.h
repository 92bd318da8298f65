// Which vector instructions this CPU runs, for the kernels chosen at run time (online_softmax,
// operand_copies). Pure functions; thread-safe.
#ifndef ATTNSERVE_SRC_CPU_FEATURES_H_
#define ATTNSERVE_SRC_CPU_FEATURES_H_

namespace attn {

// AVX-512 F, BW and VL.
bool CpuHasAvx512();
// Those and AVX512_BF16.
bool CpuHasAvx512Bf16();

}  // namespace attn

#endif  // ATTNSERVE_SRC_CPU_FEATURES_H_
