// The parts of the kernels that do not depend on the SIMD path: memory, packing, threads.
#include "common.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define FASTGRU_X86 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastgru {

namespace {
constexpr size_t kAlign = 64;

void* aligned_bytes(size_t bytes) {
  return std::aligned_alloc(kAlign, round_up(bytes == 0 ? 1 : bytes, kAlign));
}
}  // namespace

template <typename T>
AlignedBuffer<T>::AlignedBuffer(size_t count, bool zeroed) : size_(count) {
  data_ = static_cast<T*>(aligned_bytes(count * sizeof(T)));
  if (data_ == nullptr) throw std::bad_alloc();
  if (zeroed) std::memset(data_, 0, count * sizeof(T));
}

template <typename T>
AlignedBuffer<T>::~AlignedBuffer() {
  std::free(data_);
}

// Packs the logical K x N matrix value(k, n) into panels of `width` columns (see BView).
template <typename T, typename Value>
AlignedBuffer<T> pack_panels(size_t K, size_t N, size_t lanes, size_t width, Value value) {
  const size_t nvec = (N + lanes - 1) / lanes;
  const size_t panels = (nvec + width / lanes - 1) / (width / lanes);
  AlignedBuffer<T> out(panels * K * width);
  for (size_t n = 0; n < N; ++n) {
    T* panel = out.data() + (n / width) * K * width + n % width;
    for (size_t k = 0; k < K; ++k) panel[k * width] = value(k, n);
  }
  return out;
}

template <typename T>
PackedWeights<T>::PackedWeights(SimdGeometry g, const T* W, const T* U, const T* b, size_t I,
                                size_t H, bool ra)
    : input_size(I), units(H), padded_units(round_up(H, g.lanes)), reset_after(ra), geo(g) {
  const size_t Hp = padded_units, L = g.lanes, PW = panel_width();
  // Padded gate column c = gate*Hp + unit maps to Keras column gate*H + unit, or to nothing.
  auto keras_col = [H, Hp](size_t c, size_t* col) {
    const size_t gate = c / Hp, unit = c % Hp;
    *col = gate * H + unit;
    return unit < H;
  };
  kernel = pack_panels<T>(I, 3 * Hp, L, PW, [&](size_t k, size_t n) {
    size_t c;
    return keras_col(n, &c) ? W[k * 3 * H + c] : T(0);
  });
  if (ra) {
    rec = pack_panels<T>(H, 3 * Hp, L, PW, [&](size_t k, size_t n) {
      size_t c;
      return keras_col(n, &c) ? U[k * 3 * H + c] : T(0);
    });
    // Worth it where it drops padding, or where U is small; measured slower than the
    // padded panels for H = 60..64 on AVX-512, where U nearly fills L1 either way.
    const size_t width = round_up(3 * H, L);
    if (width <= kCompactVectors * L &&
        (width < 3 * Hp || H * width * sizeof(T) <= kCompactSmallBytes)) {
      compact_width = width;
      rec_compact = AlignedBuffer<T>(H * compact_width);
      for (size_t k = 0; k < H; ++k) {
        std::memcpy(rec_compact.data() + k * compact_width, U + k * 3 * H, 3 * H * sizeof(T));
      }
    }
  } else {  // (r*h) meets U[h] only after z and r are known: two products
    rec_zr = pack_panels<T>(H, 2 * Hp, L, PW, [&](size_t k, size_t n) {
      size_t c;
      return keras_col(n, &c) ? U[k * 3 * H + c] : T(0);
    });
    rec_h = pack_panels<T>(H, Hp, L, PW, [&](size_t k, size_t n) {
      return n < H ? U[k * 3 * H + 2 * H + n] : T(0);
    });
  }
  kernel_t = pack_panels<T>(3 * Hp, I, L, PW, [&](size_t k, size_t n) {
    size_t c;
    return keras_col(k, &c) ? W[n * 3 * H + c] : T(0);
  });
  rec_zr_t = pack_panels<T>(2 * Hp, H, L, PW, [&](size_t k, size_t n) {
    size_t c;
    return keras_col(k, &c) ? U[n * 3 * H + c] : T(0);
  });
  rec_h_t = pack_panels<T>(Hp, H, L, PW, [&](size_t k, size_t n) {
    return k < H ? U[n * 3 * H + 2 * H + k] : T(0);
  });
  bias_x = AlignedBuffer<T>(3 * Hp);
  bias_hh = AlignedBuffer<T>(Hp);
  for (size_t gate = 0; gate < 3; ++gate) {
    for (size_t u = 0; u < H; ++u) {
      const size_t c = gate * H + u;
      T v = b[c];
      if (ra && gate < 2) v += b[3 * H + c];  // z and r: both biases simply add
      bias_x.data()[gate * Hp + u] = v;
    }
  }
  if (ra) {
    for (size_t u = 0; u < H; ++u) bias_hh.data()[u] = b[3 * H + 2 * H + u];
  }
}

template <typename T>
BView<T> PackedWeights<T>::view(const AlignedBuffer<T>& packed, size_t k, size_t n) const {
  BView<T> v;
  v.data = packed.data();
  v.panel_stride = k * panel_width();
  v.ldb = panel_width();
  v.nvec = (n + geo.lanes - 1) / geo.lanes;
  return v;
}

template class AlignedBuffer<float>;
template class AlignedBuffer<double>;
template struct PackedWeights<float>;
template struct PackedWeights<double>;

void* thread_scratch(size_t bytes) {
  struct Scratch {
    void* ptr = nullptr;
    size_t capacity = 0;
    ~Scratch() { std::free(ptr); }
  };
  thread_local Scratch scratch;
  if (bytes > scratch.capacity) {
    std::free(scratch.ptr);
#if defined(__SANITIZE_ADDRESS__)
    scratch.capacity = bytes;  // exact size, so AddressSanitizer sees any overrun
#else
    scratch.capacity = round_up(bytes + bytes / 4, kAlign);  // grow with headroom
#endif
    scratch.ptr = aligned_bytes(scratch.capacity);
    if (scratch.ptr == nullptr) scratch.capacity = 0;
  }
  return scratch.ptr;
}

namespace {
std::atomic<int>& thread_setting() {
#ifdef _OPENMP
  static std::atomic<int> n{omp_get_max_threads()};
#else
  static std::atomic<int> n{1};
#endif
  return n;
}
}  // namespace

int max_threads() { return thread_setting().load(std::memory_order_relaxed); }
void set_max_threads(int n) { thread_setting().store(n < 1 ? 1 : n, std::memory_order_relaxed); }

DenormalGuard::DenormalGuard() {
#if defined(FASTGRU_X86)
  saved_ = _mm_getcsr();
  _mm_setcsr(static_cast<unsigned>(saved_) | 0x8040u);  // FTZ | DAZ
#elif defined(__aarch64__)
  uint64_t fpcr;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
  saved_ = fpcr;
  fpcr |= (uint64_t(1) << 24);  // FZ
  __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr));
#else
  saved_ = 0;
#endif
}

DenormalGuard::~DenormalGuard() {
#if defined(FASTGRU_X86)
  _mm_setcsr(static_cast<unsigned>(saved_));
#elif defined(__aarch64__)
  __asm__ __volatile__("msr fpcr, %0" : : "r"(saved_));
#endif
}

}  // namespace fastgru
