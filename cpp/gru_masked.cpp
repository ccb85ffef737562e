// Plain-loop GRU with per-gate dropout masks (see gru_masked.h). Sums are kept in double so
// float32 results stay close to the float64 oracle; weights gradients accumulate in double.
#include "gru_masked.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace fastgru {
namespace {

inline double sigmoid(double v) {  // no overflow for large |v|
  const double e = std::exp(-std::fabs(v));
  return v >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

}  // namespace

template <typename T>
void gru_masked_forward_train(const MaskedDims& d, const T* x, const T* h0, const T* kernel,
                              const T* recurrent, const T* bias, const T* input_masks,
                              const T* recurrent_masks, T* out, T* h_last, T* gates, T* h_rec) {
  const size_t B = d.batch, S = d.steps, I = d.input_size, H = d.units, G = 3 * H;
  const std::vector<double> W(kernel, kernel + I * G), U(recurrent, recurrent + H * G);
  std::vector<double> b_in(bias, bias + G), b_rec(G, 0.0);
  if (d.reset_after) b_rec.assign(bias + G, bias + 2 * G);
  std::vector<double> pre(G), rec(G), h(H), hm(3 * H), z(H), r(H);
  auto axpy = [](size_t n, double a, const double* row, double* y) {
    for (size_t k = 0; k < n; ++k) y[k] += a * row[k];
  };
  for (size_t b = 0; b < B; ++b) {
    const T* mx = input_masks + b * I;  // gate g at mx + g * B * I
    const T* mh = recurrent_masks + b * H;  // gate g at mh + g * B * H
    for (size_t k = 0; k < H; ++k) h[k] = double(h0[b * H + k]);
    for (size_t t = 0; t < S; ++t) {
      const size_t bt = b * S + t;
      const T* xt = x + bt * I;
      pre = b_in;
      for (size_t i = 0; i < I; ++i)
        for (size_t g = 0; g < 3; ++g)
          axpy(H, double(xt[i]) * double(mx[g * B * I + i]), W.data() + i * G + g * H,
               pre.data() + g * H);
      // Recurrent products, each gate with its own masked state.
      for (size_t g = 0; g < 3; ++g)
        for (size_t k = 0; k < H; ++k) hm[g * H + k] = h[k] * double(mh[g * B * H + k]);
      rec = b_rec;
      for (size_t k = 0; k < H; ++k) {
        axpy(H, hm[k], U.data() + k * G, rec.data());
        axpy(H, hm[H + k], U.data() + k * G + H, rec.data() + H);
      }
      for (size_t j = 0; j < H; ++j) {
        z[j] = sigmoid(pre[j] + rec[j]);
        r[j] = sigmoid(pre[H + j] + rec[H + j]);
      }
      T* gt = gates + bt * G;
      T* hrt = h_rec + bt * H;
      double* hh = pre.data() + 2 * H;  // becomes the candidate's pre-activation
      if (d.reset_after) {
        for (size_t k = 0; k < H; ++k) axpy(H, hm[2 * H + k], U.data() + k * G + 2 * H, rec.data() + 2 * H);
        for (size_t j = 0; j < H; ++j) {
          hh[j] += r[j] * rec[2 * H + j];
          hrt[j] = T(rec[2 * H + j]);
        }
      } else {
        for (size_t k = 0; k < H; ++k) {
          const double rs = r[k] * hm[2 * H + k];  // the reset state that meets Uh
          axpy(H, rs, U.data() + k * G + 2 * H, hh);
          hrt[k] = T(rs);
        }
      }
      T* ot = out + bt * H;
      for (size_t j = 0; j < H; ++j) {
        const double n = std::tanh(hh[j]);
        gt[j] = T(z[j]);
        gt[H + j] = T(r[j]);
        gt[2 * H + j] = T(n);
        h[j] = z[j] * h[j] + (1.0 - z[j]) * n;
        ot[j] = T(h[j]);
      }
    }
    for (size_t k = 0; k < H; ++k) h_last[b * H + k] = T(h[k]);
  }
}

// Products with the transposed weights are written as row updates (y += a * row), which the
// compiler vectorises; the weights are transposed into double once per call.
template <typename T>
void gru_masked_backward(const MaskedDims& d, const T* x, const T* h0, const T* out,
                         const T* gates, const T* h_rec, const T* kernel, const T* recurrent,
                         const T* input_masks, const T* recurrent_masks, const T* d_out,
                         const T* d_h_last, T* dx, T* dh0, T* dkernel, T* drecurrent, T* dbias) {
  const size_t B = d.batch, S = d.steps, I = d.input_size, H = d.units, G = 3 * H;
  std::vector<double> WT(G * I), UT(G * H);
  for (size_t i = 0; i < I; ++i)
    for (size_t j = 0; j < G; ++j) WT[j * I + i] = double(kernel[i * G + j]);
  for (size_t k = 0; k < H; ++k)
    for (size_t j = 0; j < G; ++j) UT[j * H + k] = double(recurrent[k * G + j]);
  std::vector<double> dW(I * G, 0.0), dU(H * G, 0.0), db_in(G, 0.0), db_rec(G, 0.0);
  std::vector<double> dh(H), dhp(H), dg(G), hm(3 * H), drs(H), th(3 * H), tx(3 * I);
  // y[0..n) += a * row[0..n)
  auto axpy = [](size_t n, double a, const double* row, double* y) {
    for (size_t k = 0; k < n; ++k) y[k] += a * row[k];
  };
  for (size_t b = 0; b < B; ++b) {
    const T* mx = input_masks + b * I;  // gate g at mx + g * B * I
    const T* mh = recurrent_masks + b * H;  // gate g at mh + g * B * H
    for (size_t k = 0; k < H; ++k) dh[k] = d_h_last ? double(d_h_last[b * H + k]) : 0.0;
    for (size_t t = S; t-- > 0;) {
      const size_t bt = b * S + t;
      if (d_out)
        for (size_t k = 0; k < H; ++k) dh[k] += double(d_out[bt * H + k]);
      const T* hp = t == 0 ? h0 + b * H : out + (bt - 1) * H;
      const T* gt = gates + bt * G;
      const T* hrt = h_rec + bt * H;
      for (size_t g = 0; g < 3; ++g)
        for (size_t k = 0; k < H; ++k) hm[g * H + k] = double(hp[k]) * double(mh[g * B * H + k]);
      for (size_t j = 0; j < H; ++j) {
        const double z = gt[j], n = gt[2 * H + j];
        dg[j] = dh[j] * (double(hp[j]) - n) * z * (1.0 - z);
        dg[2 * H + j] = dh[j] * (1.0 - z) * (1.0 - n * n);
        dhp[j] = dh[j] * z;
      }
      std::fill(th.begin(), th.end(), 0.0);  // U_g^T-products, per gate, before the masks
      if (d.reset_after) {
        for (size_t j = 0; j < H; ++j) {
          const double r = gt[H + j], dn = dg[2 * H + j];
          dg[H + j] = dn * double(hrt[j]) * r * (1.0 - r);
          drs[j] = dn * r;  // gradient of (h*mh_h) Uh + bh_rec
          db_rec[2 * H + j] += drs[j];
        }
        for (size_t k = 0; k < H; ++k) axpy(H, hm[2 * H + k], drs.data(), dU.data() + k * G + 2 * H);
        for (size_t j = 0; j < H; ++j) axpy(H, drs[j], UT.data() + (2 * H + j) * H, th.data() + 2 * H);
        for (size_t k = 0; k < H; ++k) dhp[k] += th[2 * H + k] * double(mh[2 * B * H + k]);
        for (size_t j = 0; j < 2 * H; ++j) db_rec[j] += dg[j];
      } else {
        std::fill(drs.begin(), drs.end(), 0.0);  // gradient of r * (h*mh_h)
        for (size_t j = 0; j < H; ++j) axpy(H, dg[2 * H + j], UT.data() + (2 * H + j) * H, drs.data());
        for (size_t k = 0; k < H; ++k) {
          const double r = gt[H + k];
          dg[H + k] = drs[k] * hm[2 * H + k] * r * (1.0 - r);
          dhp[k] += drs[k] * r * double(mh[2 * B * H + k]);
          axpy(H, double(hrt[k]), dg.data() + 2 * H, dU.data() + k * G + 2 * H);
        }
      }
      for (size_t k = 0; k < H; ++k) {
        axpy(H, hm[k], dg.data(), dU.data() + k * G);
        axpy(H, hm[H + k], dg.data() + H, dU.data() + k * G + H);
      }
      for (size_t j = 0; j < 2 * H; ++j) axpy(H, dg[j], UT.data() + j * H, th.data() + (j / H) * H);
      for (size_t k = 0; k < H; ++k)
        dhp[k] += th[k] * double(mh[k]) + th[H + k] * double(mh[B * H + k]);
      const T* xt = x + bt * I;
      for (size_t j = 0; j < G; ++j) db_in[j] += dg[j];
      for (size_t i = 0; i < I; ++i)
        for (size_t g = 0; g < 3; ++g)
          axpy(H, double(xt[i]) * double(mx[g * B * I + i]), dg.data() + g * H,
               dW.data() + i * G + g * H);
      if (dx) {
        std::fill(tx.begin(), tx.end(), 0.0);
        for (size_t j = 0; j < G; ++j) axpy(I, dg[j], WT.data() + j * I, tx.data() + (j / H) * I);
        for (size_t i = 0; i < I; ++i) {
          double v = 0.0;
          for (size_t g = 0; g < 3; ++g) v += tx[g * I + i] * double(mx[g * B * I + i]);
          dx[bt * I + i] = T(v);
        }
      }
      dh.swap(dhp);
    }
    for (size_t k = 0; k < H; ++k) dh0[b * H + k] = T(dh[k]);
  }
  for (size_t i = 0; i < I * G; ++i) dkernel[i] = T(dW[i]);
  for (size_t i = 0; i < H * G; ++i) drecurrent[i] = T(dU[i]);
  for (size_t j = 0; j < G; ++j) dbias[j] = T(db_in[j]);
  if (d.reset_after)
    for (size_t j = 0; j < G; ++j) dbias[G + j] = T(db_rec[j]);
}

#define FASTGRU_MASKED(T)                                                                    \
  template void gru_masked_forward_train<T>(const MaskedDims&, const T*, const T*, const T*, \
                                            const T*, const T*, const T*, const T*, T*, T*,  \
                                            T*, T*);                                         \
  template void gru_masked_backward<T>(const MaskedDims&, const T*, const T*, const T*,      \
                                       const T*, const T*, const T*, const T*, const T*,     \
                                       const T*, const T*, const T*, T*, T*, T*, T*, T*);
FASTGRU_MASKED(float)
FASTGRU_MASKED(double)
#undef FASTGRU_MASKED

}  // namespace fastgru
