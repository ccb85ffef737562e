// AVX-512 (F, DQ, BW, VL) kernels: 16 floats a vector, 8 rows x 3 vectors per micro-kernel
// (24 of the 32 zmm registers hold accumulators). Built with -mavx512f -mavx512dq ...
#define FASTGRU_ISA avx512
#define FASTGRU_ISA_NAME "avx512"
#define FASTGRU_VEC_BYTES 64
#define FASTGRU_MR 8
#define FASTGRU_NV 3
#define FASTGRU_LATENCY_GROUPS 4
#include "kernels_impl.h"
