// The fused Adam step, in its own unit (adam.cpp) so that the build can turn off FMA
// contraction for it alone: the rest of the C++ (packing included) keeps the usual flags.
#pragma once

#include <cstddef>

namespace fastgru {

// One Adam step over n values (Keras 3 rule, see python/fastgru/optimizers.py), each operation
// rounded as NumPy's one ufunc at a time does (adam.cpp is built without FMA contraction):
//   m += (g - m) * c1;  v += (g*g - v) * c2;  if v_hat: v_hat = max(v_hat, v), use it for v;
//   p -= (m * alpha) / (sqrt(v) + eps)
template <typename T>
void adam_update(size_t n, T* p, const T* g, T* m, T* v, T* v_hat, T alpha, T c1, T c2, T eps);

}  // namespace fastgru
