// GRU forward: per step, the input projection and the recurrent product of one block of rows
// as small GEMMs on packed weights, then bias, sigmoid, tanh and the blend fused right after
// them while the block is still in L1. Batch rows are split across threads for all T steps,
// so there is no barrier per step.
#pragma once

#include <type_traits>
#include <utility>

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
  const BView<T> U = w.view(w.rec, H, 3 * H);  // z, r, n at columns 0, H, 2H of h*U
  const BView<T> Uzr = w.view(w.rec_zr, H, 2 * Hp);
  const BView<T> Uh = w.view(w.rec_h, H, Hp);
  const T* bx = w.bias_x.data();
  const T* bhh = w.bias_hh.data();
  const bool training = a.tape.gates != nullptr;
  const TapeRows tape_rows(a.batch, steps, MR);
  // With reset_after, h*U's gates sit back to back (PackedWeights::rec), so the gates' loads
  // of a padded unit read a neighbour's column or, past the last, these columns, which no
  // product writes: zeros, so that such lanes stay finite. They are then dropped: the padded
  // units of h are kept exactly zero (`real`), as the products and the tape expect.
  typedef decltype(ivec_t<T>{}[0]) Lane;
  ivec_t<T> real{};
  for (int l = 0; l < L; ++l) real[l] = (Hp - L + size_t(l) < H) ? Lane(-1) : Lane(0);
  if (w.reset_after) {
    for (int i = 0; i < MR; ++i) {
      for (size_t col = 3 * Hp + U.nvec * L; col < ldc; ++col) C[i * ldc + col] = T(0);
    }
  }

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

      // the block's tape rows are consecutive: a block never spans two of TapeRows' groups
      const size_t tb0 = training ? tape_rows.row(b0, t) : 0;
      for (int i = 0; i < m; ++i) {
        const size_t b = b0 + i, bt = b * steps + t, tb = tb0 + size_t(i);
        const T* c = C + i * ldc;
        T* h = h_rows + i * Hp;
        T* tape_gates = training ? a.tape.gates + tb * 3 * Hp : nullptr;
        if (training) copy_row(a.tape.h_prev + tb * Hp, h, Hp);
        for (size_t u = 0; u < Hp; u += L) {
          V z, r, n, rec;
          if (w.reset_after) {
            const T* hu = c + 3 * Hp;
            z = gate_zr<T>(load<T>(c + u), load<T>(hu + u), load<T>(bx + u));
            r = gate_zr<T>(load<T>(c + Hp + u), load<T>(hu + H + u), load<T>(bx + Hp + u));
            n = gate_n<T>(load<T>(c + 2 * Hp + u), load<T>(bx + 2 * Hp + u),
                          load<T>(hu + 2 * H + u), load<T>(bhh + u), r, &rec);
          } else {
            z = load<T>(c + u);
            r = load<T>(c + Hp + u);
            rec = load<T>(reset_state + i * Hp + u);
            n = tanh(load<T>(c + 2 * Hp + u) + load<T>(bx + 2 * Hp + u));
          }
          const V hp = load<T>(h + u);
          V h_new = n + z * (hp - n);  // z*h + (1-z)*n
          if (u + L > H) h_new = (V)((ivec_t<T>)h_new & real);
          store<T>(h + u, h_new);
          if (training) {
            store<T>(tape_gates + u, z);
            store<T>(tape_gates + Hp + u, r);
            store<T>(tape_gates + 2 * Hp + u, n);
            store<T>(a.tape.h_rec + tb * Hp + u, rec);
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

// Inference on one batch row, U grouped by units (PackedWeights::rec_grouped): the latency
// path of a single window or a stream step. Each step streams all of U with h*U in
// registers, where each gate of L units sits in its own register: the gates read the product
// from there, with a lane shift for a packed tail, never through memory. The groups of L
// units ([z r n], a vector each) go through in chunks of at most kLatencyGroups, so that a
// chunk's accumulators fit the ISA's registers (16 on AVX2 and SSE2), the last chunk with the
// tail of NA % 3 registers, [z r n] or [z r][n], for the last H - FG*L units. A chunk's gates
// (a latency chain) overlap the next chunk's product (a throughput stream); h is
// double-buffered so that the chunks after the first still read the old state. The input
// projection x*W is in the same layout, computed one step ahead, chunk by chunk. Every column
// sums in the batched kernel's order, so the two agree bit for bit. reset_after=False takes
// two passes a step: z, r and r*h for all units, then (r*h)*U[n] and the blend.
constexpr int kLatencyGroups = FASTGRU_LATENCY_GROUPS;

template <typename T>
struct LatencyRow {
  const T* Ug;   // H rows of NC
  const T* Wg;   // I rows of NC
  const T* bg;   // NC: bias_x in the grouped layout
  const T* bhh;  // Hp
  size_t I, H, NC;
  ivec_t<T> r_shift, n_shift;  // a packed tail's r starts at lane t, its n at lane 2t
};

// x*W (+ b with ADD_BIAS) of NV vectors of columns from c0, for the input row x, into xw.
template <typename T, int NV, bool ADD_BIAS>
inline void latency_project(const LatencyRow<T>& w, size_t c0, const T* x, T* xw) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  V p[NV];
#pragma GCC unroll 16
  for (int j = 0; j < NV; ++j) p[j] = V{};
  for (size_t k = 0; k < w.I; ++k) {
    const V xk = splat<T>(x[k]);
    const T* row = w.Wg + k * w.NC + c0;
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) p[j] += xk * load<T>(row + j * L);
  }
#pragma GCC unroll 16
  for (int j = 0; j < NV; ++j) {
    store<T>(xw + c0 + j * L, ADD_BIAS ? p[j] + load<T>(w.bg + c0 + j * L) : p[j]);
  }
}

// acc[j] = init[j] + sum over k of a[k] * U[k][column j]: vector j of the product is column
// vector col(j) of the chunk from c0 (init: zero or x*W, read at the same columns).
template <typename T, int NV, typename Col>
inline void latency_product(const LatencyRow<T>& w, size_t c0, const T* a, const T* init,
                            Col col, vec_t<T>* acc) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
#pragma GCC unroll 16
  for (int j = 0; j < NV; ++j) acc[j] = init != nullptr ? load<T>(init + c0 + col(j) * L) : V{};
#pragma GCC unroll 2
  for (size_t k = 0; k < w.H; ++k) {
    const V ak = splat<T>(a[k]);
    const T* row = w.Ug + k * w.NC + c0;
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) acc[j] += ak * load<T>(row + col(j) * L);
  }
}

// reset_after: columns [g0 * 3L, g0 * 3L + (3G + TV) L) of one step: x*W + b of the next step
// (x_next, or null) into xw_next, then h_old*U, then the gates from xw_cur, blending into h_new.
template <typename T, int G, int TV>
inline void latency_chunk(const LatencyRow<T>& w, size_t g0, const T* x_next, T* xw_next,
                          const T* xw_cur, const T* h_old, T* h_new) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int NV = 3 * G + TV;
  const size_t c0 = g0 * 3 * L;
  if (x_next != nullptr) latency_project<T, NV, true>(w, c0, x_next, xw_next);
  V acc[NV];
  latency_product<T, NV>(w, c0, h_old, nullptr, [](int j) { return j; }, acc);
  // The gates in two passes: first all the independent sigmoids, then the tanh that needs
  // r, so the core has whole passes of independent work to overlap. (x*W + b came with the
  // bias, so the gates add a zero one: the batched kernel's values, x*W then + b.)
  const T* x = xw_cur + c0;
  V z[G + 1], r[G + 1];
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g) {
    z[g] = gate_zr<T>(load<T>(x + 3 * g * L), acc[3 * g], V{});
    r[g] = gate_zr<T>(load<T>(x + (3 * g + 1) * L), acc[3 * g + 1], V{});
  }
  if constexpr (TV != 0) {  // z in lanes [0, t), r in [t, 2t): one sigmoid for both
    z[G] = gate_zr<T>(load<T>(x + 3 * G * L), acc[3 * G], V{});
    r[G] = shift_down<T>(z[G], w.r_shift);
  }
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g) {
    const size_t u = (g0 + g) * L;
    V rec;
    const V n = gate_n<T>(load<T>(x + (3 * g + 2) * L), V{}, acc[3 * g + 2], load<T>(w.bhh + u),
                          r[g], &rec);
    store<T>(h_new + u, n + z[g] * (load<T>(h_old + u) - n));
  }
  if constexpr (TV != 0) {
    const size_t u = (g0 + G) * L;
    V xn, hn;
    if constexpr (TV == 1) {
      xn = shift_down<T>(load<T>(x + 3 * G * L), w.n_shift);
      hn = shift_down<T>(acc[3 * G], w.n_shift);
    } else {
      xn = load<T>(x + (3 * G + 1) * L);
      hn = acc[3 * G + 1];
    }
    V rec;
    const V n = gate_n<T>(xn, V{}, hn, load<T>(w.bhh + u), r[G], &rec);
    store<T>(h_new + u, n + z[G] * (load<T>(h_old + u) - n));
  }
}

// reset_after=False, first pass over a chunk: x*W of the next step (no bias: the batched
// kernel adds it after h*U), then x*W + h_old*U[z,r], z into z_out and r*h into rh_out.
template <typename T, int G, int TV>
inline void latency_chunk_zr(const LatencyRow<T>& w, size_t g0, const T* x_next, T* xw_next,
                             const T* xw_cur, const T* h_old, T* z_out, T* rh_out) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int NV = 2 * G + (TV != 0);  // z and r of each group, then the tail's [z r ...]
  const size_t c0 = g0 * 3 * L;
  if (x_next != nullptr) latency_project<T, 3 * G + TV, false>(w, c0, x_next, xw_next);
  V acc[NV];
  latency_product<T, NV>(w, c0, h_old, xw_cur, [](int j) { return j < 2 * G ? 3 * (j / 2) + j % 2 : 3 * G; },
                         acc);
  const T* b = w.bg + c0;
#pragma GCC unroll 16
  for (int g = 0; g < G; ++g) {
    const size_t u = (g0 + g) * L;
    store<T>(z_out + u, sigmoid<T>(acc[2 * g] + load<T>(b + 3 * g * L)));
    const V r = sigmoid<T>(acc[2 * g + 1] + load<T>(b + (3 * g + 1) * L));
    store<T>(rh_out + u, r * load<T>(h_old + u));
  }
  if constexpr (TV != 0) {  // z in lanes [0, t), r in [t, 2t)
    const size_t u = (g0 + G) * L;
    const V zr = sigmoid<T>(acc[2 * G] + load<T>(b + 3 * G * L));
    store<T>(z_out + u, zr);
    store<T>(rh_out + u, shift_down<T>(zr, w.r_shift) * load<T>(h_old + u));
  }
}

// reset_after=False, second pass: n from x*W + (r*h)*U[n], then the blend into h_new.
template <typename T, int G, int TV>
inline void latency_chunk_n(const LatencyRow<T>& w, size_t g0, const T* xw_cur, const T* h_old,
                            const T* z, const T* rh, T* h_new) {
  typedef vec_t<T> V;
  constexpr int L = Simd<T>::lanes;
  constexpr int NV = G + (TV != 0);
  const size_t c0 = g0 * 3 * L;
  V acc[NV];
  latency_product<T, NV>(w, c0, rh, xw_cur, [](int j) { return j < G ? 3 * j + 2 : 3 * G + TV - 1; },
                         acc);
  const T* b = w.bg + c0;
#pragma GCC unroll 16
  for (int g = 0; g < NV; ++g) {
    const size_t u = (g0 + g) * L;
    V n;
    if (TV == 1 && g == G) {  // the tail's n in lanes [2t, 3t)
      n = tanh(shift_down<T>(acc[g] + load<T>(b + 3 * G * L), w.n_shift));
    } else {
      n = tanh(acc[g] + load<T>(b + (g < G ? 3 * g + 2 : 3 * G + 1) * L));
    }
    store<T>(h_new + u, n + load<T>(z + u) * (load<T>(h_old + u) - n));
  }
}

// Calls chunk(G, TV) as integral constants for G in [0, kLatencyGroups], TV in [0, 2].
template <int G = 0, typename Chunk>
inline void with_chunk_shape(int groups, int tail, Chunk&& chunk) {
  if constexpr (G <= kLatencyGroups) {
    if (groups != G) return with_chunk_shape<G + 1>(groups, tail, chunk);
    if (tail == 1) return chunk(std::integral_constant<int, G>{}, std::integral_constant<int, 1>{});
    if (tail == 2) return chunk(std::integral_constant<int, G>{}, std::integral_constant<int, 2>{});
    if constexpr (G > 0) chunk(std::integral_constant<int, G>{}, std::integral_constant<int, 0>{});
  }
}

template <typename T>
bool forward_latency_path(const ForwardArgs<T>& a) {
  constexpr int L = Simd<T>::lanes;
  const PackedWeights<T>& pw = *a.w;
  const size_t I = pw.input_size, H = pw.units, Hp = pw.padded_units, steps = a.steps;
  const size_t NA = pw.grouped_vectors(), NC = NA * L;
  const bool ra = pw.reset_after;
  // h and the next h, x*W (+ b) of two steps, and (reset_after=False) z and r*h
  T* h = static_cast<T*>(thread_scratch(sizeof(T) * (4 * Hp + 2 * NC)));
  if (h == nullptr) return false;
  T* h_next = h + Hp;
  T* z = h_next + Hp;
  T* rh = z + Hp;
  T* xw = rh + Hp;
  for (size_t u = 0; u < Hp; ++u) h[u] = (a.h0 != nullptr && u < H) ? a.h0[u] : T(0);

  const size_t FG = NA / 3, tail_vectors = NA % 3;
  const size_t t = tail_vectors != 0 ? H - FG * L : 0;
  const LatencyRow<T> w{pw.rec_grouped.data(), pw.kernel_grouped.data(), pw.bias_grouped.data(),
                        pw.bias_hh.data(), I, H, NC, shift_index<T>(t), shift_index<T>(2 * t)};
  // Chunks of at most kLatencyGroups groups, balanced (the tail's chunk gets the fewest full
  // groups): a chunk of 8 or more accumulators keeps both FMA pipes busy through the 4-cycle
  // latency of its chains, where a small last chunk would wait on them.
  const size_t n_chunks = FG == 0 ? 1 : (FG + kLatencyGroups - 1) / kLatencyGroups;
  auto for_each_chunk = [&](auto&& chunk) {
    size_t g0 = 0;
    for (size_t c = 0; c < n_chunks; ++c) {
      const size_t groups = FG / n_chunks + (c < FG % n_chunks ? 1 : 0);
      const int tail = c + 1 == n_chunks ? int(tail_vectors) : 0;
      with_chunk_shape(int(groups), tail, [&](auto G, auto TV) { chunk(G, TV, g0); });
      g0 += groups;
    }
  };
  auto run_step = [&](const T* x_next, T* xw_next, const T* xw_cur) {
    if (ra) {
      for_each_chunk([&](auto G, auto TV, size_t g0) {
        latency_chunk<T, G(), TV()>(w, g0, x_next, xw_next, xw_cur, h, h_next);
      });
      return;
    }
    for_each_chunk([&](auto G, auto TV, size_t g0) {
      latency_chunk_zr<T, G(), TV()>(w, g0, x_next, xw_next, xw_cur, h, z, rh);
    });
    for_each_chunk([&](auto G, auto TV, size_t g0) {
      latency_chunk_n<T, G(), TV()>(w, g0, xw_cur, h, z, rh, h_next);
    });
  };
  if (steps > 0) {
    for (size_t c0 = 0; c0 < NC; c0 += L) {
      if (ra) {
        latency_project<T, 1, true>(w, c0, a.x, xw);
      } else {
        latency_project<T, 1, false>(w, c0, a.x, xw);
      }
    }
  }
  for (size_t step = 0; step < steps; ++step) {
    const bool more = step + 1 < steps;
    run_step(more ? a.x + (step + 1) * I : nullptr, xw + ((step + 1) % 2) * NC,
             xw + (step % 2) * NC);
    std::swap(h, h_next);
    if (a.out != nullptr) copy_row(a.out + step * H, h, H);
  }
  if (a.h_last != nullptr) copy_row(a.h_last, h, H);
  return true;
}

template <typename T>
bool gru_forward(const ForwardArgs<T>& a) {
  const PackedWeights<T>& w = *a.w;
  if (a.batch == 1 && w.grouped_width != 0 && a.tape.gates == nullptr) {
    DenormalGuard guard;
    return forward_latency_path(a);
  }
  const double flops = 2.0 * a.batch * a.steps * 3.0 * w.units * double(w.input_size + w.units);
  static TeamChooser chooser;
  const TeamTimer timer(chooser, plan_threads(a.threads, a.batch, kRows<T>, flops), flops);
  const int threads = timer.call.team;
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
