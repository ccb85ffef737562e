// GRU backward through time, in chunks of steps (latest first). Per chunk: the serial path
// carries only dh: per step and block of rows, the gate gradients (elementwise, from the tape)
// and dh_prev = dh*z + dG*U^T (small GEMMs on packed U^T), each thread its own batch rows;
// then, with the chunk's gate gradients still in cache, the weight gradients accumulate as
// GEMMs over the chunk's rows (dW += X^T dG, dU += Hprev^T dG). The batch rows form a fixed
// number of groups (kBackwardGroups, blocks of rows; not the thread count), each with its own
// partial weight gradients, summed in group order at the end: with as many threads as groups
// each thread reads only the rows it wrote (reading another core's rows costs more than the
// products here); other threads split a group's columns. Every weight gradient is summed in
// one fixed order (group, chunk, row): the result does not depend on the thread count. Bias
// gradients are the column sums of the gate gradients.
#pragma once

#include <cassert>

#include "common.h"
#include "gemm.h"
#include "simd.h"
#include "threads.h"

namespace fastgru {
namespace FASTGRU_ISA {

// Where the backward scratch (PackedWeights::backward_workspace) is cut. The chunk buffers
// hold one row per (batch row b, step t) of the current chunk, group by group: row
// chunk*lo + (t - t_begin)*n + (b - lo) for b in the group's rows [lo, lo + n) (TapeRows'
// order within the chunk). So a block of batch rows at one step is contiguous, and so are
// all rows of a group for the weight gradients, which pair them with the same run of tape
// rows (h_prev, and r*h without reset_after). d_gates columns, ordered so that each
// product reads a contiguous range:
//   reset_after:        [dnr | dz | dr | dn]  (4Hp; dnr = dn*r is dL/d(h*Uh + b_hh))
//                        dU = Hprev^T [dnr dz dr] (columns h, z, r), dW = X^T [dz dr dn]
//   reset_after=False:  [dz | dr | dn]        (3Hp)
//                        dU[z,r] = Hprev^T [dz dr], dU[h] = (r*h)^T dn, dW = X^T [dz dr dn]
template <typename T>
struct ChunkBuffers {
  T* d_gates;  // (chunk*B, gate_stride)
  T* x;        // (chunk*B, I)
};

// One group's partial weight gradients.
template <typename T>
struct GroupGradients {
  T* d_kernel;  // (I, 3Hp): dW, gates z, r, n
  T* d_rec;     // (H, 3Hp): dU, gates h, z, r (reset_after) or z, r, h
  T* d_sums;    // (gate_stride): column sums of d_gates, the bias gradients
  T* d_tail;    // (3, t, Hp): dU of the t = tail_dot_units last units of each d_gates block
                // [h z r], transposed (row: unit of that gate; column: unit of h_prev)
};

// Two sets of chunk buffers, so that one barrier per chunk suffices: a thread can fill chunk
// i+1 while another still reads chunk i for the weight gradients.
template <typename T>
struct BackwardBuffers {
  size_t chunk;        // steps per chunk
  size_t gate_stride;  // columns of one d_gates row
  size_t w_col;        // first column of [dz dr dn]
  TapeRows tape_rows;  // the groups of batch rows (at most kBackwardGroups) and the tape's order
  ChunkBuffers<T> chunks[2];
  GroupGradients<T> grads[kBackwardGroups];

  BackwardBuffers(const PackedWeights<T>& w, size_t batch, size_t steps, int mr, T* base)
      : tape_rows(batch, steps, size_t(mr)) {
    const size_t Hp = w.padded_units, I = w.input_size;
    chunk = w.backward_chunk(batch, steps);
    gate_stride = (w.reset_after ? 4 : 3) * Hp;
    w_col = w.reset_after ? Hp : 0;
    // Sizes from PackedWeights::backward_workspace's own helpers.
    const size_t rows = chunk * batch, chunk_elements = w.backward_chunk_elements(rows);
    for (size_t i = 0; i < 2; ++i) {
      ChunkBuffers<T>& c = chunks[i];
      c.d_gates = base + i * chunk_elements;
      c.x = c.d_gates + rows * gate_stride;
    }
    for (size_t g = 0; g < tape_rows.groups; ++g) {
      grads[g].d_kernel = base + 2 * chunk_elements + g * w.backward_group_elements();
      grads[g].d_rec = grads[g].d_kernel + I * 3 * Hp;
      grads[g].d_sums = grads[g].d_rec + w.units * 3 * Hp;
      grads[g].d_tail = grads[g].d_sums + 4 * Hp;
    }
  }

  // Chunk row of batch row b at step t_begin + tl. Each group has the same rows in every
  // chunk, a shorter last chunk included, so a thread that only touches its own groups'
  // rows never meets another thread's, however far ahead either is.
  size_t row(size_t b, size_t tl) const { return tape_rows.row_in_run(b, tl, chunk); }
};

// dx rows for a small input size: one dot product of a d_gates row with each row of W (the
// forward kernel panels hold W as I rows of 3Hp), where a GEMM would be one vector wide.
constexpr size_t kDxByDotsMaxInputs = 4;  // up to this input size (a GEMM's N of one vector)
template <typename T>
void dx_by_dots(const PackedWeights<T>& w, const T* dg, size_t ld, size_t rows, T* dx,
                size_t ldx) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr size_t NV = size_t(kPanelVectors);  // this path's panel width: W's packing
  const size_t I = w.input_size, nvec = 3 * w.padded_units / L, PW = w.panel_width();
  auto wv = [&](size_t v, size_t i) {
    return load<T>(w.kernel.data() + (v / NV) * I * PW + i * PW + (v % NV) * L);
  };
  for (size_t r = 0; r < rows; ++r) {
    const T* g = dg + r * ld;
    for (size_t i = 0; i < I; ++i) {
      V acc0{}, acc1{};
      size_t v = 0;
      for (; v + 1 < nvec; v += 2) {
        acc0 += load<T>(g + v * L) * wv(v, i);
        acc1 += load<T>(g + (v + 1) * L) * wv(v + 1, i);
      }
      if (v < nvec) acc0 += load<T>(g + v * L) * wv(v, i);
      acc0 += acc1;
      T s = T(0);
      for (int l = 0; l < L; ++l) s += acc0[l];
      dx[r * ldx + i] = s;
    }
  }
}

// One thread's serial state: dh of its batch rows, and a few rows of scratch.
template <typename T>
struct SerialState {
  T* dh;  // (rows, Hp)
  T* q;   // (MR, max(Hp, Ip)): (r*h) gradient rows (reset_after=False), dx rows
};

// The serial part for batch rows [r0, r1) over steps [t0, t1), latest first: gate gradients
// into the chunk buffers, dh carried back, then dx for these rows and steps.
template <typename T>
void backward_rows(const BackwardArgs<T>& a, const BackwardBuffers<T>& buf,
                   const ChunkBuffers<T>& cb, SerialState<T> st, size_t r0, size_t r1, size_t t0,
                   size_t t1) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int MR = kRows<T>;
  const PackedWeights<T>& w = *a.w;
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units, steps = a.steps;
  const size_t nr = r1 - r0, Ip = round_up(I, L), gs = buf.gate_stride;
  T* dh = st.dh;
  T* q = st.q;
  // dh_prev += dz*Uz^T + dr*Ur^T + (dnr or q-part)*Uh^T, each product over the H real units
  // only (K = H, not Hp: the padded gate columns are zero).
  // With a short tail (PackedWeights::rec_tail) the products stop at the last whole vector
  // of units and the tail's dh comes from dot products of each d_gates row [dnr dz dr] with
  // those units' rows of U. The dots come first: they write only the tail's columns of dh,
  // which the products do not touch (so the value is the same as after them), and their
  // dependent adds then overlap the products instead of waiting at the end of the step.
  const size_t tail = w.tail_dot_units, tail_col = H - tail;
  // The dots read [dnr dz dr] as columns [0, 3Hp) of a d_gates row: reset_after's layout.
  assert(w.reset_after || tail == 0);
  BView<T> UzrT = w.view(w.rec_zr_t, 2 * Hp, H);
  BView<T> UhT = w.view(w.rec_h_t, Hp, H);
  if (tail != 0) UzrT.nvec = UhT.nvec = tail_col / L;
  BView<T> UzT = UzrT, UrT = UzrT;
  UrT.data += Hp * UzrT.ldb;
  const V one = splat<T>(T(1));
  // Columns of dz, dr, dn and (reset_after) dn*r within a d_gates row.
  const size_t cz = buf.w_col, cr = cz + Hp, cn = cz + 2 * Hp, cnr = 0;

  for (size_t t = t1; t-- > t0;) {
    for (size_t i0 = 0; i0 < nr; i0 += MR) {
      const int m = int(nr - i0 < size_t(MR) ? nr - i0 : MR);
      T* dh_rows = dh + i0 * Hp;
      // A block never spans two groups: its rows are consecutive in the chunk and the tape.
      const size_t c0 = buf.row(r0 + i0, t - t0), tb0 = buf.tape_rows.row(r0 + i0, t);
      T* dg0 = cb.d_gates + c0 * gs;
      for (int i = 0; i < m; ++i) {
        const size_t b = r0 + i0 + i, bt = b * steps + t, tb = tb0 + size_t(i);
        const size_t c = c0 + size_t(i);
        T* d = dh_rows + i * Hp;
        if (a.d_out != nullptr) {
          const T* g = a.d_out + bt * H;
          for (size_t u = 0; u < H; ++u) d[u] += g[u];
        }
        const T* gates = a.tape.gates + tb * 3 * Hp;
        const T* h_prev = a.tape.h_prev + tb * Hp;
        const T* h_rec = a.tape.h_rec + tb * Hp;
        T* dg = cb.d_gates + c * gs;
        for (size_t k = 0; k < I; ++k) cb.x[c * I + k] = a.x[bt * I + k];  // I is often 1
        for (size_t u = 0; u < Hp; u += L) {
          const V g = load<T>(d + u), hp = load<T>(h_prev + u);
          const V z = load<T>(gates + u), r = load<T>(gates + Hp + u), n = load<T>(gates + 2 * Hp + u);
          const V dn = g * (one - z) * (one - n * n);
          store<T>(dg + cz + u, g * (hp - n) * z * (one - z));
          store<T>(dg + cn + u, dn);
          if (w.reset_after) {
            store<T>(dg + cr + u, dn * load<T>(h_rec + u) * r * (one - r));
            store<T>(dg + cnr + u, dn * r);
          }
          store<T>(d + u, g * z);
        }
      }
      for (int i = 0; i < m && tail != 0; ++i) {  // reset_after: [dnr dz dr] = columns [0, 3Hp)
        const T* g = dg0 + i * gs;
        for (size_t j = 0; j < tail; ++j) {
          const T* u = w.rec_tail.data() + j * 3 * Hp;
          V acc0{}, acc1{};
          size_t c = 0;
          for (; c + 2 * L <= 3 * Hp; c += 2 * L) {
            acc0 += load<T>(g + c) * load<T>(u + c);
            acc1 += load<T>(g + c + L) * load<T>(u + c + L);
          }
          if (c < 3 * Hp) acc0 += load<T>(g + c) * load<T>(u + c);
          acc0 += acc1;
          T sum = T(0);
          for (int l = 0; l < L; ++l) sum += acc0[l];
          dh_rows[i * Hp + tail_col + j] += sum;
        }
      }
      if (w.reset_after) {
        gemm_block<T, true>(m, H, dg0 + cnr, gs, UhT, dh_rows, Hp);
      } else {  // n saw (r*h)*Uh: its gradient q = dn*Uh^T feeds dr and dh
        gemm_block<T, false>(m, H, dg0 + cn, gs, UhT, q, Hp);
        for (int i = 0; i < m; ++i) {
          const size_t tb = tb0 + size_t(i);
          const T* gates = a.tape.gates + tb * 3 * Hp;
          const T* h_prev = a.tape.h_prev + tb * Hp;
          T* dg = dg0 + i * gs;
          T* d = dh_rows + i * Hp;
          for (size_t u = 0; u < Hp; u += L) {
            const V qv = load<T>(q + i * Hp + u), r = load<T>(gates + Hp + u);
            store<T>(dg + cr + u, qv * load<T>(h_prev + u) * r * (one - r));
            store<T>(d + u, load<T>(d + u) + qv * r);
          }
        }
      }
      gemm_block<T, true>(m, H, dg0 + cz, gs, UzT, dh_rows, Hp);
      gemm_block<T, true>(m, H, dg0 + cr, gs, UrT, dh_rows, Hp);
    }
  }
  if (a.dx == nullptr) return;

  // dx = dG * W^T for these rows and steps.
  const BView<T> WT = w.view(w.kernel_t, 3 * Hp, I);
  for (size_t t = t0; t < t1; ++t) {
    for (size_t i0 = 0; i0 < nr; i0 += MR) {
      const int m = int(nr - i0 < size_t(MR) ? nr - i0 : MR);
      const T* dgw = cb.d_gates + buf.row(r0 + i0, t - t0) * gs + buf.w_col;
      T* dx = a.dx + ((r0 + i0) * steps + t) * I;
      if (I <= kDxByDotsMaxInputs) {
        dx_by_dots(w, dgw, gs, size_t(m), dx, steps * I);
        continue;
      }
      gemm_block<T, false>(m, 3 * Hp, dgw, gs, WT, q, Ip);
      for (int i = 0; i < m; ++i) copy_row(dx + i * steps * I, q + i * Ip, I);
    }
  }
}

// One weight-gradient product over a column range of d_gates:
// C(i, c - col_begin) += sum over chunk rows k of A(i, k) * dG(k, c), A(i, k) = a[k * lda + i].
template <typename T>
struct WeightGradient {
  size_t M;
  const T* a;
  size_t lda;
  size_t col_begin, col_end;  // columns of d_gates, multiples of the vector width
  T* c;
  size_t ldc;
};

// Vector columns [v0, v1) of d_gates that this thread owns in the weight gradients, balanced
// by the output rows each column feeds (+1 for its bias sum).
template <typename T>
RowRange gradient_columns(const WeightGradient<T>* g, int count, size_t nvec, int thread, int team) {
  constexpr size_t L = Simd<T>::lanes;
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
  return {v0, v1 > v0 ? v1 : v0};
}

// The tail units' dU product of one group's chunk rows (units 0: none).
template <typename T>
struct TailGradient {
  size_t units, Hp;
  const T* h_prev;  // the group's h_prev rows of the chunk, in the tape (K x Hp)
  T* out;           // GroupGradients::d_tail
};

// This thread's columns [v0, v1) of the weight gradients and bias sums, accumulated over the
// K rows of the chunk (first: overwrite instead).
template <typename T>
void weight_gradients(const WeightGradient<T>* g, int count, size_t gs, const T* dg, T* sums,
                      size_t K, RowRange cols, bool first, const TailGradient<T>& tail) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int MR = kRows<T>;
  constexpr size_t NVL = size_t(kPanelVectors) * L;
  const size_t v0 = cols.begin, v1 = cols.end;
  if (v0 >= v1) return;
  for (int j = 0; j < count; ++j) {
    const size_t c0 = v0 * L > g[j].col_begin ? v0 * L : g[j].col_begin;
    const size_t c1 = v1 * L < g[j].col_end ? v1 * L : g[j].col_end;
    if (c0 >= c1) continue;
    const BView<T> b{dg + c0, NVL, gs, (c1 - c0) / L};
    T* c = g[j].c + (c0 - g[j].col_begin);
    for (size_t i0 = 0; i0 < g[j].M; i0 += MR) {
      const int m = int(g[j].M - i0 < size_t(MR) ? g[j].M - i0 : MR);
      gemm_block_transposed<T>(!first, m, K, g[j].a + i0, g[j].lda, b, c + i0 * g[j].ldc, g[j].ldc);
    }
  }
  // The tail units' columns of dU (reset_after with PackedWeights::rec_tail): the products
  // above stop before the last vector of each gate block; that vector's t real columns are
  // rows of a transposed product over the same chunk rows, summed in the same row order, by
  // the thread that owns the vector.
  if (tail.units != 0) {
    const size_t per_gate = tail.Hp / L;
    for (size_t b = 0; b < 3; ++b) {
      const size_t v = b * per_gate + per_gate - 1;  // d_gates vector with the tail of block b
      if (v < v0 || v >= v1) continue;
      const BView<T> hp{tail.h_prev, NVL, tail.Hp, per_gate};
      gemm_block_transposed<T>(!first, int(tail.units), K, dg + v * L, gs, hp,
                               tail.out + b * tail.units * tail.Hp, tail.Hp);
    }
  }
  if (first) {
    for (size_t v = v0; v < v1; ++v) store<T>(sums + v * L, V{});
  }
  for (size_t k = 0; k < K; ++k) {
    for (size_t v = v0; v < v1; ++v) {
      store<T>(sums + v * L, load<T>(sums + v * L) + load<T>(dg + k * gs + v * L));
    }
  }
}

// The products of one group over rows [row0, row0 + K) of the chunk buffers and the same
// rows of the tape from `tape_row` (at most kMaxProducts: dW and dU's three gate blocks).
constexpr int kMaxProducts = 4;
template <typename T>
int group_products(const PackedWeights<T>& w, const BackwardBuffers<T>& buf,
                   const ChunkBuffers<T>& cb, const Tape<T>& tape, const GroupGradients<T>& out,
                   size_t row0, size_t tape_row, WeightGradient<T>* g) {
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units, wc = buf.w_col;
  constexpr size_t L = Simd<T>::lanes;
  const T* h_prev = tape.h_prev + tape_row * Hp;
  int count = 0;
  g[count++] = {I, cb.x + row0 * I, I, wc, wc + 3 * Hp, out.d_kernel, 3 * Hp};
  if (w.reset_after && w.tail_dot_units != 0) {  // each block but its last vector (the tail's)
    for (size_t b = 0; b < 3; ++b) {
      g[count++] = {H, h_prev, Hp, b * Hp, (b + 1) * Hp - L, out.d_rec + b * Hp, 3 * Hp};
    }
  } else if (w.reset_after) {
    g[count++] = {H, h_prev, Hp, 0, 3 * Hp, out.d_rec, 3 * Hp};
  } else {
    g[count++] = {H, h_prev, Hp, 0, 2 * Hp, out.d_rec, 3 * Hp};
    g[count++] = {H, tape.h_rec + tape_row * Hp, Hp, 2 * Hp, 3 * Hp, out.d_rec + 2 * Hp, 3 * Hp};
  }
  return count;
}

template <typename T>
bool gru_backward(const BackwardArgs<T>& a) {
  const PackedWeights<T>& w = *a.w;
  const size_t I = w.input_size, H = w.units, Hp = w.padded_units, L = Simd<T>::lanes;
  const size_t B = a.batch, steps = a.steps;
  const BackwardBuffers<T> buf(w, B, steps, kRows<T>, a.workspace);
  const size_t w_col = buf.w_col, chunk = buf.chunk, gs = buf.gate_stride;
  const TapeRows& tape_rows = buf.tape_rows;
  const size_t G = tape_rows.groups;

  const double flops = 6.0 * B * steps * 3.0 * H * double(I + H);
  // Not plan_threads: threads beyond the row blocks still share the weight-gradient columns.
  [[maybe_unused]] int threads = a.threads < 1 ? 1 : a.threads;  // unread without OpenMP
  if (flops < kMinParallelFlops) threads = 1;
  static TeamChooser chooser;
  const TeamTimer timer(chooser, threads, flops);
  threads = timer.call.team;
  bool ok = true;
#pragma omp parallel num_threads(threads) if (threads > 1) reduction(&& : ok)
  {
    DenormalGuard guard;
    const int thread = thread_index(), team = team_size();
    const RowRange mine = rows_of_thread(B, kRows<T>, thread, team);
    // Weight-gradient work of this thread: with fewer threads than groups, whole groups
    // (g = thread, thread + team, ...); else group thread % G and a share of its columns.
    size_t g_first = size_t(thread), g_step = size_t(team);
    int slice = 0, slices = 1;
    if (size_t(team) >= G) {
      g_first = size_t(thread) % G;
      g_step = G;  // one group only
      slice = int(size_t(thread) / G);
      slices = int((size_t(team) - g_first + G - 1) / G);
    }
    WeightGradient<T> probe[kMaxProducts];
    const int count = group_products(w, buf, buf.chunks[0], a.tape, buf.grads[0], 0, 0, probe);
    const RowRange cols = gradient_columns(probe, count, gs / L, slice, slices);

    const size_t nr = mine.end - mine.begin, Ip = round_up(I, L);
    const size_t n_dh = nr * Hp, n_q = size_t(kRows<T>) * (Hp > Ip ? Hp : Ip);
    SerialState<T> st{static_cast<T*>(thread_scratch(sizeof(T) * (n_dh + n_q))), nullptr};
    if (st.dh == nullptr) {
      ok = false;
    } else {
      st.q = st.dh + n_dh;
      for (size_t i = 0; i < nr; ++i) {
        for (size_t u = 0; u < Hp; ++u) {
          st.dh[i * Hp + u] =
              (a.d_h_last != nullptr && u < H) ? a.d_h_last[(mine.begin + i) * H + u] : T(0);
        }
      }
    }
    // With one thread, or one thread a group (whose rows are then exactly its own rows), no
    // thread reads rows another wrote, and the chunks need no barrier at all (which matters
    // on a busy machine, where a barrier waits for a descheduled thread). Otherwise every
    // thread meets every barrier, also one whose scratch failed (it then only waits); chunk
    // i+2 reuses the buffers of chunk i only after the barrier of chunk i+1, which each
    // thread reaches after its weight gradients of chunk i.
    const bool own_rows_only = team == 1 || size_t(team) == G;
    int p = 0;
    for (size_t t1 = steps; t1 > 0; p ^= 1) {
      const size_t t0 = t1 > chunk ? t1 - chunk : 0, len = t1 - t0;
      const ChunkBuffers<T>& cb = buf.chunks[p];
      if (ok && nr > 0) backward_rows(a, buf, cb, st, mine.begin, mine.end, t0, t1);
      if (!own_rows_only) {
#pragma omp barrier
      }
      for (size_t g = g_first; g < G; g += g_step) {
        const size_t row0 = chunk * tape_rows.lo[g], K = len * tape_rows.rows_of(g);
        // The group's tape rows of steps [t0, t1): one run, in the chunk rows' order.
        const size_t tape_row = tape_rows.row(tape_rows.lo[g], t0);
        WeightGradient<T> prods[kMaxProducts];
        group_products(w, buf, cb, a.tape, buf.grads[g], row0, tape_row, prods);
        const TailGradient<T> tail{w.tail_dot_units, Hp, a.tape.h_prev + tape_row * Hp,
                                   buf.grads[g].d_tail};
        weight_gradients(prods, count, gs, cb.d_gates + row0 * gs, buf.grads[g].d_sums, K, cols,
                         t1 == steps, tail);
      }
      t1 = t0;
    }
    if (ok) {
      for (size_t i = 0; i < nr; ++i) copy_row(a.dh0 + (mine.begin + i) * H, st.dh + i * Hp, H);
    }
  }
  if (!ok) return false;

  // Sum the groups in order and unpad into the Keras layout (gates z, r, h).
  for (size_t g = 0; g < 3; ++g) {
    const size_t rec_col = (w.reset_after ? (g + 1) % 3 : g) * Hp;  // gate g's column of dU
    for (size_t u = 0; u < H; ++u) {
      const size_t c = g * H + u, cp = g * Hp + u;
      for (size_t i = 0; i < I; ++i) {
        T s = buf.grads[0].d_kernel[i * 3 * Hp + cp];
        for (size_t j = 1; j < G; ++j) s += buf.grads[j].d_kernel[i * 3 * Hp + cp];
        a.dkernel[i * 3 * H + c] = s;
      }
      const size_t tail = w.tail_dot_units;
      if (tail != 0 && u >= H - tail) {  // from d_tail, transposed: row (block, unit), column k
        const size_t row = (rec_col / Hp * tail + u - (H - tail)) * Hp;
        for (size_t k = 0; k < H; ++k) {
          T s = buf.grads[0].d_tail[row + k];
          for (size_t j = 1; j < G; ++j) s += buf.grads[j].d_tail[row + k];
          a.drecurrent[k * 3 * H + c] = s;
        }
      } else {
        for (size_t k = 0; k < H; ++k) {
          T s = buf.grads[0].d_rec[k * 3 * Hp + rec_col + u];
          for (size_t j = 1; j < G; ++j) s += buf.grads[j].d_rec[k * 3 * Hp + rec_col + u];
          a.drecurrent[k * 3 * H + c] = s;
        }
      }
      T db_in = buf.grads[0].d_sums[w_col + cp], db_hh = buf.grads[0].d_sums[u];
      for (size_t j = 1; j < G; ++j) {
        db_in += buf.grads[j].d_sums[w_col + cp];
        db_hh += buf.grads[j].d_sums[u];
      }
      a.dbias[c] = db_in;
      if (w.reset_after) a.dbias[3 * H + c] = g < 2 ? db_in : db_hh;  // b_hh: sum of dn*r
    }
  }
  return true;
}

}  // namespace FASTGRU_ISA
}  // namespace fastgru
