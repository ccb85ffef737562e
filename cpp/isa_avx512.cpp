// AVX-512 (F, DQ, BW, VL) kernels: 16 floats a vector, 8 rows x 3 vectors per micro-kernel
// (24 of the 32 zmm registers hold accumulators). Built with -mavx512f -mavx512dq ...
// x86-64 only: in a macOS universal2 build this file is also compiled for arm64, where
// it must be empty, as dispatch.cpp's own check expects (CMakeLists.txt passes the -m flags
// to the x86-64 slice only).
#if defined(__x86_64__) || defined(_M_X64)
#define FASTGRU_ISA avx512
#define FASTGRU_ISA_NAME "avx512"
#define FASTGRU_VEC_BYTES 64
#define FASTGRU_MR 8
#define FASTGRU_NV 3
#define FASTGRU_LATENCY_GROUPS 4
#include "kernels_impl.h"
#endif
