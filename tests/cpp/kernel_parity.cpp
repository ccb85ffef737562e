// The kernels' parity tests without Python: every kernel of the active SIMD path (NEON when
// cross-built for AArch64 and run under qemu-user, see tests/aarch64/run.sh) against a plain
// double-precision GRU written from the equations in python/fastgru/reference.py:
//
//   z = sigmoid(x Wz + h Uz + bz)      r = sigmoid(x Wr + h Ur + br)
//   n = tanh(x Wh + bxh + r * (h Uh + bhh))   reset_after=True
//   n = tanh(x Wh + (r * h) Uh + bh)          reset_after=False
//   h' = z * h + (1 - z) * n
//
// Covered: float32 and float64, both gate variants, H = 1, 13, 50, 129, batch 1 and batched;
// gru_forward (inference and training modes) and gru_backward; the batch-1 inference path the
// bindings use (InferenceModel::predict and the stream's step). The reference's own gradient
// is checked by finite differences first. Prints one line per failure and a closing
// "N passed, M failed"; exits non-zero on any failure.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common.h"
#include "dispatch.h"
#include "inference.h"

using fastgru::AlignedBuffer;
using fastgru::PackedWeights;
using Vec = std::vector<double>;

namespace {

int passed = 0, failed = 0;

// Max |got - want| against atol * max(1, max|want|) + rtol * |want|, as tests/test_kernels.py.
template <typename T>
void check(const std::string& name, const T* got, const Vec& want, double rtol, double atol) {
  double scale = 1.0;
  for (double w : want) scale = std::fmax(scale, std::fabs(w));
  double worst = 0.0;
  size_t at = 0;
  bool ok = true;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(double(got[i]) - want[i]);
    const double excess = err - (atol * scale + rtol * std::fabs(want[i]));
    if (!(excess <= 0.0)) ok = false;  // NaN fails too
    if (!(err <= worst)) worst = err, at = i;
  }
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAIL %s: max error %.3g at %zu (got %.9g, want %.9g)\n", name.c_str(), worst,
                at, double(got[at]), want[at]);
  }
}

void check_true(const std::string& name, bool ok) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAIL %s\n", name.c_str());
  }
}

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Keras-layout weights, all double (already rounded to the tested type).
struct Gru {
  size_t I, H;
  bool reset_after;
  Vec W, U, b;  // (I, 3H), (H, 3H), (2, 3H) or (3H,)
  double bias_in(size_t c) const { return b[c]; }
  double bias_rec(size_t c) const { return reset_after ? b[3 * H + c] : 0.0; }
};

struct Trace {
  Vec out, h_last;              // (B, T, H), (B, H)
  Vec h_prev, z, r, n, h_rec;   // (B, T, H) each
};

Trace reference_forward(const Gru& g, const Vec& x, const Vec* h0, size_t B, size_t T) {
  const size_t I = g.I, H = g.H;
  Trace tr;
  for (Vec* v : {&tr.out, &tr.h_prev, &tr.z, &tr.r, &tr.n, &tr.h_rec}) v->assign(B * T * H, 0.0);
  tr.h_last.assign(B * H, 0.0);
  for (size_t bi = 0; bi < B; ++bi) {
    Vec h(H, 0.0), hn(H);
    if (h0 != nullptr) h.assign(h0->begin() + bi * H, h0->begin() + (bi + 1) * H);
    for (size_t t = 0; t < T; ++t) {
      const double* xt = &x[(bi * T + t) * I];
      const size_t at = (bi * T + t) * H;
      for (size_t u = 0; u < H; ++u) {
        double a[3], rec[3];
        for (size_t gate = 0; gate < 3; ++gate) {
          const size_t c = gate * H + u;
          a[gate] = g.bias_in(c);
          for (size_t k = 0; k < I; ++k) a[gate] += xt[k] * g.W[k * 3 * H + c];
          rec[gate] = g.bias_rec(c);
          for (size_t k = 0; k < H; ++k) rec[gate] += h[k] * g.U[k * 3 * H + c];
        }
        tr.z[at + u] = sigmoid(a[0] + rec[0]);
        tr.r[at + u] = sigmoid(a[1] + rec[1]);
      }
      for (size_t u = 0; u < H; ++u) {
        const size_t c = 2 * H + u;
        double a = g.bias_in(c);
        for (size_t k = 0; k < I; ++k) a += xt[k] * g.W[k * 3 * H + c];
        double pre;
        if (g.reset_after) {
          double rec = g.bias_rec(c);
          for (size_t k = 0; k < H; ++k) rec += h[k] * g.U[k * 3 * H + c];
          tr.h_rec[at + u] = rec;
          pre = a + tr.r[at + u] * rec;
        } else {
          double rec = 0.0;
          for (size_t k = 0; k < H; ++k) rec += tr.r[at + k] * h[k] * g.U[k * 3 * H + c];
          tr.h_rec[at + u] = tr.r[at + u] * h[u];
          pre = a + rec;
        }
        tr.n[at + u] = std::tanh(pre);
      }
      for (size_t u = 0; u < H; ++u) {
        tr.h_prev[at + u] = h[u];
        const double z = tr.z[at + u];
        hn[u] = z * h[u] + (1.0 - z) * tr.n[at + u];
        tr.out[at + u] = hn[u];
      }
      h = hn;
    }
    std::copy(h.begin(), h.end(), tr.h_last.begin() + bi * H);
  }
  return tr;
}

struct Grads {
  Vec dx, dh0, dW, dU, db;
};

Grads reference_backward(const Gru& g, const Vec& x, const Trace& tr, const Vec& d_out,
                         const Vec& d_h_last, size_t B, size_t T) {
  const size_t I = g.I, H = g.H;
  Grads d;
  d.dx.assign(B * T * I, 0.0);
  d.dh0.assign(B * H, 0.0);
  d.dW.assign(I * 3 * H, 0.0);
  d.dU.assign(H * 3 * H, 0.0);
  d.db.assign(g.b.size(), 0.0);
  for (size_t bi = 0; bi < B; ++bi) {
    Vec dh(d_h_last.begin() + bi * H, d_h_last.begin() + (bi + 1) * H);
    for (size_t t = T; t-- > 0;) {
      const size_t at = (bi * T + t) * H;
      const double* xt = &x[(bi * T + t) * I];
      const double* h = &tr.h_prev[at];
      Vec a_z(H), a_r(H), a_n(H), dprev(H, 0.0), d_rh(H, 0.0);
      for (size_t u = 0; u < H; ++u) dh[u] += d_out[at + u];
      for (size_t u = 0; u < H; ++u) {
        const double z = tr.z[at + u], n = tr.n[at + u];
        a_n[u] = dh[u] * (1.0 - z) * (1.0 - n * n);
        a_z[u] = dh[u] * (h[u] - n) * z * (1.0 - z);
        dprev[u] = dh[u] * z;
      }
      if (g.reset_after) {
        for (size_t u = 0; u < H; ++u) {
          const double r = tr.r[at + u];
          a_r[u] = a_n[u] * tr.h_rec[at + u] * r * (1.0 - r);
        }
      } else {  // d(r*h) = a_n Uh^T
        for (size_t k = 0; k < H; ++k) {
          for (size_t u = 0; u < H; ++u) d_rh[k] += a_n[u] * g.U[k * 3 * H + 2 * H + u];
        }
        for (size_t u = 0; u < H; ++u) {
          const double r = tr.r[at + u];
          a_r[u] = d_rh[u] * h[u] * r * (1.0 - r);
          dprev[u] += d_rh[u] * r;
        }
      }
      // Pre-activation gradients of the three gates as they meet x W and the recurrent part.
      const double* rec_grad[3] = {a_z.data(), a_r.data(), a_n.data()};
      Vec a_n_rec(H);  // what meets h Uh (+ bhh): a_n * r with reset_after, a_n on r*h without
      for (size_t u = 0; u < H; ++u) a_n_rec[u] = g.reset_after ? a_n[u] * tr.r[at + u] : a_n[u];
      const double* in_grad[3] = {a_z.data(), a_r.data(), a_n.data()};
      for (size_t gate = 0; gate < 3; ++gate) {
        const double* gin = in_grad[gate];
        const double* grec = gate < 2 ? rec_grad[gate] : a_n_rec.data();
        const double* hsrc = (gate == 2 && !g.reset_after) ? &tr.h_rec[at] : h;
        for (size_t u = 0; u < H; ++u) {
          const size_t c = gate * H + u;
          for (size_t k = 0; k < I; ++k) {
            d.dW[k * 3 * H + c] += xt[k] * gin[u];
            d.dx[(bi * T + t) * I + k] += gin[u] * g.W[k * 3 * H + c];
          }
          for (size_t k = 0; k < H; ++k) d.dU[k * 3 * H + c] += hsrc[k] * grec[u];
          if (gate < 2 || g.reset_after) {
            for (size_t k = 0; k < H; ++k) dprev[k] += grec[u] * g.U[k * 3 * H + c];
          }
          d.db[c] += gin[u];
          if (g.reset_after) d.db[3 * H + c] += grec[u];
        }
      }
      dh = dprev;
    }
    std::copy(dh.begin(), dh.end(), d.dh0.begin() + bi * H);
  }
  return d;
}

// sum(d_out * out) + sum(d_h_last * h_last): the scalar whose gradient the backward returns.
double loss(const Gru& g, const Vec& x, const Vec& h0, const Vec& d_out, const Vec& d_h_last,
            size_t B, size_t T) {
  const Trace tr = reference_forward(g, x, &h0, B, T);
  double s = 0.0;
  for (size_t i = 0; i < d_out.size(); ++i) s += d_out[i] * tr.out[i];
  for (size_t i = 0; i < d_h_last.size(); ++i) s += d_h_last[i] * tr.h_last[i];
  return s;
}

Vec random_vec(std::mt19937_64& rng, size_t n, double scale) {
  std::uniform_real_distribution<double> dist(-scale, scale);
  Vec v(n);
  for (double& e : v) e = dist(rng);
  return v;
}

template <typename T>
Vec rounded(Vec v) {
  for (double& e : v) e = double(T(e));
  return v;
}

template <typename T>
std::vector<T> as(const Vec& v) {
  return std::vector<T>(v.begin(), v.end());
}

Gru random_gru(std::mt19937_64& rng, size_t I, size_t H, bool reset_after) {
  const double s = 1.0 / std::sqrt(double(H));
  return {I, H, reset_after, random_vec(rng, I * 3 * H, 0.6), random_vec(rng, H * 3 * H, s),
          random_vec(rng, (reset_after ? 6 : 3) * H, 0.3)};
}

// The reference's gradient against central differences along a random direction.
void check_reference_by_finite_differences(bool reset_after) {
  std::mt19937_64 rng(7 + reset_after);
  const size_t B = 2, T = 4, I = 3, H = 5;
  Gru g = random_gru(rng, I, H, reset_after);
  const Vec x = random_vec(rng, B * T * I, 1.0), h0 = random_vec(rng, B * H, 0.5);
  const Vec d_out = random_vec(rng, B * T * H, 1.0), d_h_last = random_vec(rng, B * H, 1.0);
  const Trace tr = reference_forward(g, x, &h0, B, T);
  const Grads d = reference_backward(g, x, tr, d_out, d_h_last, B, T);
  struct Param { const char* name; Vec* value; const Vec* grad; };
  Vec xv = x, h0v = h0;
  Param params[] = {{"W", &g.W, &d.dW}, {"U", &g.U, &d.dU}, {"b", &g.b, &d.db},
                    {"x", &xv, &d.dx}, {"h0", &h0v, &d.dh0}};
  for (const Param& p : params) {
    const Vec dir = random_vec(rng, p.value->size(), 1.0);
    double analytic = 0.0;
    for (size_t i = 0; i < dir.size(); ++i) analytic += dir[i] * (*p.grad)[i];
    const double eps = 1e-6;
    const Vec base = *p.value;
    for (size_t i = 0; i < dir.size(); ++i) (*p.value)[i] = base[i] + eps * dir[i];
    const double up = loss(g, xv, h0v, d_out, d_h_last, B, T);
    for (size_t i = 0; i < dir.size(); ++i) (*p.value)[i] = base[i] - eps * dir[i];
    const double down = loss(g, xv, h0v, d_out, d_h_last, B, T);
    *p.value = base;
    const double numeric = (up - down) / (2 * eps);
    check_true(std::string("reference gradient by finite differences, d") + p.name +
                   (reset_after ? " reset_after" : " reset_before") + " (" +
                   std::to_string(analytic) + " vs " + std::to_string(numeric) + ")",
               std::fabs(analytic - numeric) <= 1e-6 * std::fmax(1.0, std::fabs(numeric)));
  }
}

template <typename T> struct Tol;
template <> struct Tol<double> {
  static constexpr double rtol = 1e-10, atol = 1e-12, grad_rtol = 1e-9, grad_atol = 1e-11;
  static constexpr const char* name = "f64";
};
template <> struct Tol<float> {
  static constexpr double rtol = 1e-4, atol = 1e-5, grad_rtol = 1e-3, grad_atol = 2e-4;
  static constexpr const char* name = "f32";
};

// The name a case's checks are reported under.
template <typename T>
std::string case_tag(size_t B, size_t T_, size_t I, size_t H, bool reset_after) {
  return std::string(Tol<T>::name) + (reset_after ? " reset_after" : " reset_before") +
         " B=" + std::to_string(B) + " T=" + std::to_string(T_) + " I=" + std::to_string(I) +
         " H=" + std::to_string(H);
}

// gru_forward (both modes) and gru_backward of the active path against the reference.
template <typename T>
void check_kernels(size_t B, size_t T_, size_t I, size_t H, bool reset_after) {
  const std::string tag = case_tag<T>(B, T_, I, H, reset_after);
  std::mt19937_64 rng(B * 1000003 + T_ * 1009 + H * 17 + I + reset_after + sizeof(T));
  Gru g = random_gru(rng, I, H, reset_after);
  g.W = rounded<T>(g.W), g.U = rounded<T>(g.U), g.b = rounded<T>(g.b);
  const Vec x = rounded<T>(random_vec(rng, B * T_ * I, 1.0));
  const Vec h0 = rounded<T>(random_vec(rng, B * H, 0.5));
  const Vec d_out = rounded<T>(random_vec(rng, B * T_ * H, 1.0));
  const Vec d_h_last = rounded<T>(random_vec(rng, B * H, 1.0));
  const Trace tr = reference_forward(g, x, &h0, B, T_);
  const Grads want = reference_backward(g, x, tr, d_out, d_h_last, B, T_);

  const fastgru::KernelTable& table = fastgru::active_path();
  const std::vector<T> W = as<T>(g.W), U = as<T>(g.U), b = as<T>(g.b), xt = as<T>(x),
                       h0t = as<T>(h0), dot = as<T>(d_out), dht = as<T>(d_h_last);
  const PackedWeights<T> w(table.geometry<T>(), W.data(), U.data(), b.data(), I, H, reset_after);
  const size_t Hp = w.padded_units;
  for (int threads : {1, 3}) {
    const std::string at = tag + " threads=" + std::to_string(threads);
    std::vector<T> out(B * T_ * H), h_last(B * H);
    fastgru::ForwardArgs<T> fa{&w, xt.data(), h0t.data(), B, T_, out.data(), h_last.data(),
                               {nullptr, nullptr, nullptr}, threads};
    check_true("forward runs " + at, table.kernels<T>().forward(fa));
    check("forward out " + at, out.data(), tr.out, Tol<T>::rtol, Tol<T>::atol);
    check("forward h_last " + at, h_last.data(), tr.h_last, Tol<T>::rtol, Tol<T>::atol);

    std::vector<T> out2(B * T_ * H), h2(B * H), h_prev(B * T_ * Hp), gates(B * T_ * 3 * Hp),
        h_rec(B * T_ * Hp);
    fa.out = out2.data();
    fa.h_last = h2.data();
    fa.tape = {h_prev.data(), gates.data(), h_rec.data()};
    check_true("forward_train runs " + at, table.kernels<T>().forward(fa));
    check_true("forward_train equals forward " + at,
               std::memcmp(out.data(), out2.data(), out.size() * sizeof(T)) == 0 &&
                   std::memcmp(h_last.data(), h2.data(), h2.size() * sizeof(T)) == 0);

    std::vector<T> dx(B * T_ * I), dh0(B * H), dW(I * 3 * H), dU(H * 3 * H), db(b.size());
    AlignedBuffer<T> workspace(w.backward_workspace(B, T_), false);
    fastgru::BackwardArgs<T> ba{&w, xt.data(), fa.tape, dot.data(), dht.data(), B, T_,
                                dx.data(), dh0.data(), dW.data(), dU.data(), db.data(),
                                workspace.data(), threads};
    check_true("backward runs " + at, table.kernels<T>().backward(ba));
    const double rt = Tol<T>::grad_rtol, a = Tol<T>::grad_atol;
    check("backward dx " + at, dx.data(), want.dx, rt, a);
    check("backward dh0 " + at, dh0.data(), want.dh0, rt, a);
    check("backward dkernel " + at, dW.data(), want.dW, rt, a);
    check("backward drecurrent_kernel " + at, dU.data(), want.dU, rt, a);
    check("backward dbias " + at, db.data(), want.db, rt, a);
  }
}

// The path model.predict and model.stream() take: GRU -> Dense(O, tanh) -> Dense(1), packed
// for inference only, batch 1 (the latency path where it applies) and batched.
template <typename T>
void check_inference(size_t B, size_t T_, size_t I, size_t H, bool reset_after) {
  const std::string tag = case_tag<T>(B, T_, I, H, reset_after);
  std::mt19937_64 rng(B * 7919 + T_ * 31 + H * 3 + I + reset_after + sizeof(T));
  Gru g = random_gru(rng, I, H, reset_after);
  g.W = rounded<T>(g.W), g.U = rounded<T>(g.U), g.b = rounded<T>(g.b);
  const size_t O = 4;
  const Vec K1 = rounded<T>(random_vec(rng, H * O, 0.5)), b1 = rounded<T>(random_vec(rng, O, 0.2));
  const Vec K2 = rounded<T>(random_vec(rng, O, 0.5)), b2 = rounded<T>(random_vec(rng, 1, 0.2));
  const Vec x = rounded<T>(random_vec(rng, B * T_ * I, 1.0));
  const Trace tr = reference_forward(g, x, nullptr, B, T_);
  // The head on any (rows, H) states.
  auto head = [&](const double* h, size_t rows) {
    Vec y(rows);
    for (size_t i = 0; i < rows; ++i) {
      double s = b2[0];
      for (size_t o = 0; o < O; ++o) {
        double a = b1[o];
        for (size_t k = 0; k < H; ++k) a += h[i * H + k] * K1[k * O + o];
        s += std::tanh(a) * K2[o];
      }
      y[i] = s;
    }
    return y;
  };

  const fastgru::KernelTable& table = fastgru::active_path();
  const std::vector<T> W = as<T>(g.W), U = as<T>(g.U), b = as<T>(g.b), xt = as<T>(x);
  std::vector<fastgru::InferenceLayer<T>> layers(3);
  layers[0].gru = std::make_unique<PackedWeights<T>>(table.geometry<T>(), W.data(), U.data(),
                                                     b.data(), I, H, reset_after, false);
  const Vec* dense[2][2] = {{&K1, &b1}, {&K2, &b2}};
  const size_t dims[2][2] = {{H, O}, {O, 1}};
  for (int l = 0; l < 2; ++l) {
    fastgru::DenseLayer<T>& d = layers[l + 1].dense;
    d.kernel = as<T>(*dense[l][0]);
    d.bias = as<T>(*dense[l][1]);
    d.inputs = dims[l][0];
    d.units = dims[l][1];
    d.activation = l == 0 ? fastgru::Activation::tanh : fastgru::Activation::linear;
  }
  const fastgru::InferenceModel<T> model(table, std::move(layers));

  std::vector<T> scratch, out(B);
  check_true("predict runs " + tag, model.predict(xt.data(), B, T_, out.data(), scratch));
  check("predict " + tag, out.data(), head(tr.h_last.data(), B), Tol<T>::rtol, Tol<T>::atol);

  // A stream: one reading of every row per step, the state carried between calls.
  std::vector<T> state(B * H, T(0)), xs(B * I), y(B);
  T* states[1] = {state.data()};
  Vec h_t(B * H);
  for (size_t t = 0; t < T_; ++t) {
    for (size_t i = 0; i < B; ++i) {
      std::memcpy(&xs[i * I], &xt[(i * T_ + t) * I], I * sizeof(T));
      std::copy(tr.out.begin() + (i * T_ + t) * H, tr.out.begin() + (i * T_ + t + 1) * H,
                h_t.begin() + i * H);
    }
    if (!model.step(xs.data(), B, states, y.data(), scratch)) {
      check_true("step runs " + tag, false);
      return;
    }
    check("step " + std::to_string(t) + " output " + tag, y.data(), head(h_t.data(), B),
          Tol<T>::rtol, Tol<T>::atol);
  }
  check("stream state after the last step " + tag, state.data(), tr.h_last, Tol<T>::rtol,
        Tol<T>::atol);
}

}  // namespace

int main() {
  const fastgru::KernelTable& table = fastgru::active_path();
  std::printf("SIMD path: %s (compiled:", table.name);
  for (const std::string& name : fastgru::compiled_paths()) std::printf(" %s", name.c_str());
  std::printf(")\n");
#if defined(__aarch64__)
  check_true("the active path on AArch64 is neon", std::string(table.name) == "neon");
#endif
  check_reference_by_finite_differences(true);
  check_reference_by_finite_differences(false);
  for (bool reset_after : {true, false}) {
    for (size_t H : {1, 13, 50, 129}) {
      for (size_t B : {1, 9}) {  // 9: more than one block of rows on every path
        check_kernels<double>(B, 6, 3, H, reset_after);
        check_kernels<float>(B, 6, 3, H, reset_after);
        check_inference<double>(B, 5, 2, H, reset_after);
        check_inference<float>(B, 5, 2, H, reset_after);
      }
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
