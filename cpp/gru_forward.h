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

// The reset_after gates of units [u, u+L), from the input projection xw (3Hp values, gates
// z, r, h) and the recurrent product's vectors hu_*. Both forward schedules call these two, so
// they compute bit for bit the same; the batch-1 one calls them in two passes.
template <typename T>
inline void gates_zr(const T* xw, vec_t<T> hu_z, vec_t<T> hu_r, const T* bx, size_t Hp, size_t u,
                     vec_t<T>* z, vec_t<T>* r) {
  *z = sigmoid<T>(load<T>(xw + u) + hu_z + load<T>(bx + u));
  *r = sigmoid<T>(load<T>(xw + Hp + u) + hu_r + load<T>(bx + Hp + u));
}

// The candidate n; *rec gets hu_h + b_hh, which the tape keeps.
template <typename T>
inline vec_t<T> gate_n(const T* xw, vec_t<T> hu_h, vec_t<T> r, const T* bx, const T* bhh,
                       size_t Hp, size_t u, vec_t<T>* rec) {
  *rec = hu_h + load<T>(bhh + u);
  return tanh(load<T>(xw + 2 * Hp + u) + load<T>(bx + 2 * Hp + u) + r * *rec);
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
            gates_zr<T>(c, load<T>(hu + u), load<T>(hu + Hp + u), bx, Hp, u, &z, &r);
            n = gate_n<T>(c, load<T>(hu + 2 * Hp + u), r, bx, bhh, Hp, u, &rec);
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

// Inference on one batch row, reset_after, 3H within PackedWeights::kCompactVectors vectors:
// the latency path of a single window or a stream step. Each step streams all of U, so it
// reads the unpadded copy (rec_compact) and keeps the NA accumulators of h*U in registers;
// the input projections of kChunkSteps steps come from one GEMM. Lanes of h past H pick up
// values of the next gate; only the first H are ever read (the product runs over k < H).
template <typename T, int NA>
bool forward_single_row(const ForwardArgs<T>& a) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int MR = kRows<T>;
  constexpr size_t kChunkSteps = 16;
  const PackedWeights<T>& w = *a.w;
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units, G = 3 * Hp, steps = a.steps;
  const size_t NC = w.compact_width;
  T* h = static_cast<T*>(thread_scratch(sizeof(T) * (Hp + NC + L + kChunkSteps * G)));
  if (h == nullptr) return false;
  T* hu = h + Hp;             // h*U, compact: gate g of unit u at g*H + u (L spare lanes)
  T* xw = hu + NC + L;        // (step of the chunk, 3Hp), padded gates
  for (size_t u = 0; u < Hp; ++u) h[u] = (a.h0 != nullptr && u < H) ? a.h0[u] : T(0);
  for (size_t c = NC; c < NC + L; ++c) hu[c] = T(0);

  const BView<T> Wx = w.view(w.kernel, I, G);
  const T* Uc = w.rec_compact.data();
  const T* bx = w.bias_x.data();
  const T* bhh = w.bias_hh.data();
  for (size_t t0 = 0; t0 < steps; t0 += kChunkSteps) {
    const size_t tc = steps - t0 < kChunkSteps ? steps - t0 : kChunkSteps;
    for (size_t s0 = 0; s0 < tc; s0 += MR) {
      const int ms = int(tc - s0 < size_t(MR) ? tc - s0 : MR);
      gemm_block<T, false>(ms, I, a.x + (t0 + s0) * I, I, Wx, xw + s0 * G, G);
    }
    for (size_t s = 0; s < tc; ++s) {
      V acc[NA];
#pragma GCC unroll 16
      for (int j = 0; j < NA; ++j) acc[j] = V{};
      for (size_t k = 0; k < H; ++k) {
        const V hk = splat<T>(h[k]);
        const T* row = Uc + k * NC;
#pragma GCC unroll 16
        for (int j = 0; j < NA; ++j) acc[j] += hk * load<T>(row + j * L);
      }
#pragma GCC unroll 16
      for (int j = 0; j < NA; ++j) store<T>(hu + j * L, acc[j]);
      // The gates in two passes over the (at most 4) vectors of units: first the 2*VG
      // independent sigmoids, then the tanh that needs r, so the core has whole passes of
      // independent work to overlap (one vector at a time is a chain of latencies).
      const T* x = xw + s * G;
      const size_t vg = Hp / L;
      V z[4], r[4];
#pragma GCC unroll 4
      for (size_t v = 0; v < 4; ++v) {
        if (v < vg) {
          const size_t u = v * L;
          gates_zr<T>(x, load<T>(hu + u), load<T>(hu + H + u), bx, Hp, u, &z[v], &r[v]);
        }
      }
#pragma GCC unroll 4
      for (size_t v = 0; v < 4; ++v) {
        if (v < vg) {
          const size_t u = v * L;
          V rec;
          const V n = gate_n<T>(x, load<T>(hu + 2 * H + u), r[v], bx, bhh, Hp, u, &rec);
          store<T>(h + u, n + z[v] * (load<T>(h + u) - n));
        }
      }
      if (a.out != nullptr) copy_row(a.out + (t0 + s) * H, h, H);
    }
  }
  if (a.h_last != nullptr) copy_row(a.h_last, h, H);
  return true;
}

template <typename T>
bool forward_latency_path(const ForwardArgs<T>& a) {
  switch (a.w->compact_width / Simd<T>::lanes) {
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
  if (a.batch == 1 && w.compact_width != 0 && a.tape.gates == nullptr) {
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
