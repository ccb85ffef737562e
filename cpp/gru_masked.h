// The GRU with Keras 3's per-gate dropout masks (GRU(recurrent_dropout>0), Keras'
// implementation=1): training forward and backward, in plain loops (double sums, one thread,
// the same code on every SIMD path; about 15x the time of the unmasked kernels at B64 T50 H64).
// Its own unit so the optimised unmasked kernels (gru_forward.h / gru_backward.h) stay
// untouched. Weights in Keras layout (unpacked); masks are drawn per sequence in Python:
//   input_masks (3, B, I) for z, r, h;  recurrent_masks (3, B, H) for z, r, h.
//   z = sigmoid((x*mx_z) Wz + bz + (h*mh_z) Uz [+ bz_rec])
//   r = sigmoid((x*mx_r) Wr + br + (h*mh_r) Ur [+ br_rec])
//   n = tanh((x*mx_h) Wh + bh + r * ((h*mh_h) Uh + bh_rec))     reset_after
//   n = tanh((x*mx_h) Wh + bh + (r * (h*mh_h)) Uh)              reset_after=False
//   h' = z * h + (1 - z) * n              (the unmasked h, as Keras blends)
#pragma once

#include <cstddef>

namespace fastgru {

struct MaskedDims {
  size_t batch, steps, input_size, units;
  bool reset_after;
};

// Tape for the backward: gates (B, T, 3H) holds z, r, n after activation; h_rec (B, T, H)
// holds (h*mh_h) Uh + bh_rec (reset_after) or r * (h*mh_h) (reset_after=False).
template <typename T>
void gru_masked_forward_train(const MaskedDims& d, const T* x, const T* h0, const T* kernel,
                              const T* recurrent, const T* bias, const T* input_masks,
                              const T* recurrent_masks, T* out, T* h_last, T* gates, T* h_rec);

// d_out (B, T, H) and d_h_last (B, H) may be null (zeros); dx may be null (not computed).
template <typename T>
void gru_masked_backward(const MaskedDims& d, const T* x, const T* h0, const T* out,
                         const T* gates, const T* h_rec, const T* kernel, const T* recurrent,
                         const T* input_masks, const T* recurrent_masks, const T* d_out,
                         const T* d_h_last, T* dx, T* dh0, T* dkernel, T* drecurrent, T* dbias);

}  // namespace fastgru
