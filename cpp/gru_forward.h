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

// The reset_after gates of L units: z or r from the input projection, the recurrent
// product and the bias; the candidate n, where *rec gets hu_h + b_hh, which the tape keeps.
// Both forward schedules call these two, so they compute bit for bit the same.
template <typename T>
inline vec_t<T> gate_zr(vec_t<T> xw, vec_t<T> hu, vec_t<T> b) {
  return sigmoid<T>(hu + (xw + b));  // xw + b is off the chain of steps
}
template <typename T>
inline vec_t<T> gate_n(vec_t<T> xw, vec_t<T> b, vec_t<T> hu, vec_t<T> bhh, vec_t<T> r,
                       vec_t<T>* rec) {
  *rec = hu + bhh;
  return tanh(xw + b + r * *rec);
}

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
      } else {  // n needs (r*h)*Uh: h*U[z,r] onto x*W, gates z and r, then one more GEMM
        gemm_block<T, true>(m, H, h_rows, Hp, Uzr, C, ldc);
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
            const T* hu = c + 3 * Hp;
            z = gate_zr<T>(load<T>(c + u), load<T>(hu + u), load<T>(bx + u));
            r = gate_zr<T>(load<T>(c + Hp + u), load<T>(hu + Hp + u), load<T>(bx + Hp + u));
            n = gate_n<T>(load<T>(c + 2 * Hp + u), load<T>(bx + 2 * Hp + u),
                          load<T>(hu + 2 * Hp + u), load<T>(bhh + u), r, &rec);
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

// Inference on one batch row, reset_after, grouped_width = NA vectors: the latency path of
// a single window or a stream step. Each step streams all of U, so it reads the unit-grouped
// copy (PackedWeights::rec_grouped: no padding) and keeps h*U in NA registers, where each
// gate of L units sits in its own register: the gates read the product from there, with a
// lane shift for a packed tail, never through memory. Groups: FG = NA / 3 with a register
// per gate, then a tail of NA % 3 registers, [z r n] or [z r][n], for the last H - FG*L units.
// The input projection x*W + b is in the same layout, computed one step ahead.
template <typename T, int NA>
bool forward_single_row(const ForwardArgs<T>& a) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int FG = NA / 3, TAIL = NA % 3;
  constexpr size_t NC = size_t(NA) * L;
  const PackedWeights<T>& w = *a.w;
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units, steps = a.steps;
  T* h = static_cast<T*>(thread_scratch(sizeof(T) * (Hp + 2 * NC)));
  if (h == nullptr) return false;
  T* xw = h + Hp;  // x*W of two steps, NC each
  for (size_t u = 0; u < Hp; ++u) h[u] = (a.h0 != nullptr && u < H) ? a.h0[u] : T(0);

  const T* Ug = w.rec_grouped.data();
  const T* Wg = w.kernel_grouped.data();
  const T* bg = w.bias_grouped.data();
  const T* bhh = w.bias_hh.data();
  // A packed tail's r starts at lane t, and its n at lane 2t ([z r n]) or in the next register.
  const size_t t = TAIL != 0 ? H - size_t(FG) * L : 0, tail = size_t(FG) * 3 * L;
  const ivec_t<T> r_shift = shift_index<T>(t), n_shift = shift_index<T>(2 * t);
  // x*W + b of step s into xw row s % 2 (so the gates below add a zero bias: the same
  // values as the batched kernel's x*W, then + b); computed a step ahead, while the product
  // of the step before waits on L1 and leaves the arithmetic ports half idle.
  auto project_input = [&](size_t s) __attribute__((always_inline)) {
    const T* xs = a.x + s * I;
    V p[NA];
#pragma GCC unroll 16
    for (int j = 0; j < NA; ++j) p[j] = V{};
    for (size_t k = 0; k < I; ++k) {
      const V xk = splat<T>(xs[k]);
#pragma GCC unroll 16
      for (int j = 0; j < NA; ++j) p[j] += xk * load<T>(Wg + k * NC + j * L);
    }
#pragma GCC unroll 16
    for (int j = 0; j < NA; ++j) store<T>(xw + (s % 2) * NC + j * L, p[j] + load<T>(bg + j * L));
  };
  if (steps > 0) project_input(0);
  for (size_t step = 0; step < steps; ++step) {
    if (step + 1 < steps) project_input(step + 1);
    V acc[NA];
#pragma GCC unroll 16
    for (int j = 0; j < NA; ++j) acc[j] = V{};
    for (size_t k = 0; k < H; ++k) {
      const V hk = splat<T>(h[k]);
      const T* row = Ug + k * NC;
#pragma GCC unroll 16
      for (int j = 0; j < NA; ++j) acc[j] += hk * load<T>(row + j * L);
    }
    // The gates in two passes: first all the independent sigmoids, then the tanh that
    // needs r, so the core has whole passes of independent work to overlap.
    const T* x = xw + (step % 2) * NC;
    V z[FG + 1], r[FG + 1];
#pragma GCC unroll 16
    for (int g = 0; g < FG; ++g) {
      const size_t c = size_t(3 * g) * L;
      z[g] = gate_zr<T>(load<T>(x + c), acc[3 * g], V{});
      r[g] = gate_zr<T>(load<T>(x + c + L), acc[3 * g + 1], V{});
    }
    if (TAIL != 0) {  // z in lanes [0, t), r in [t, 2t): one sigmoid for both
      z[FG] = gate_zr<T>(load<T>(x + tail), acc[(3 * FG) % NA], V{});
      r[FG] = shift_down<T>(z[FG], r_shift);
    }
#pragma GCC unroll 16
    for (int g = 0; g < FG; ++g) {
      const size_t c = size_t(3 * g) * L, u = size_t(g) * L;
      V rec;
      const V n = gate_n<T>(load<T>(x + c + 2 * L), V{}, acc[3 * g + 2], load<T>(bhh + u), r[g],
                            &rec);
      store<T>(h + u, n + z[g] * (load<T>(h + u) - n));
    }
    if (TAIL != 0) {
      const size_t u = size_t(FG) * L;
      const V xn = TAIL == 1 ? shift_down<T>(load<T>(x + tail), n_shift) : load<T>(x + tail + L);
      const V hn = TAIL == 1 ? shift_down<T>(acc[(3 * FG) % NA], n_shift)
                             : acc[(3 * FG + 1) % NA];
      V rec;
      const V n = gate_n<T>(xn, V{}, hn, load<T>(bhh + u), r[FG], &rec);
      store<T>(h + u, n + z[FG] * (load<T>(h + u) - n));
    }
    if (a.out != nullptr) copy_row(a.out + step * H, h, H);
  }
  if (a.h_last != nullptr) copy_row(a.h_last, h, H);
  return true;
}

template <typename T>
bool forward_latency_path(const ForwardArgs<T>& a) {
  static_assert(PackedWeights<T>::kGroupedVectors == 12, "one case per vector count below");
  switch (a.w->grouped_vectors()) {
#define FASTGRU_CASE(NA_) \
  case NA_:               \
    return forward_single_row<T, NA_>(a);
    FASTGRU_CASE(1) FASTGRU_CASE(2) FASTGRU_CASE(3) FASTGRU_CASE(4) FASTGRU_CASE(5) FASTGRU_CASE(6)
    FASTGRU_CASE(7) FASTGRU_CASE(8) FASTGRU_CASE(9) FASTGRU_CASE(10) FASTGRU_CASE(11) FASTGRU_CASE(12)
#undef FASTGRU_CASE
    default:
      return forward_rows(a, 0, a.batch);
  }
}

template <typename T>
bool gru_forward(const ForwardArgs<T>& a) {
  const PackedWeights<T>& w = *a.w;
  if (a.batch == 1 && w.grouped_width != 0 && a.tape.gates == nullptr) {
    DenormalGuard guard;
    return forward_latency_path(a);
  }
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
