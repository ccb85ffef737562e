// Packed small-GEMM for the GRU: C (m x N) = / += A (m x K) * B (K x N).
//
// A is read in place, as m rows of a row-major matrix or as m columns of one whose rows are
// k; each step of the K loop broadcasts m scalars of it. B is a BView (packed weights or a
// plain row-major matrix). The micro-kernel keeps m x (P*NV) vector accumulators in
// registers over the whole K loop.
// For a single row (matrix-vector: a batch of one where forward_single_row does not apply) it
// runs P=4 panels at once so that enough independent FMA chains hide the FMA latency.
#pragma once

#include "common.h"
#include "simd.h"

namespace fastgru {
namespace FASTGRU_ISA {

// A(i, k) is A[i*lda + k] (rows of a row-major matrix, read in place: M row pointers, each a
// contiguous stream, so the per-step GEMMs need no packing), or with TRANSPOSED A[k*lda + i]
// (the columns of a matrix whose rows are k).
template <typename T, int M, int P, int NV, bool ACC, bool TRANSPOSED>
inline void micro_kernel(size_t K, const T* __restrict A, size_t lda, const T* __restrict B,
                         size_t panel_stride, size_t ldb, T* __restrict C, size_t ldc) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  V acc[M][P * NV];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < P * NV; ++j) {
      acc[i][j] = ACC ? load<T>(C + i * ldc + (j / NV) * NV * L + (j % NV) * L) : V{};
    }
  }
  for (size_t k = 0; k < K; ++k) {
    V b[P * NV];
#pragma GCC unroll 16
    for (int j = 0; j < P * NV; ++j) b[j] = load<T>(B + (j / NV) * panel_stride + k * ldb + (j % NV) * L);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) {
      const V a = splat<T>(TRANSPOSED ? A[k * lda + i] : A[i * lda + k]);
#pragma GCC unroll 16
      for (int j = 0; j < P * NV; ++j) acc[i][j] += a * b[j];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < P * NV; ++j) store<T>(C + i * ldc + (j / NV) * NV * L + (j % NV) * L, acc[i][j]);
  }
}

// All panels of B for one block of M rows. Full panels have NV vectors; the last may be
// narrower (nvec % NV), and C is never written past column nvec * lanes.
template <typename T, int M, int NV, bool ACC, bool TRANSPOSED>
inline void block_times_panels(size_t K, const T* A, size_t lda, const BView<T>& B, T* C,
                               size_t ldc) {
  constexpr int L = Simd<T>::lanes;
  // Several panels per call when rows are few, to keep about as many accumulators busy as a
  // full block has (enough independent FMA chains to hide the FMA latency).
  constexpr int budget = FASTGRU_MR * NV / (M * NV);
  constexpr int P = budget >= 4 ? 4 : (budget >= 2 ? 2 : 1);
  const size_t full = B.nvec / NV, tail = B.nvec % NV;
  size_t p = 0;
  for (; p + P <= full; p += P) {
    micro_kernel<T, M, P, NV, ACC, TRANSPOSED>(K, A, lda, B.data + p * B.panel_stride, B.panel_stride, B.ldb,
                                   C + p * NV * L, ldc);
  }
  for (; p < full; ++p) {
    micro_kernel<T, M, 1, NV, ACC, TRANSPOSED>(K, A, lda, B.data + p * B.panel_stride, B.panel_stride, B.ldb,
                                   C + p * NV * L, ldc);
  }
  if (tail != 0) {
    const T* b = B.data + full * B.panel_stride;
    T* c = C + full * NV * L;
    if constexpr (NV >= 3) {
      if (tail == 2) return micro_kernel<T, M, 1, 2, ACC, TRANSPOSED>(K, A, lda, b, 0, B.ldb, c, ldc);
    }
    micro_kernel<T, M, 1, 1, ACC, TRANSPOSED>(K, A, lda, b, 0, B.ldb, c, ldc);
  }
}

// Rows of the micro-kernel for this path and type. gemm_block's switch below has cases for
// 1..8 rows: a path with more would silently compute nothing for its wider blocks.
constexpr int kMaxRows = 8;
static_assert(FASTGRU_MR >= 1 && FASTGRU_MR <= kMaxRows,
              "FASTGRU_MR must be 1..8: gemm_block has a case for each row count up to 8");
static_assert(FASTGRU_NV >= 1, "FASTGRU_NV must be at least one vector per panel");
template <typename T> constexpr int kRows = FASTGRU_MR;
constexpr int kPanelVectors = FASTGRU_NV;

// C (m x nvec*L) = or += A (m x K) * B, for any 1 <= m <= kRows<T>. A(i, k) is A[i*lda + k]:
// m rows of a row-major matrix, read in place; with TRANSPOSED it is A[k*lda + i], the
// transpose of a row-major matrix with rows k (weight gradients such as Hprev^T * dG).
template <typename T, bool ACC, bool TRANSPOSED = false>
inline void gemm_block(int m, size_t K, const T* A, size_t lda, const BView<T>& B, T* C,
                       size_t ldc) {
  constexpr int NV = kPanelVectors;
  switch (m) {
#define FASTGRU_CASE(M_)                                                                   \
  case M_:                                                                                 \
    if constexpr (M_ <= kRows<T>) {                                                        \
      return block_times_panels<T, M_, NV, ACC, TRANSPOSED>(K, A, lda, B, C, ldc);         \
    }                                                                                      \
    break;
    FASTGRU_CASE(1) FASTGRU_CASE(2) FASTGRU_CASE(3) FASTGRU_CASE(4)
    FASTGRU_CASE(5) FASTGRU_CASE(6) FASTGRU_CASE(7) FASTGRU_CASE(8)
#undef FASTGRU_CASE
    default: break;
  }
}

template <typename T>
inline void gemm_block_transposed(bool accumulate, int m, size_t K, const T* A, size_t lda,
                                  const BView<T>& B, T* C, size_t ldc) {
  if (accumulate) {
    gemm_block<T, true, true>(m, K, A, lda, B, C, ldc);
  } else {
    gemm_block<T, false, true>(m, K, A, lda, B, C, ldc);
  }
}

}  // namespace FASTGRU_ISA
}  // namespace fastgru
