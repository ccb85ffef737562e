// The parts of the kernels that do not depend on the SIMD path: memory, packing, threads.
// (The optimizer step, which must not be contracted into FMAs, is in adam.cpp.)
#include "common.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#if defined(_WIN32)
#include <malloc.h>  // _aligned_malloc
#endif
#include <cstring>
#include <new>
#include <vector>

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

// Not std::aligned_alloc: Windows' C runtime has none, and macOS only from 10.15.
void* aligned_bytes(size_t bytes) {
  const size_t size = round_up(bytes == 0 ? 1 : bytes, kAlign);
#if defined(_WIN32)
  return _aligned_malloc(size, kAlign);
#else
  void* p = nullptr;
  return posix_memalign(&p, kAlign, size) == 0 ? p : nullptr;
#endif
}

void aligned_free(void* p) {
#if defined(_WIN32)
  _aligned_free(p);
#else
  std::free(p);
#endif
}
}  // namespace

template <typename T>
AlignedBuffer<T>::AlignedBuffer(size_t count, bool zeroed) {
  data_ = static_cast<T*>(aligned_bytes(count * sizeof(T)));
  if (data_ == nullptr) throw std::bad_alloc();
  if (zeroed) std::memset(data_, 0, count * sizeof(T));
}

template <typename T>
AlignedBuffer<T>::~AlignedBuffer() {
  aligned_free(data_);
}

namespace {

// Elements of a K x N matrix packed into panels of `width` columns (see BView).
size_t panel_elements(size_t K, size_t N, size_t lanes, size_t width) {
  const size_t nvec = (N + lanes - 1) / lanes;
  return (nvec + width / lanes - 1) / (width / lanes) * K * width;
}

// Writes the real units of a panel buffer (see BView) from `gates` gate segments of Keras
// weights, starting at Keras gate `gate0`; the padding is zero from construction and never
// written, so packing in place only rewrites these. Not transposed, the
// buffer is other x gates*Hp with value(k, gi*S + u) = src[k * ld + (gate0 + gi) * H + u],
// S = `spacing` (Hp: each gate from a vector boundary; H: the gates back to back);
// transposed, it is gates*Hp x other with value(gi*Hp + u, n) = src[n * ld + (gate0 + gi) * H + u].
template <typename T>
void pack_gates(AlignedBuffer<T>& out, size_t other, size_t width, const T* src, size_t ld,
                size_t gate0, size_t gates, size_t H, size_t Hp, bool transposed,
                size_t spacing = 0) {
  if (spacing == 0) spacing = Hp;
  const size_t K = transposed ? gates * Hp : other, N = transposed ? other : gates * Hp;
  // Where column n of row 0 lives: panel n / width, position n % width. (A table: measured
  // faster for update() than a walking pointer or inline index arithmetic.)
  std::vector<size_t> at(N);
  for (size_t n = 0, p = 0, j = 0; n < N; ++n) {
    at[n] = p * K * width + j;
    if (++j == width) j = 0, ++p;
  }
  for (size_t gi = 0; gi < gates; ++gi) {
    const T* s = src + (gate0 + gi) * H;
    if (!transposed) {
      for (size_t k = 0; k < K; ++k) {
        for (size_t u = 0; u < H; ++u) out.data()[at[gi * spacing + u] + k * width] = s[k * ld + u];
      }
    } else {
      for (size_t n = 0; n < N; ++n) {
        T* dst = out.data() + at[n] + gi * Hp * width;
        for (size_t u = 0; u < H; ++u) dst[u * width] = s[n * ld + u];
      }
    }
  }
}

}  // namespace

template <typename T>
PackedWeights<T>::PackedWeights(SimdGeometry g, const T* W, const T* U, const T* b, size_t I,
                                size_t H, bool ra, bool training)
    : input_size(I), units(H), padded_units(round_up(H, g.lanes)), reset_after(ra), geo(g),
      for_training(training) {
  const size_t Hp = padded_units, L = g.lanes, PW = panel_width();
  kernel = AlignedBuffer<T>(panel_elements(I, 3 * Hp, L, PW));
  if (ra) {
    rec = AlignedBuffer<T>(panel_elements(H, 3 * Hp, L, PW));
  } else {
    rec_zr = AlignedBuffer<T>(panel_elements(H, 2 * Hp, L, PW));
    rec_h = AlignedBuffer<T>(panel_elements(H, Hp, L, PW));
  }
  // The batch-1 path's copy. Worth it where it drops padding, or where U is small (H = 44,
  // 48: 1.3x faster on AVX-512); measured slower than the padded panels for H = 60..64, where
  // U nearly fills a 48 KiB L1 either way. Wider than one chunk of registers (AVX2, SSE2 and
  // NEON from H = 33, 17, 17; AVX-512 from 65), measured 1.1-1.3x faster than the panels up
  // to H = 180 and slower at 256, where U leaves L2: its grouped rows are strided reads there.
  const size_t width = grouped_row_width(H, L), bytes = H * width * sizeof(T);
  const bool one_chunk = width <= kGroupedVectors * L;
  if (one_chunk ? (width < 3 * Hp || bytes <= kGroupedSmallBytes) : bytes <= kGroupedLargeBytes) {
    grouped_width = width;
    rec_grouped = AlignedBuffer<T>(H * width);
    kernel_grouped = AlignedBuffer<T>(I * width);
    bias_grouped = AlignedBuffer<T>(width);
  }
  if (for_training) {
    kernel_t = AlignedBuffer<T>(panel_elements(3 * Hp, I, L, PW));
    rec_zr_t = AlignedBuffer<T>(panel_elements(2 * Hp, H, L, PW));
    rec_h_t = AlignedBuffer<T>(panel_elements(Hp, H, L, PW));
    const size_t t = H % L;
    if (ra && t != 0 && 4 * t <= L) {
      tail_dot_units = t;
      rec_tail = AlignedBuffer<T>(t * 3 * Hp);
    }
  }
  bias_x = AlignedBuffer<T>(3 * Hp);
  bias_hh = AlignedBuffer<T>(Hp);
  pack(W, U, b);
}

template <typename T>
void PackedWeights<T>::pack(const T* W, const T* U, const T* b) {
  const size_t I = input_size, H = units, Hp = padded_units, PW = panel_width();
  const bool ra = reset_after;
  pack_gates(kernel, I, PW, W, 3 * H, 0, 3, H, Hp, false);
  if (ra) {
    pack_gates(rec, H, PW, U, 3 * H, 0, 3, H, Hp, false, /*spacing=*/H);
  } else {  // (r*h) meets U[h] only after z and r are known: two products
    pack_gates(rec_zr, H, PW, U, 3 * H, 0, 2, H, Hp, false);
    pack_gates(rec_h, H, PW, U, 3 * H, 2, 1, H, Hp, false);
  }
  if (for_training) {
    pack_gates(kernel_t, I, PW, W, 3 * H, 0, 3, H, Hp, true);
    pack_gates(rec_zr_t, H, PW, U, 3 * H, 0, 2, H, Hp, true);
    pack_gates(rec_h_t, H, PW, U, 3 * H, 2, 1, H, Hp, true);
    for (size_t j = 0; j < tail_dot_units; ++j) {
      const T* row = U + (H - tail_dot_units + j) * 3 * H;  // Keras gates z, r, h
      T* dst = rec_tail.data() + j * 3 * Hp;
      for (size_t k = 0; k < H; ++k) {
        dst[k] = row[2 * H + k];
        dst[Hp + k] = row[k];
        dst[2 * Hp + k] = row[H + k];
      }
    }
  }
  for (size_t gate = 0; gate < 3; ++gate) {
    for (size_t u = 0; u < Hp; ++u) {
      const size_t c = gate * H + u;
      T v = T(0);
      if (u < H) {
        v = b[c];
        if (ra && gate < 2) v += b[3 * H + c];  // z and r: both biases simply add
      }
      bias_x.data()[gate * Hp + u] = v;
    }
  }
  for (size_t u = 0; u < Hp; ++u) bias_hh.data()[u] = (ra && u < H) ? b[3 * H + 2 * H + u] : T(0);
  if (grouped_width != 0) pack_grouped(W, U);
}

template <typename T>
void PackedWeights<T>::pack_grouped(const T* W, const T* U) {
  const size_t I = input_size, H = units, Hp = padded_units, N = grouped_width;
  for (size_t gate = 0; gate < 3; ++gate) {
    for (size_t u = 0; u < H; ++u) {
      const size_t c = grouped_column(gate, u, H, size_t(geo.lanes)), src = gate * H + u;
      for (size_t k = 0; k < H; ++k) rec_grouped.data()[k * N + c] = U[k * 3 * H + src];
      for (size_t k = 0; k < I; ++k) kernel_grouped.data()[k * N + c] = W[k * 3 * H + src];
      bias_grouped.data()[c] = bias_x.data()[gate * Hp + u];
    }
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
    ~Scratch() { aligned_free(ptr); }
  };
  thread_local Scratch scratch;
  if (bytes > scratch.capacity) {
    aligned_free(scratch.ptr);
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

int thread_limit() {
#ifdef _OPENMP
  const int procs = omp_get_num_procs();
#else
  const int procs = 1;  // a single-threaded build accepts the same counts and runs one thread
#endif
  return procs > 16 ? 4 * procs : 64;
}

namespace {
[[maybe_unused]] int clamped_threads(int n) {  // unused without OpenMP
  const int limit = thread_limit();
  return n < 1 ? 1 : (n > limit ? limit : n);
}

std::atomic<int>& thread_setting() {
#ifdef _OPENMP
  // OMP_NUM_THREADS is clamped too: a huge value would kill the process at the first team.
  static std::atomic<int> n{clamped_threads(omp_get_max_threads())};
#else
  static std::atomic<int> n{1};
#endif
  return n;
}
}  // namespace

int max_threads() { return thread_setting().load(std::memory_order_relaxed); }
void set_max_threads(int n) {
#ifdef _OPENMP
  thread_setting().store(clamped_threads(n), std::memory_order_relaxed);
#else
  (void)n;  // without OpenMP every kernel runs on the calling thread, whatever was asked
#endif
}

namespace {
std::atomic<bool>& adaptive_setting() {
  static std::atomic<bool> on{[] {
    const char* env = std::getenv("FASTGRU_ADAPTIVE_THREADS");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }()};
  return on;
}
}  // namespace

bool adaptive_threads() { return adaptive_setting().load(std::memory_order_relaxed); }
void set_adaptive_threads(bool on) { adaptive_setting().store(on, std::memory_order_relaxed); }

namespace {
double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

TeamChooser::Call TeamChooser::start(int planned) {
  if (planned <= 1) return {planned, false, 0};
  const double started = steady_seconds();
  if (!adaptive_threads()) return {planned, true, started};
  if (team_size_.exchange(planned, std::memory_order_relaxed) != planned) {
    cost_[1].store(0, std::memory_order_relaxed);  // another team: measure it afresh
    samples_[1].store(0, std::memory_order_relaxed);
  }
  const double alone = cost_[0].load(std::memory_order_relaxed);
  const double team = cost_[1].load(std::memory_order_relaxed);
  const uint32_t call = calls_.fetch_add(1, std::memory_order_relaxed);
  // A call site's first call may start the OpenMP threads and touches their scratch (here
  // 0.75-1.0 ms against 0.5 for the next calls of a seed-sized forward): not a sample, or the
  // team would look slow for the next few dozen calls. (finish()'s fastest-of-three alone is
  // not enough: without this skip the team ran from the 16th call, not the 4th.)
  if (call == 0) return {planned, false, started};
  if (team == 0) return {planned, true, started};  // not measured yet: the team first
  if (alone == 0) return {call % 2 == 0 ? 1 : planned, true, started};  // then once alone
  const bool team_better = team <= alone;
  // Try the other choice every 16th call while they are close, every 64th when one is 1.5x
  // faster (the price of a try on a quiet machine: ~1% of the calls' time).
  const double gap = team_better ? alone / team : team / alone;
  const uint32_t every = gap > 1.5 ? 64 : 16;
  const bool explore = call % every == every - 1;
  return {team_better != explore ? planned : 1, true, started};
}

void TeamChooser::finish(const Call& c, double flops) {
  if (!c.timed || flops <= 0) return;
  const int k = c.team > 1 ? 1 : 0;
  const double sample = (steady_seconds() - c.started) / flops;
  const double old = cost_[k].load(std::memory_order_relaxed);
  // The first few samples keep the fastest: a start-up cost (another caller thread's first
  // team, which starts that thread's own OpenMP workers; first touches of scratch) must not
  // stick. After them a moving average follows the load.
  const uint32_t n = samples_[k].fetch_add(1, std::memory_order_relaxed);
  constexpr uint32_t kFastestOf = 3;
  double next = 0.875 * old + 0.125 * sample;
  if (old == 0) {
    next = sample;
  } else if (n < kFastestOf) {
    next = sample < old ? sample : old;
  }
  cost_[k].store(next, std::memory_order_relaxed);
}

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
