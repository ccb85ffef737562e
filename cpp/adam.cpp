// The fused Adam step (see adam.h). CMakeLists.txt builds this file, and only this one, with
// FMA contraction off, so x * y + z stays two roundings as NumPy computes it and the C++ step
// equals the NumPy one bit for bit.
#include "adam.h"

#include <cmath>

namespace fastgru {

template <typename T>
void adam_update(size_t n, T* p, const T* g, T* m, T* v, T* v_hat, T alpha, T c1, T c2, T eps) {
  for (size_t i = 0; i < n; ++i) {
    const T mi = m[i] + (g[i] - m[i]) * c1;
    T vi = v[i] + (g[i] * g[i] - v[i]) * c2;
    m[i] = mi;
    v[i] = vi;
    if (v_hat != nullptr) {
      vi = v_hat[i] > vi ? v_hat[i] : vi;  // np.maximum (no NaN here unless g had one)
      v_hat[i] = vi;
    }
    p[i] -= (mi * alpha) / (std::sqrt(vi) + eps);
  }
}

template void adam_update<float>(size_t, float*, const float*, float*, float*, float*, float,
                                 float, float, float);
template void adam_update<double>(size_t, double*, const double*, double*, double*, double*,
                                  double, double, double, double);

}  // namespace fastgru
