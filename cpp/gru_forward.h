// GRU forward: per step, the input projection and the recurrent product of one block of rows
// as small GEMMs on packed weights, then bias, sigmoid, tanh and the blend fused right after
// them while the block is still in L1. Batch rows are split across threads for all T steps,
// so there is no barrier per step.
#pragma once

#include "common.h"
#include "gemm.h"
#include "simd.h"
#include "threads.h"

namespace fastgru {
namespace FASTGRU_ISA {

// Runs rows [r0, r1) of the batch through all steps. Returns false if scratch was unavailable.
template <typename T>
bool forward_rows(const ForwardArgs<T>& a, size_t r0, size_t r1) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int MR = kRows<T>;
  const PackedWeights<T>& w = *a.w;
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units, steps = a.steps;
  // C columns: [x*W (3Hp) | h*U (3Hp)] with reset_after, where the gates add the two halves;
  // without it h*U[z,r] and (r*h)*U[h] accumulate onto x*W in place, in 3Hp columns.
  const size_t nr = r1 - r0, ldc = 6 * Hp;
  const size_t n_state = nr * Hp, n_c = MR * ldc;
  T* state = static_cast<T*>(thread_scratch(sizeof(T) * (n_state + n_c + MR * Hp)));
  if (state == nullptr) return false;
  T* C = state + n_state;
  T* reset_state = C + n_c;  // r * h rows (reset_after=False)

  for (size_t i = 0; i < nr; ++i) {
    for (size_t u = 0; u < Hp; ++u) {
      state[i * Hp + u] = (a.h0 != nullptr && u < H) ? a.h0[(r0 + i) * H + u] : T(0);
    }
  }
  const BView<T> Wx = w.view(w.kernel, I, 3 * Hp);
  const BView<T> U = w.view(w.rec, H, 3 * Hp);
  const BView<T> Uzr = w.view(w.rec_zr, H, 2 * Hp);
  const BView<T> Uh = w.view(w.rec_h, H, Hp);
  const T* bx = w.bias_x.data();
  const T* bhh = w.bias_hh.data();
  const bool training = a.tape.gates != nullptr;

  for (size_t t = 0; t < steps; ++t) {
    for (size_t i0 = 0; i0 < nr; i0 += MR) {
      const int m = int(nr - i0 < size_t(MR) ? nr - i0 : MR);
      const size_t b0 = r0 + i0;
      T* h_rows = state + i0 * Hp;
      gemm_block<T, false>(m, I, a.x + (b0 * steps + t) * I, steps * I, Wx, C, ldc);
      if (w.reset_after) {
        gemm_block<T, false>(m, H, h_rows, Hp, U, C + 3 * Hp, ldc);
      } else {
        gemm_block<T, true>(m, H, h_rows, Hp, Uzr, C, ldc);
      }
      if (!w.reset_after) {  // n needs (r*h)*Uh: gates z and r first, then one more GEMM
        for (int i = 0; i < m; ++i) {
          T* c = C + i * ldc;
          const T* h = h_rows + i * Hp;
          for (size_t u = 0; u < Hp; u += L) {
            const V z = sigmoid<T>(load<T>(c + u) + load<T>(bx + u));
            const V r = sigmoid<T>(load<T>(c + Hp + u) + load<T>(bx + Hp + u));
            store<T>(c + u, z);
            store<T>(c + Hp + u, r);
            store<T>(reset_state + i * Hp + u, r * load<T>(h + u));
          }
        }
        gemm_block<T, true>(m, H, reset_state, Hp, Uh, C + 2 * Hp, ldc);
      }

      for (int i = 0; i < m; ++i) {
        const size_t b = b0 + i, bt = b * steps + t;
        const T* c = C + i * ldc;
        T* h = h_rows + i * Hp;
        T* tape_gates = training ? a.tape.gates + bt * 3 * Hp : nullptr;
        if (training) copy_row(a.tape.h_prev + bt * Hp, h, Hp);
        for (size_t u = 0; u < Hp; u += L) {
          V z, r, n, rec;
          if (w.reset_after) {
            const T* ch = c + 3 * Hp;
            z = sigmoid<T>(load<T>(c + u) + load<T>(ch + u) + load<T>(bx + u));
            r = sigmoid<T>(load<T>(c + Hp + u) + load<T>(ch + Hp + u) + load<T>(bx + Hp + u));
            rec = load<T>(ch + 2 * Hp + u) + load<T>(bhh + u);
            n = tanh(load<T>(c + 2 * Hp + u) + load<T>(bx + 2 * Hp + u) + r * rec);
          } else {
            z = load<T>(c + u);
            r = load<T>(c + Hp + u);
            rec = load<T>(reset_state + i * Hp + u);
            n = tanh(load<T>(c + 2 * Hp + u) + load<T>(bx + 2 * Hp + u));
          }
          const V hp = load<T>(h + u);
          store<T>(h + u, n + z * (hp - n));  // z*h + (1-z)*n
          if (training) {
            store<T>(tape_gates + u, z);
            store<T>(tape_gates + Hp + u, r);
            store<T>(tape_gates + 2 * Hp + u, n);
            store<T>(a.tape.h_rec + bt * Hp + u, rec);
          }
        }
        if (a.out != nullptr) copy_row(a.out + bt * H, h, H);
      }
    }
  }
  if (a.h_last != nullptr) {
    for (size_t i = 0; i < nr; ++i) copy_row(a.h_last + (r0 + i) * H, state + i * Hp, H);
  }
  return true;
}

template <typename T>
bool gru_forward(const ForwardArgs<T>& a) {
  const PackedWeights<T>& w = *a.w;
  const double flops = 2.0 * a.batch * a.steps * 3.0 * w.units * double(w.input_size + w.units);
  const int threads = plan_threads(a.threads, a.batch, kRows<T>, flops);
  if (threads <= 1) {
    DenormalGuard guard;
    return forward_rows(a, 0, a.batch);
  }
  bool ok = true;
#pragma omp parallel num_threads(threads) reduction(&& : ok)
  {
    DenormalGuard guard;
    const RowRange rows = rows_of_thread(a.batch, kRows<T>, thread_index(), team_size());
    if (rows.begin < rows.end) ok = forward_rows(a, rows.begin, rows.end);
  }
  return ok;
}

}  // namespace FASTGRU_ISA
}  // namespace fastgru
