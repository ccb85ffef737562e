// AVX2 + FMA kernels: 8 floats a vector, 4 rows x 3 vectors per micro-kernel (12 of the 16
// ymm registers hold accumulators). Built with -mavx2 -mfma.
#define FASTGRU_ISA avx2
#define FASTGRU_ISA_NAME "avx2"
#define FASTGRU_VEC_BYTES 32
#define FASTGRU_MR 4
#define FASTGRU_NV 3
#define FASTGRU_LATENCY_GROUPS 4
#include "kernels_impl.h"
