// Vectors of the width this translation unit is compiled for, and the vector math the GRU
// needs (exp, sigmoid, tanh). Written once with GCC/Clang vector extensions; each isa_*.cpp
// defines FASTGRU_ISA (a namespace name) and FASTGRU_VEC_BYTES, then includes this through
// kernels_impl.h, and the compiler emits AVX-512, AVX2+FMA, SSE2 or NEON code from it.
#pragma once

#include <cstddef>
#include <cstdint>
#if defined(__SSE2__)
#include <immintrin.h>  // estimates, permutes, AVX-512's range/scalef; always-inline, no ODR hazard
#endif

#if !defined(FASTGRU_ISA) || !defined(FASTGRU_VEC_BYTES)
#error "define FASTGRU_ISA and FASTGRU_VEC_BYTES before including simd.h"
#endif

namespace fastgru {
namespace FASTGRU_ISA {

template <typename T> struct Simd;

template <> struct Simd<float> {
  typedef float vec __attribute__((vector_size(FASTGRU_VEC_BYTES)));
  typedef int32_t ivec __attribute__((vector_size(FASTGRU_VEC_BYTES)));
  static constexpr int lanes = FASTGRU_VEC_BYTES / 4;
};
template <> struct Simd<double> {
  typedef double vec __attribute__((vector_size(FASTGRU_VEC_BYTES)));
  typedef int64_t ivec __attribute__((vector_size(FASTGRU_VEC_BYTES)));
  static constexpr int lanes = FASTGRU_VEC_BYTES / 8;
};

template <typename T> using vec_t = typename Simd<T>::vec;
template <typename T> using ivec_t = typename Simd<T>::ivec;

template <typename T>
inline vec_t<T> load(const T* p) {
  vec_t<T> v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
inline void store(T* p, vec_t<T> v) {
  __builtin_memcpy(p, &v, sizeof v);
}
template <typename T>
inline void copy_row(T* dst, const T* src, size_t n) {
  __builtin_memcpy(dst, src, n * sizeof(T));
}
// s - 0 is s for every s, -0.0 included (s + 0 would turn -0.0 into +0.0).
template <typename T>
inline vec_t<T> splat(T s) {
  return s - vec_t<T>{};
}
// Lane-wise mask ? a : b, where mask comes from a vector comparison (all ones or all zeros).
template <typename T>
inline vec_t<T> select(ivec_t<T> mask, vec_t<T> a, vec_t<T> b) {
  return (vec_t<T>)((mask & (ivec_t<T>)a) | (~mask & (ivec_t<T>)b));
}
// Clamping that lets NaN through unchanged. x86's min and max return their second operand
// when either is NaN, so min(hi, max(lo, x)) is two instructions; elsewhere, compare and select.
template <typename T>
inline vec_t<T> clamp(vec_t<T> x, T lo, T hi) {
#if FASTGRU_VEC_BYTES == 64 && defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    return (vec_t<T>)_mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), (__m512)x));
  } else {
    return (vec_t<T>)_mm512_min_pd(_mm512_set1_pd(hi), _mm512_max_pd(_mm512_set1_pd(lo), (__m512d)x));
  }
#elif FASTGRU_VEC_BYTES == 32 && defined(__AVX__)
  if constexpr (sizeof(T) == 4) {
    return (vec_t<T>)_mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), (__m256)x));
  } else {
    return (vec_t<T>)_mm256_min_pd(_mm256_set1_pd(hi), _mm256_max_pd(_mm256_set1_pd(lo), (__m256d)x));
  }
#elif FASTGRU_VEC_BYTES == 16 && defined(__SSE2__)
  if constexpr (sizeof(T) == 4) {
    return (vec_t<T>)_mm_min_ps(_mm_set1_ps(hi), _mm_max_ps(_mm_set1_ps(lo), (__m128)x));
  } else {
    return (vec_t<T>)_mm_min_pd(_mm_set1_pd(hi), _mm_max_pd(_mm_set1_pd(lo), (__m128d)x));
  }
#else
  x = select<T>(x > hi, splat<T>(hi), x);
  return select<T>(x < lo, splat<T>(lo), x);
#endif
}
template <typename T>
inline ivec_t<T> sign_mask() {
  return ivec_t<T>{} | (decltype(ivec_t<T>{}[0]))(1ull << (8 * sizeof(T) - 1));
}
template <typename T>
inline vec_t<T> abs(vec_t<T> x) {
  return (vec_t<T>)((ivec_t<T>)x & ~sign_mask<T>());
}
template <typename T>
inline vec_t<T> copy_sign(vec_t<T> magnitude, vec_t<T> sign_from) {
  const ivec_t<T> sign = sign_mask<T>();
  return (vec_t<T>)(((ivec_t<T>)magnitude & ~sign) | ((ivec_t<T>)sign_from & sign));
}

// Lane shifts by a count known only at run time (the latency path's packed gate tails):
// lane i of shift_down(v, shift_index<T>(s)) is lane i + s of v; lanes past the end are
// unspecified. One permute where the ISA has a variable one, lane by lane elsewhere.
template <typename T>
inline ivec_t<T> shift_index(size_t s) {
  typedef decltype(ivec_t<T>{}[0]) Lane;
  ivec_t<T> index{};
  for (int i = 0; i < Simd<T>::lanes; ++i) {
#if FASTGRU_VEC_BYTES == 32 && defined(__AVX2__)
    if constexpr (sizeof(T) == 8) {  // AVX2 has no variable double permute: move float pairs
      const uint64_t lo = 2 * (i + s) % 8, hi = lo + 1;
      index[i] = Lane(lo | hi << 32);
      continue;
    }
#endif
    index[i] = Lane((i + s) % Simd<T>::lanes);
  }
  return index;
}

template <typename T>
inline vec_t<T> shift_down(vec_t<T> v, ivec_t<T> index) {
#if FASTGRU_VEC_BYTES == 64 && defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    return (vec_t<T>)_mm512_permutexvar_ps((__m512i)index, (__m512)v);
  } else {
    return (vec_t<T>)_mm512_permutexvar_pd((__m512i)index, (__m512d)v);
  }
#elif FASTGRU_VEC_BYTES == 32 && defined(__AVX2__)
  return (vec_t<T>)_mm256_permutevar8x32_ps((__m256)v, (__m256i)index);
#else
  vec_t<T> out{};
  for (int i = 0; i < Simd<T>::lanes; ++i) out[i] = v[index[i]];
  return out;
#endif
}

// exp with Cody-Waite range reduction, Cephes polynomials: about 1 ulp in each precision.
// Inputs are clamped to the range where 2^n stays a normal number (enough for sigmoid/tanh).
inline vec_t<float> exp(vec_t<float> x) {
  typedef vec_t<float> V;
  typedef ivec_t<float> I;
  x = clamp<float>(x, -87.0f, 88.0f);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  const V t = x * 1.44269504088896341f + magic;
  const V n = t - magic;
  const I ni = (I)t - (I)splat<float>(magic);
  V r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const V z = r * r;
  V p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  return p * (V)((ni + 127) << 23);
}

inline vec_t<double> exp(vec_t<double> x) {
  typedef vec_t<double> V;
  typedef ivec_t<double> I;
  x = clamp<double>(x, -708.0, 708.0);
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  const V t = x * 1.4426950408889634073599 + magic;
  const V n = t - magic;
  const I ni = (I)t - (I)splat<double>(magic);
  V r = x - n * 6.93145751953125e-1;
  r = r - n * 1.42860682030941723212e-6;
  const V rr = r * r;
  V px = rr * 1.26177193074810590878e-4 + 3.02994407707441961300e-2;
  px = (px * rr + 9.99999999999999999910e-1) * r;
  V qx = rr * 3.00198505138664455042e-6 + 2.52448340349684104192e-3;
  qx = qx * rr + 2.27265548208155028766e-1;
  qx = qx * rr + 2.00000000000000000009e0;
  const V e = 1.0 + 2.0 * (px / (qx - px));
  return e * (V)((ni + 1023) << 52);
}

// exp(-x), what sigmoid needs. On AVX-512 float the sign folds into the range reduction of a
// shorter exp: 2^(m/16) e^r with m = round(-16 x log2(e)), |r| <= ln2/32; 2^(j/16), j = m mod
// 16, from a table that fits one register, and e^r - 1 = r + r^2/2 + r^3/6 (error below
// r^4/24 = 1e-8), about 1 ulp in all (sigmoid: at most 3.2 ulp over every float, against 2.5
// with the Cephes exp, the worst near x = -16.6 where it is 1e-7). Every step of a GRU waits
// on r's sigmoid before the candidate's tanh, so the chain's length is what counts: 8
// dependent operations here against 14. |x| is clamped to 87 (one vrangeps) so 2^(m/16)
// stays normal; NaN lanes are put back by the last instruction's mask (vrangeps would turn
// them into numbers).
inline vec_t<float> exp_neg(vec_t<float> x) {
#if FASTGRU_VEC_BYTES == 64 && defined(__AVX512F__) && defined(__AVX512DQ__)
  typedef vec_t<float> V;
  const __m512 table = _mm512_setr_ps(
      1.0f, 1.04427378243f, 1.09050773267f, 1.13878863476f, 1.18920711500f, 1.24185781207f,
      1.29683955465f, 1.35425554694f, 1.41421356237f, 1.47682614593f, 1.54221082541f,
      1.61049033194f, 1.68179283051f, 1.75625216038f, 1.83400808641f, 1.91520656140f);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  const __mmask16 number = _mm512_cmp_ps_mask((__m512)x, (__m512)x, _CMP_ORD_Q);
  const V nan_or_x = x;
  x = (V)_mm512_range_ps((__m512)x, _mm512_set1_ps(87.0f), 0x02);  // min |.|, sign of x
  const V t = x * float(-16 * 1.44269504088896341) + magic;  // m in the low mantissa bits
  const V m = t - magic;
  V r = -x - m * (0.693359375f / 16);
  r = r - m * (-2.12194440e-4f / 16);
  const V scale = (V)_mm512_permutexvar_ps((__m512i)t, table);  // lane j of m mod 16
  const V e = r + (r * r) * (r * (1.0f / 6.0f) + 0.5f);             // e^r - 1
  return (V)_mm512_mask_scalef_ps((__m512)nan_or_x, number, (__m512)(scale * e + scale),
                                  (__m512)(m * (1.0f / 16)));  // times 2^floor(m / 16)
#elif FASTGRU_VEC_BYTES == 32 && defined(__AVX2__)
  // AVX2: the same scheme with an 8-entry table (one vpermps), so |r| <= ln2/16 and e^r - 1
  // takes one more term (error below r^5/120 = 1.3e-9); 2^floor(m / 8) is built in the
  // exponent bits and multiplied in, which keeps NaN a NaN. 16 operations against the Cephes
  // exp's 19, and a dependent chain of 11 against 14.
  typedef vec_t<float> V;
  typedef ivec_t<float> I;
  const __m256 table = _mm256_setr_ps(1.0f, 1.09050773267f, 1.18920711500f, 1.29683955465f,
                                      1.41421356237f, 1.54221082541f, 1.68179283051f,
                                      1.83400808641f);
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  x = clamp<float>(x, -88.0f, 87.0f);  // e^-x stays a normal float: 2^floor(m / 8) in [2^-126, 2^127]
  const V t = x * float(-8 * 1.44269504088896341) + magic;  // m in the low mantissa bits
  const V m = t - magic;
  V r = -x - m * (0.693359375f / 8);
  r = r - m * (-2.12194440e-4f / 8);
  const V scale = (V)_mm256_permutevar8x32_ps(table, (__m256i)t);  // lane j of m mod 8
  V p = r * (1.0f / 24.0f) + (1.0f / 6.0f);
  p = p * r + 0.5f;
  const V e = (r * r) * p + r;  // e^r - 1
  // 2^floor(m / 8) as a float: the low bits of t less magic's are m; + 127 * 8 biases it
  const I biased = ((I)t - (I)splat<float>(magic) + 127 * 8) >> 3;
  return (scale * e + scale) * (V)(biased << 23);
#else
  return exp(-x);
#endif
}

inline vec_t<double> exp_neg(vec_t<double> x) { return exp(-x); }

// 1/x to at least 14 bits from the hardware estimate: AVX-512's as is, SSE's 12 bits after one
// Newton step. AVX2 divides instead: a 256-bit vdivps is one uop (a 512-bit one is three, on
// the shared ports), exact, and shorter in latency than the estimate and two Newton steps,
// whose five uops compete with the recurrent product for the two FMA ports. A plain divide
// where the ISA has no estimate.
#if (FASTGRU_VEC_BYTES == 64 && defined(__AVX512F__)) || (FASTGRU_VEC_BYTES == 16 && defined(__SSE2__))
#define FASTGRU_RECIPROCAL_ESTIMATE 1
#endif
inline vec_t<float> reciprocal_estimate(vec_t<float> x) {
  typedef vec_t<float> V;
#if FASTGRU_VEC_BYTES == 64 && defined(__AVX512F__)
  return (V)_mm512_rcp14_ps((__m512)x);
#elif FASTGRU_VEC_BYTES == 16 && defined(__SSE2__)
  const V r = (V)_mm_rcp_ps((__m128)x);
  return r + r * (1.0f - x * r);
#else
  return V(1.0f / x);  // AVX2's divide; NEON's estimate needs two steps: the divide too
#endif
}

// 1/x to about 1 ulp: the estimate and one Newton step (the divide itself where it is exact).
inline vec_t<float> reciprocal(vec_t<float> x) {
#ifdef FASTGRU_RECIPROCAL_ESTIMATE
  const vec_t<float> r = reciprocal_estimate(x);
  return r + r * (1.0f - x * r);
#else
  return 1.0f / x;
#endif
}

// p / q to about 1 ulp: the quotient from the reciprocal estimate, then one Newton step on
// the quotient itself (as many operations as a refined reciprocal times p, more accurate).
// It ends in an add, never a bare product, so no caller's expression can fuse it into a
// multiply-add one way here and another way there. The divide itself where there is no
// estimate.
inline vec_t<float> divide(vec_t<float> p, vec_t<float> q) {
#ifdef FASTGRU_RECIPROCAL_ESTIMATE
  const vec_t<float> r = reciprocal_estimate(q);
  const vec_t<float> y = p * r;
  return y + r * (p - q * y);
#else
  return p / q;
#endif
}

inline vec_t<double> reciprocal(vec_t<double> x) {
#if FASTGRU_VEC_BYTES == 64 && defined(__AVX512F__)
  typedef vec_t<double> V;
  V r = (V)_mm512_rcp14_pd((__m512d)x);
  r = r + r * (1.0 - x * r);
  r = r + r * (1.0 - x * r);
  return r + r * (1.0 - x * r);
#else
  return 1.0 / x;
#endif
}

// Inputs of reciprocal() here are in [1, 1 + e^88]: finite, positive, never denormal.
template <typename T>
inline vec_t<T> sigmoid(vec_t<T> x) {
  return reciprocal(T(1) + exp_neg(x));
}

// tanh, float: x P(x^2) / Q(x^2), an odd rational minimax fit of degrees 13/6, clamped where
// tanh rounds to +-1 — Eigen's generic_fast_tanh_float (what TensorFlow's CPU kernels run),
// also XLA's and ONNX Runtime's MLAS tanh. One short chain and no exp, at a cost in accuracy:
// over every float, at most 4.9 ulp off (3e-7 absolute), and not monotone to the last few
// ulp (the old exp-based tanh: 1.3 ulp), which moves a GRU's float32 outputs ~15% further
// from float64 in rms, still ~3e-8 for GRU(50) at T = 100.
inline vec_t<float> tanh(vec_t<float> x) {
  typedef vec_t<float> V;
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
  const float bound = 7.99881172180175781f;  // Eigen's bound where the products are fused
#else
  const float bound = 7.90531110763549805f;
#endif
  x = clamp<float>(x, -bound, bound);
  const V z = x * x;
  V p = z * -2.76076847742355e-16f + 2.00018790482477e-13f;
  p = p * z - 8.60467152213735e-11f;
  p = p * z + 5.12229709037114e-08f;
  p = p * z + 1.48572235717979e-05f;
  p = p * z + 6.37261928875436e-04f;
  p = p * z + 4.89352455891786e-03f;
  V q = z * 1.19825839466702e-06f + 1.18534705686654e-04f;
  q = q * z + 2.26843463243900e-03f;
  q = q * z + 4.89352518554385e-03f;
  return divide(x * p, q);  // q >= 4.89e-3: finite, positive
}

// tanh, double: a Cephes odd polynomial/rational below |x| = 0.625 (keeps relative accuracy
// near 0), 1 - 2 / (exp(2|x|) + 1) above, sign restored.
inline vec_t<double> tanh(vec_t<double> x) {
  typedef vec_t<double> V;
  const V a = abs<double>(x);
  const V big = copy_sign<double>(1.0 - 2.0 * reciprocal(exp(a + a) + 1.0), x);
  const V z = x * x;
  V p = z * -9.64399179425052238628e-1 - 9.92877231001918586564e1;
  p = p * z - 1.61468768441708447952e3;
  V q = z + 1.12811678491632931402e2;
  q = q * z + 2.23548839060100448583e3;
  q = q * z + 4.84406305325125486048e3;
  const V small = x + x * (z * p / q);
  return select<double>(a < 0.625, small, big);
}

}  // namespace FASTGRU_ISA
}  // namespace fastgru
