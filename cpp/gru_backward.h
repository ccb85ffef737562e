// GRU backward through time. The serial path carries only dh: per step and block of rows,
// the gate gradients (elementwise, from the tape) and dh_prev = dh*z + dG*U^T (small GEMMs on
// packed U^T). The pre-activation gradients of every step are kept, and after the loop the
// weight gradients are large GEMMs over all B*T rows (dW = X^T dG, dU = Hprev^T dG), each
// output block owned by one thread, summed in a fixed order: the result does not depend on
// the thread count. Bias gradients ride along as an extra row of ones in those GEMMs.
#pragma once

#include "common.h"
#include "gemm.h"
#include "simd.h"
#include "threads.h"

namespace fastgru {
namespace FASTGRU_ISA {

// Where the backward scratch (PackedWeights::backward_workspace) is cut.
template <typename T>
struct BackwardBuffers {
  T* d_gates;   // (B*T, 3Hp): dL/d(pre-activation) of z, r, n
  T* d_rec_h;   // (B*T, Hp):  dL/d(h*Uh + b_hh) = dn*r (reset_after)
  T* d_kernel;  // (I+1, 3Hp): dW, last row the input bias gradient
  T* d_rec_zr;  // (H, 2Hp)
  T* d_rec_h_w; // (H+1, Hp):  dUh, last row the recurrent h bias gradient (reset_after)

  BackwardBuffers(const PackedWeights<T>& w, size_t rows, T* base) {
    const size_t Hp = w.padded_units;
    d_gates = base;
    d_rec_h = d_gates + rows * 3 * Hp;
    d_kernel = d_rec_h + rows * Hp;
    d_rec_zr = d_kernel + (w.input_size + 1) * 3 * Hp;
    d_rec_h_w = d_rec_zr + w.units * 2 * Hp;
  }
};

// The serial part for rows [r0, r1): dh through all steps backwards, then dx for these rows.
template <typename T>
bool backward_rows(const BackwardArgs<T>& a, const BackwardBuffers<T>& buf, size_t r0, size_t r1) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int MR = kRows<T>;
  const PackedWeights<T>& w = *a.w;
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units, steps = a.steps;
  const size_t nr = r1 - r0, Ip = round_up(I, L);
  const size_t n_dh = nr * Hp, n_q = MR * (Hp > Ip ? Hp : Ip);
  T* dh = static_cast<T*>(thread_scratch(sizeof(T) * (n_dh + n_q)));
  if (dh == nullptr) return false;
  T* q = dh + n_dh;  // (r*h) gradient rows (reset_after=False), later dx rows

  for (size_t i = 0; i < nr; ++i) {
    for (size_t u = 0; u < Hp; ++u) {
      dh[i * Hp + u] = (a.d_h_last != nullptr && u < H) ? a.d_h_last[(r0 + i) * H + u] : T(0);
    }
  }
  const BView<T> UzrT = w.view(w.rec_zr_t, 2 * Hp, H);
  const BView<T> UhT = w.view(w.rec_h_t, Hp, H);
  const V one = splat<T>(T(1));

  for (size_t t = steps; t-- > 0;) {
    for (size_t i0 = 0; i0 < nr; i0 += MR) {
      const int m = int(nr - i0 < size_t(MR) ? nr - i0 : MR);
      const size_t bt0 = (r0 + i0) * steps + t;  // row of the first block row in (B*T, .)
      T* dh_rows = dh + i0 * Hp;
      for (int i = 0; i < m; ++i) {
        const size_t bt = bt0 + i * steps;
        T* d = dh_rows + i * Hp;
        if (a.d_out != nullptr) {
          const T* g = a.d_out + bt * H;
          for (size_t u = 0; u < H; ++u) d[u] += g[u];
        }
        const T* gates = a.tape.gates + bt * 3 * Hp;
        const T* h_prev = a.tape.h_prev + bt * Hp;
        const T* h_rec = a.tape.h_rec + bt * Hp;
        T* dg = buf.d_gates + bt * 3 * Hp;
        for (size_t u = 0; u < Hp; u += L) {
          const V g = load<T>(d + u);
          const V z = load<T>(gates + u), r = load<T>(gates + Hp + u), n = load<T>(gates + 2 * Hp + u);
          const V dn = g * (one - z) * (one - n * n);
          store<T>(dg + u, g * (load<T>(h_prev + u) - n) * z * (one - z));
          store<T>(dg + 2 * Hp + u, dn);
          if (w.reset_after) {
            store<T>(dg + Hp + u, dn * load<T>(h_rec + u) * r * (one - r));
            store<T>(buf.d_rec_h + bt * Hp + u, dn * r);
          }
          store<T>(d + u, g * z);
        }
      }
      const size_t gate_stride = steps * 3 * Hp;
      if (w.reset_after) {
        gemm_block<T, true>(m, Hp, buf.d_rec_h + bt0 * Hp, steps * Hp, UhT, dh_rows, Hp);
      } else {  // n saw (r*h)*Uh: its gradient q = dn*Uh^T feeds dr and dh
        gemm_block<T, false>(m, Hp, buf.d_gates + bt0 * 3 * Hp + 2 * Hp, gate_stride, UhT, q, Hp);
        for (int i = 0; i < m; ++i) {
          const size_t bt = bt0 + i * steps;
          const T* gates = a.tape.gates + bt * 3 * Hp;
          const T* h_prev = a.tape.h_prev + bt * Hp;
          T* dg = buf.d_gates + bt * 3 * Hp;
          T* d = dh_rows + i * Hp;
          for (size_t u = 0; u < Hp; u += L) {
            const V qv = load<T>(q + i * Hp + u), r = load<T>(gates + Hp + u);
            store<T>(dg + Hp + u, qv * load<T>(h_prev + u) * r * (one - r));
            store<T>(d + u, load<T>(d + u) + qv * r);
          }
        }
      }
      gemm_block<T, true>(m, 2 * Hp, buf.d_gates + bt0 * 3 * Hp, gate_stride, UzrT, dh_rows, Hp);
    }
  }
  for (size_t i = 0; i < nr; ++i) copy_row(a.dh0 + (r0 + i) * H, dh + i * Hp, H);

  // dx = dG * W^T for these rows: all their steps are contiguous rows of d_gates.
  const BView<T> WT = w.view(w.kernel_t, 3 * Hp, I);
  const size_t rows = nr * steps;
  const T* dg0 = buf.d_gates + r0 * steps * 3 * Hp;
  for (size_t i0 = 0; i0 < rows; i0 += MR) {
    const int m = int(rows - i0 < size_t(MR) ? rows - i0 : MR);
    gemm_block<T, false>(m, 3 * Hp, dg0 + i0 * 3 * Hp, 3 * Hp, WT, q, Ip);
    for (int i = 0; i < m; ++i) copy_row(a.dx + (r0 * steps + i0 + i) * I, q + i * Ip, I);
  }
  return true;
}

// One tall-K weight-gradient product, C = A^T-like source * B, rows split between threads.
template <typename T>
struct WeightGradient {
  size_t M;            // output rows (the last one may be the bias row of ones)
  const T* a;          // A(i, k) = a[i * a_rs + k * a_cs]
  size_t a_rs, a_cs;
  long ones_row;       // -1: none
  BView<T> b;
  T* c;
  size_t ldc;
};

template <typename T>
bool weight_gradients(const WeightGradient<T>* g, int count, size_t K, int thread, int team) {
  constexpr int MR = kRows<T>;
  size_t widest = 0;
  for (int j = 0; j < count; ++j) widest = g[j].b.nvec > widest ? g[j].b.nvec : widest;
  // K chunk: about 256 KiB of B per chunk, so it stays in L2 while every row block uses it.
  size_t kc = (size_t(256) << 10) / (widest * Simd<T>::lanes * sizeof(T));
  kc = kc < 32 ? 32 : (kc > 1024 ? 1024 : kc);
  T* pack = static_cast<T*>(thread_scratch(sizeof(T) * MR * kc));
  if (pack == nullptr) return false;
  for (int j = 0; j < count; ++j) {
    const size_t blocks = (g[j].M + MR - 1) / MR;
    const size_t mb0 = blocks * thread / team, mb1 = blocks * (thread + 1) / team;
    gemm_tall_k<T>(g[j].M, K, g[j].a, g[j].a_rs, g[j].a_cs, g[j].ones_row, g[j].b, g[j].c,
                   g[j].ldc, mb0, mb1, pack, kc);
  }
  return true;
}

template <typename T>
bool gru_backward(const BackwardArgs<T>& a) {
  const PackedWeights<T>& w = *a.w;
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units, L = Simd<T>::lanes;
  const size_t rows = a.batch * a.steps;
  const BackwardBuffers<T> buf(w, rows, a.workspace);

  BView<T> dg_all{buf.d_gates, Simd<T>::lanes * size_t(kPanelVectors), 3 * Hp, 3 * Hp / L};
  BView<T> dg_zr = dg_all;
  dg_zr.nvec = 2 * Hp / L;
  BView<T> dg_h = dg_all;
  dg_h.data = buf.d_gates + 2 * Hp;
  dg_h.nvec = Hp / L;
  BView<T> drec_h{buf.d_rec_h, Simd<T>::lanes * size_t(kPanelVectors), Hp, Hp / L};
  const WeightGradient<T> grads[3] = {
      {I + 1, a.x, 1, I, long(I), dg_all, buf.d_kernel, 3 * Hp},
      {H, a.tape.h_prev, 1, Hp, -1, dg_zr, buf.d_rec_zr, 2 * Hp},
      w.reset_after ? WeightGradient<T>{H + 1, a.tape.h_prev, 1, Hp, long(H), drec_h, buf.d_rec_h_w, Hp}
                    : WeightGradient<T>{H, a.tape.h_rec, 1, Hp, -1, dg_h, buf.d_rec_h_w, Hp},
  };

  const double flops = 6.0 * a.batch * a.steps * 3.0 * H * double(I + H);
  int threads = a.threads < 1 ? 1 : a.threads;
  if (flops < 4e6) threads = 1;
  bool ok = true;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(&& : ok)
  {
    DenormalGuard guard;
    const int thread = thread_index(), team = team_size();
    const RowRange mine = rows_of_thread(a.batch, kRows<T>, thread, team);
    if (mine.begin < mine.end) ok = backward_rows(a, buf, mine.begin, mine.end);
#pragma omp barrier
    ok = weight_gradients(grads, 3, rows, thread, team) && ok;
  }
  if (!ok) return false;

  // Unpad into the Keras layout.
  for (size_t g = 0; g < 3; ++g) {
    for (size_t u = 0; u < H; ++u) {
      const size_t c = g * H + u, cp = g * Hp + u;
      for (size_t i = 0; i < I; ++i) a.dkernel[i * 3 * H + c] = buf.d_kernel[i * 3 * Hp + cp];
      for (size_t k = 0; k < H; ++k) {
        a.drecurrent[k * 3 * H + c] = g < 2 ? buf.d_rec_zr[k * 2 * Hp + cp] : buf.d_rec_h_w[k * Hp + u];
      }
      const T db_in = buf.d_kernel[I * 3 * Hp + cp];
      a.dbias[c] = db_in;
      if (w.reset_after) a.dbias[3 * H + c] = g < 2 ? db_in : buf.d_rec_h_w[H * Hp + u];
    }
  }
  return true;
}

}  // namespace FASTGRU_ISA
}  // namespace fastgru
