// Baseline kernels, built with the target's default flags: SSE2 on x86-64, NEON on AArch64
// (both 16-byte vectors; AArch64 has 32 vector registers, so it takes 8 rows a block).
#define FASTGRU_ISA baseline
#define FASTGRU_VEC_BYTES 16
#if defined(__aarch64__)
#define FASTGRU_ISA_NAME "neon"
#define FASTGRU_MR 8
#elif defined(__x86_64__) || defined(_M_X64)
#define FASTGRU_ISA_NAME "sse2"
#define FASTGRU_MR 4
#else
#define FASTGRU_ISA_NAME "generic"
#define FASTGRU_MR 4
#endif
#define FASTGRU_NV 3
// Unit groups a chunk of the batch-1 path keeps in registers (3 accumulators each): 16
// registers on x86 without FMA (a product needs a temporary), 32 on AArch64.
#if defined(__aarch64__)
#define FASTGRU_LATENCY_GROUPS 4
#else
#define FASTGRU_LATENCY_GROUPS 3
#endif
#include "kernels_impl.h"
