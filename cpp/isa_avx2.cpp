// AVX2 + FMA kernels: 8 floats a vector, 4 rows x 3 vectors per micro-kernel (12 of the 16
// ymm registers hold accumulators). Built with -mavx2 -mfma.
// x86-64 only: in a macOS universal2 build this file is also compiled for arm64, where
// it must be empty, as dispatch.cpp's own check expects (CMakeLists.txt passes the -m flags
// to the x86-64 slice only).
#if defined(__x86_64__) || defined(_M_X64)
#define FASTGRU_ISA avx2
#define FASTGRU_ISA_NAME "avx2"
#define FASTGRU_VEC_BYTES 32
#define FASTGRU_MR 4
#define FASTGRU_NV 3
#define FASTGRU_LATENCY_GROUPS 4
#include "kernels_impl.h"
#endif
