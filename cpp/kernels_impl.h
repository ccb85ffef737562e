// The kernel table of one SIMD path. Each isa_*.cpp defines the path's macros and includes
// this file once; nothing else differs between paths.
#pragma once

#if !defined(FASTGRU_ISA_NAME) || !defined(FASTGRU_MR) || !defined(FASTGRU_NV) || \
    !defined(FASTGRU_LATENCY_GROUPS)
#error "define FASTGRU_ISA, FASTGRU_ISA_NAME, FASTGRU_VEC_BYTES, FASTGRU_MR, FASTGRU_NV, FASTGRU_LATENCY_GROUPS first"
#endif

#include "gru_backward.h"
#include "gru_forward.h"

namespace fastgru {
namespace FASTGRU_ISA {

extern const KernelTable kernel_table;
const KernelTable kernel_table = {
    FASTGRU_ISA_NAME,
    {Simd<float>::lanes, FASTGRU_NV},
    {Simd<double>::lanes, FASTGRU_NV},
    {&gru_forward<float>, &gru_backward<float>},
    {&gru_forward<double>, &gru_backward<double>},
};

}  // namespace FASTGRU_ISA
}  // namespace fastgru
