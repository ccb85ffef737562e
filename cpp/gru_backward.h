// GRU backward through time. The serial path carries only dh: per step and block of rows,
// the gate gradients (elementwise, from the tape) and dh_prev = dh*z + dG*U^T (small GEMMs on
// packed U^T). The pre-activation gradients of every step are kept, and after the loop the
// weight gradients are large GEMMs over all B*T rows (dW = X^T dG, dU = Hprev^T dG), each
// output block owned by one thread, summed in a fixed order: the result does not depend on
// the thread count. Bias gradients are the column sums of the gate gradients.
#pragma once

#include "common.h"
#include "gemm.h"
#include "simd.h"
#include "threads.h"

namespace fastgru {
namespace FASTGRU_ISA {

// Where the backward scratch (PackedWeights::backward_workspace) is cut. One row of d_gates
// per (batch, step), in the column order the weight gradients read as contiguous ranges:
//   reset_after:        [dnr | dz | dr | dn]  (4Hp; dnr = dn*r is dL/d(h*Uh + b_hh))
//                        dU = Hprev^T [dnr dz dr] (columns h, z, r), dW = X^T [dz dr dn]
//   reset_after=False:  [dz | dr | dn]        (3Hp)
//                        dU[z,r] = Hprev^T [dz dr], dU[h] = (r*h)^T dn, dW = X^T [dz dr dn]
template <typename T>
struct BackwardBuffers {
  size_t gate_stride;  // columns of one d_gates row
  size_t w_col;        // first column of [dz dr dn]
  T* d_gates;          // (B*T, gate_stride)
  T* d_kernel;         // (I, 3Hp): dW, gates z, r, n
  T* d_rec;            // (H, 3Hp): dU, gates h, z, r (reset_after) or z, r, h
  T* d_sums;           // (gate_stride): column sums of d_gates, the bias gradients

  BackwardBuffers(const PackedWeights<T>& w, size_t rows, T* base) {
    const size_t Hp = w.padded_units;
    gate_stride = (w.reset_after ? 4 : 3) * Hp;
    w_col = w.reset_after ? Hp : 0;
    d_gates = base;
    d_kernel = d_gates + rows * gate_stride;
    d_rec = d_kernel + w.input_size * 3 * Hp;
    d_sums = d_rec + w.units * 3 * Hp;  // 4Hp at most: backward_workspace() has exactly room
  }
};

// dx rows for a small input size: one dot product of a d_gates row with each row of W (the
// forward kernel panels hold W as I rows of 3Hp), where a GEMM would be one vector wide.
template <typename T>
void dx_by_dots(const PackedWeights<T>& w, const T* dg, size_t ld, size_t rows, T* dx) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  const size_t I = w.input_size, nvec = 3 * w.padded_units / L, PW = w.panel_width();
  const size_t NV = size_t(w.geo.nv);
  for (size_t r = 0; r < rows; ++r) {
    const T* g = dg + r * ld;
    for (size_t i = 0; i < I; ++i) {
      V acc0{}, acc1{};
      size_t v = 0;
      for (; v + 1 < nvec; v += 2) {
        acc0 += load<T>(g + v * L) * load<T>(w.kernel.data() + (v / NV) * I * PW + i * PW + (v % NV) * L);
        const size_t u = v + 1;
        acc1 += load<T>(g + u * L) * load<T>(w.kernel.data() + (u / NV) * I * PW + i * PW + (u % NV) * L);
      }
      if (v < nvec) acc0 += load<T>(g + v * L) * load<T>(w.kernel.data() + (v / NV) * I * PW + i * PW + (v % NV) * L);
      acc0 += acc1;
      T s = T(0);
      for (int l = 0; l < L; ++l) s += acc0[l];
      dx[r * I + i] = s;
    }
  }
}

// The serial part for rows [r0, r1): dh through all steps backwards, then dx for these rows.
template <typename T>
bool backward_rows(const BackwardArgs<T>& a, const BackwardBuffers<T>& buf, size_t r0, size_t r1) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int MR = kRows<T>;
  const PackedWeights<T>& w = *a.w;
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units, steps = a.steps;
  const size_t nr = r1 - r0, Ip = round_up(I, L), gs = buf.gate_stride;
  const size_t n_dh = nr * Hp, n_q = MR * (Hp > Ip ? Hp : Ip);
  T* dh = static_cast<T*>(thread_scratch(sizeof(T) * (n_dh + n_q)));
  if (dh == nullptr) return false;
  T* q = dh + n_dh;  // (r*h) gradient rows (reset_after=False), later dx rows

  for (size_t i = 0; i < nr; ++i) {
    for (size_t u = 0; u < Hp; ++u) {
      dh[i * Hp + u] = (a.d_h_last != nullptr && u < H) ? a.d_h_last[(r0 + i) * H + u] : T(0);
    }
  }
  // dh_prev += dz*Uz^T + dr*Ur^T + (dnr or q-part)*Uh^T, each product over the H real units
  // only (K = H, not Hp: the padded gate columns are zero).
  const BView<T> UzrT = w.view(w.rec_zr_t, 2 * Hp, H);
  BView<T> UzT = UzrT, UrT = UzrT;
  UrT.data += Hp * UzrT.ldb;
  const BView<T> UhT = w.view(w.rec_h_t, Hp, H);
  const V one = splat<T>(T(1));
  // Columns of dz, dr, dn and (reset_after) dn*r within a d_gates row.
  const size_t cz = buf.w_col, cr = cz + Hp, cn = cz + 2 * Hp, cnr = 0;

  for (size_t t = steps; t-- > 0;) {
    for (size_t i0 = 0; i0 < nr; i0 += MR) {
      const int m = int(nr - i0 < size_t(MR) ? nr - i0 : MR);
      const size_t bt0 = (r0 + i0) * steps + t;  // row of the first block row in (B*T, .)
      T* dh_rows = dh + i0 * Hp;
      T* dg0 = buf.d_gates + bt0 * gs;
      const size_t lda = steps * gs;
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
        T* dg = buf.d_gates + bt * gs;
        for (size_t u = 0; u < Hp; u += L) {
          const V g = load<T>(d + u);
          const V z = load<T>(gates + u), r = load<T>(gates + Hp + u), n = load<T>(gates + 2 * Hp + u);
          const V dn = g * (one - z) * (one - n * n);
          store<T>(dg + cz + u, g * (load<T>(h_prev + u) - n) * z * (one - z));
          store<T>(dg + cn + u, dn);
          if (w.reset_after) {
            store<T>(dg + cr + u, dn * load<T>(h_rec + u) * r * (one - r));
            store<T>(dg + cnr + u, dn * r);
          }
          store<T>(d + u, g * z);
        }
      }
      if (w.reset_after) {
        gemm_block<T, true>(m, H, dg0 + cnr, lda, UhT, dh_rows, Hp);
      } else {  // n saw (r*h)*Uh: its gradient q = dn*Uh^T feeds dr and dh
        gemm_block<T, false>(m, H, dg0 + cn, lda, UhT, q, Hp);
        for (int i = 0; i < m; ++i) {
          const size_t bt = bt0 + i * steps;
          const T* gates = a.tape.gates + bt * 3 * Hp;
          const T* h_prev = a.tape.h_prev + bt * Hp;
          T* dg = buf.d_gates + bt * gs;
          T* d = dh_rows + i * Hp;
          for (size_t u = 0; u < Hp; u += L) {
            const V qv = load<T>(q + i * Hp + u), r = load<T>(gates + Hp + u);
            store<T>(dg + cr + u, qv * load<T>(h_prev + u) * r * (one - r));
            store<T>(d + u, load<T>(d + u) + qv * r);
          }
        }
      }
      gemm_block<T, true>(m, H, dg0 + cz, lda, UzT, dh_rows, Hp);
      gemm_block<T, true>(m, H, dg0 + cr, lda, UrT, dh_rows, Hp);
    }
  }
  for (size_t i = 0; i < nr; ++i) copy_row(a.dh0 + (r0 + i) * H, dh + i * Hp, H);
  if (a.dx == nullptr) return true;

  // dx = dG * W^T for these rows: all their steps are contiguous rows of d_gates.
  const size_t rows = nr * steps;
  const T* dgw = buf.d_gates + r0 * steps * gs + buf.w_col;
  if (I <= 4) {
    dx_by_dots(w, dgw, gs, rows, a.dx + r0 * steps * I);
    return true;
  }
  const BView<T> WT = w.view(w.kernel_t, 3 * Hp, I);
  for (size_t i0 = 0; i0 < rows; i0 += MR) {
    const int m = int(rows - i0 < size_t(MR) ? rows - i0 : MR);
    gemm_block<T, false>(m, 3 * Hp, dgw + i0 * gs, gs, WT, q, Ip);
    for (int i = 0; i < m; ++i) copy_row(a.dx + (r0 * steps + i0 + i) * I, q + i * Ip, I);
  }
  return true;
}

// One tall-K weight-gradient product over a column range of d_gates:
// C(i, c - col_begin) = sum over rows k of A(i, k) * dG(k, c), A(i, k) = a[k * lda + i].
template <typename T>
struct WeightGradient {
  size_t M;
  const T* a;
  size_t lda;
  size_t col_begin, col_end;  // columns of d_gates, multiples of the vector width
  T* c;
  size_t ldc;
};

// Phase 2: the weight gradients, split between threads by columns of d_gates (so each thread
// streams only its share of dG), balanced by the rows each column feeds. Every output element
// is summed over all B*T rows in order, whatever the split: same result for any thread count.
template <typename T>
bool weight_gradients(const WeightGradient<T>* g, int count, const BackwardBuffers<T>& buf,
                      size_t K, int thread, int team) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int MR = kRows<T>;
  constexpr size_t NVL = size_t(kPanelVectors) * L;
  const size_t gs = buf.gate_stride, nvec = gs / L;
  // Cost of column vector v: the output rows it feeds (+1 for its bias sum).
  auto cost = [&](size_t v) {
    size_t c = 1;
    for (int j = 0; j < count; ++j) {
      if (v * L >= g[j].col_begin && v * L < g[j].col_end) c += g[j].M;
    }
    return c;
  };
  size_t total = 0;
  for (size_t v = 0; v < nvec; ++v) total += cost(v);
  // Thread t takes the vectors whose cumulative cost midpoint falls in its share.
  size_t v0 = nvec, v1 = nvec, before = 0;
  for (size_t v = 0; v < nvec; ++v) {
    const size_t c = cost(v);
    const size_t owner = ((2 * before + c) * size_t(team)) / (2 * total);
    if (owner == size_t(thread) && v0 == nvec) v0 = v;
    if (owner > size_t(thread) && v1 == nvec) v1 = v;
    before += c;
  }
  if (v0 >= v1) return true;

  // K chunk: about 256 KiB of this thread's dG columns, so they stay in L2 while every row
  // block of every product uses them.
  size_t kc = (size_t(256) << 10) / ((v1 - v0) * L * sizeof(T));
  kc = kc < 32 ? 32 : (kc > 2048 ? 2048 : kc);
  T* sums = buf.d_sums;
  for (size_t v = v0; v < v1; ++v) store<T>(sums + v * L, V{});
  for (size_t k0 = 0; k0 < K; k0 += kc) {
    const size_t kn = K - k0 < kc ? K - k0 : kc;
    const T* dg = buf.d_gates + k0 * gs;
    for (int j = 0; j < count; ++j) {
      const size_t c0 = v0 * L > g[j].col_begin ? v0 * L : g[j].col_begin;
      const size_t c1 = v1 * L < g[j].col_end ? v1 * L : g[j].col_end;
      if (c0 >= c1) continue;
      const BView<T> b{dg + c0, NVL, gs, (c1 - c0) / L};
      T* c = g[j].c + (c0 - g[j].col_begin);
      for (size_t i0 = 0; i0 < g[j].M; i0 += MR) {
        const int m = int(g[j].M - i0 < size_t(MR) ? g[j].M - i0 : MR);
        gemm_block_transposed<T>(k0 != 0, m, kn, g[j].a + k0 * g[j].lda + i0, g[j].lda, b,
                                 c + i0 * g[j].ldc, g[j].ldc);
      }
    }
    for (size_t k = 0; k < kn; ++k) {
      for (size_t v = v0; v < v1; ++v) {
        store<T>(sums + v * L, load<T>(sums + v * L) + load<T>(dg + k * gs + v * L));
      }
    }
  }
  return true;
}

template <typename T>
bool gru_backward(const BackwardArgs<T>& a) {
  const PackedWeights<T>& w = *a.w;
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units;
  const size_t rows = a.batch * a.steps;
  const BackwardBuffers<T> buf(w, rows, a.workspace);
  const size_t w_col = buf.w_col;

  WeightGradient<T> grads[3];
  int count = 0;
  grads[count++] = {I, a.x, I, w_col, w_col + 3 * Hp, buf.d_kernel, 3 * Hp};
  if (w.reset_after) {
    grads[count++] = {H, a.tape.h_prev, Hp, 0, 3 * Hp, buf.d_rec, 3 * Hp};
  } else {
    grads[count++] = {H, a.tape.h_prev, Hp, 0, 2 * Hp, buf.d_rec, 3 * Hp};
    grads[count++] = {H, a.tape.h_rec, Hp, 2 * Hp, 3 * Hp, buf.d_rec + 2 * Hp, 3 * Hp};
  }

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
    ok = weight_gradients(grads, count, buf, rows, thread, team) && ok;
  }
  if (!ok) return false;

  // Unpad into the Keras layout (gates z, r, h).
  const T* sums = buf.d_sums;
  for (size_t g = 0; g < 3; ++g) {
    const size_t rec_col = (w.reset_after ? (g + 1) % 3 : g) * Hp;  // gate g's column of dU
    for (size_t u = 0; u < H; ++u) {
      const size_t c = g * H + u, cp = g * Hp + u;
      for (size_t i = 0; i < I; ++i) a.dkernel[i * 3 * H + c] = buf.d_kernel[i * 3 * Hp + cp];
      for (size_t k = 0; k < H; ++k) a.drecurrent[k * 3 * H + c] = buf.d_rec[k * 3 * Hp + rec_col + u];
      const T db_in = sums[w_col + cp];
      a.dbias[c] = db_in;
      if (w.reset_after) a.dbias[3 * H + c] = g < 2 ? db_in : sums[u];  // b_hh: sum of dn*r
    }
  }
  return true;
}

}  // namespace FASTGRU_ISA
}  // namespace fastgru
