// The fused Adam step and the optimizers' subnormal flush (see adam.h). CMakeLists.txt builds
// this file, and only this one, with FMA contraction off, so x * y + z stays two roundings as
// NumPy computes it and the C++ step equals the NumPy one bit for bit.
#include "adam.h"

#include <cmath>
#include <limits>

namespace fastgru {

// A moment below the smallest normal number is stored as zero. A moment that decays under
// zero gradients (a saturated unit's weights) would otherwise stick at the smallest subnormal,
// since m + (0 - m) * c1 rounds back to m, and every later step would pay the CPU's subnormal
// penalty on it: an Adam step over a whole model's weights measured 21-29x slower
// (benchmarks/RESULTS.md). TensorFlow's CPU kernels flush subnormals as well. optimizers.py's
// NumPy form flushes the same values, so the two stay equal bit for bit.
template <typename T>
inline T flush_subnormal(T x) {
  return std::fabs(x) < std::numeric_limits<T>::min() ? T(0) : x;
}

// One loop a variant, so that the compiler vectorizes each with few pointers to check for
// overlap (measured: with amsgrad's branch inside and the flush, GCC 12's LTO build left the
// loop scalar, 4.8x slower).
template <typename T, bool AMSGRAD>
void adam_loop(size_t n, T* p, const T* g, T* m, T* v, T* v_hat, T alpha, T c1, T c2, T eps) {
  for (size_t i = 0; i < n; ++i) {
    const T mi = flush_subnormal(m[i] + (g[i] - m[i]) * c1);
    T vi = flush_subnormal(v[i] + (g[i] * g[i] - v[i]) * c2);
    m[i] = mi;
    v[i] = vi;
    if constexpr (AMSGRAD) {
      vi = v_hat[i] > vi ? v_hat[i] : vi;  // np.maximum (no NaN here unless g had one)
      v_hat[i] = vi;
    }
    p[i] -= (mi * alpha) / (std::sqrt(vi) + eps);
  }
}

template <typename T>
void adam_update(size_t n, T* p, const T* g, T* m, T* v, T* v_hat, T alpha, T c1, T c2, T eps) {
  if (v_hat != nullptr) {
    adam_loop<T, true>(n, p, g, m, v, v_hat, alpha, c1, c2, eps);
  } else {
    adam_loop<T, false>(n, p, g, m, v, v_hat, alpha, c1, c2, eps);
  }
}

template <typename T>
void flush_subnormal_values(size_t n, T* x) {
  for (size_t i = 0; i < n; ++i) x[i] = flush_subnormal(x[i]);
}

template void flush_subnormal_values<float>(size_t, float*);
template void flush_subnormal_values<double>(size_t, double*);
template void adam_update<float>(size_t, float*, const float*, float*, float*, float*, float,
                                 float, float, float);
template void adam_update<double>(size_t, double*, const double*, double*, double*, double*,
                                  double, double, double, double);

}  // namespace fastgru
