// The fused Adam step, in its own unit (adam.cpp) so that the build can turn off FMA
// contraction for it alone: the rest of the C++ (packing included) keeps the usual flags.
#pragma once

#include <cstddef>

namespace fastgru {

// One Adam step over n values (Keras 3 rule, see python/fastgru/optimizers.py), each operation
// rounded as NumPy's one ufunc at a time does (adam.cpp is built without FMA contraction):
//   m += (g - m) * c1;  v += (g*g - v) * c2;  if v_hat: v_hat = max(v_hat, v), use it for v;
//   (m and v below the smallest normal number are stored as zero: see adam.cpp)
//   p -= (m * alpha) / (sqrt(v) + eps)
template <typename T>
void adam_update(size_t n, T* p, const T* g, T* m, T* v, T* v_hat, T alpha, T c1, T c2, T eps);

// x[i] = 0 where |x[i]| is below the smallest normal number: the other optimizers' state
// (optimizers.py's _flush_subnormal), flushed as adam_update flushes m and v.
template <typename T>
void flush_subnormal_values(size_t n, T* x);

}  // namespace fastgru
