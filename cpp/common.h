// Types shared by every SIMD path and the bindings: packed weights, the kernel table, scratch.
// Nothing here depends on the instruction set: the out-of-line parts are compiled once, in
// common.cpp, with baseline flags. The inline helpers below are also read by the isa_*.cpp
// units built with -mavx2/-mavx512f, so they are FASTGRU_SHARED_INLINE: always inlined, never
// left as an out-of-line copy that the linker could merge into one wider-ISA body and then
// call from baseline code on a CPU without that ISA (an ODR hazard: -O0 builds had such copies).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#if defined(_MSC_VER) && !defined(__clang__)
#define FASTGRU_SHARED_INLINE __forceinline
#else
#define FASTGRU_SHARED_INLINE inline __attribute__((always_inline))
#endif

namespace fastgru {

// 64-byte aligned, zero-initialised array that owns its memory.
template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t count, bool zeroed = true);
  ~AlignedBuffer();
  FASTGRU_SHARED_INLINE AlignedBuffer(AlignedBuffer&& other) noexcept : data_(other.data_) {
    other.data_ = nullptr;
  }
  FASTGRU_SHARED_INLINE AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    T* const mine = data_;  // a swap: the old buffer is freed with `other`
    data_ = other.data_;
    other.data_ = mine;
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  FASTGRU_SHARED_INLINE T* data() { return data_; }
  FASTGRU_SHARED_INLINE const T* data() const { return data_; }

 private:
  // A raw pointer, not std::unique_ptr: the SIMD translation units read it, and no template
  // of the standard library should be instantiated there with wider-ISA flags (ODR).
  T* data_ = nullptr;
};

// A K x N matrix ("B" of C = A*B) cut into panels of `panel_width` columns, each panel stored
// K rows of `panel_width` contiguous values, zero padded: what the micro-kernels stream.
// A plain row-major matrix is described by the same view with panel_stride = panel_width
// and ldb = its row length, so one micro-kernel serves packed weights and big activations.
template <typename T>
struct BView {
  const T* data = nullptr;
  size_t panel_stride = 0;  // distance between panel p and p+1
  size_t ldb = 0;           // distance between row k and k+1 inside a panel
  size_t nvec = 0;          // columns to compute, in SIMD vectors
};

// Geometry of one SIMD path that packing needs: vector lanes per type and panel width (NV).
struct SimdGeometry {
  int lanes;    // elements per vector
  int nv;       // vectors per panel
};

FASTGRU_SHARED_INLINE size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

// The unit-grouped layout of PackedWeights::rec_grouped for H units and L lanes: the column
// of gate (0 z, 1 r, 2 n) of unit u, and the row width. Full groups of L units take a vector
// per gate; the t = H % L units left share vectors when they fit (the latency path shifts r
// and n down to lane 0), which saves the padding's loads on every step.
FASTGRU_SHARED_INLINE size_t grouped_column(size_t gate, size_t u, size_t H, size_t L) {
  const size_t full = H / L, t = H % L, group = u / L;
  if (group < full || 2 * t > L) return 3 * group * L + gate * L + u % L;
  const size_t base = 3 * full * L, i = u - full * L;
  if (gate < 2) return base + gate * t + i;
  return 3 * t <= L ? base + 2 * t + i : base + L + i;
}
FASTGRU_SHARED_INLINE size_t grouped_row_width(size_t H, size_t L) {
  const size_t t = H % L;
  return 3 * (H / L) * L + (t == 0 ? 0 : 2 * t > L ? 3 * L : 3 * t <= L ? L : 2 * L);
}

// Groups of batch rows with their own partial weight gradients in gru_backward (at most).
constexpr size_t kBackwardGroups = 2;

// GRU weights packed for one SIMD path. Gate segments z, r, h are each padded to Hp units (a
// multiple of the vector width) so every gate starts on a vector boundary and the fused
// epilogue has no scalar tail; padded units have zero weights and stay exactly zero.
template <typename T>
struct PackedWeights {
  size_t input_size = 0, units = 0, padded_units = 0;
  bool reset_after = true;
  SimdGeometry geo{};
  // forward: x*W (3Hp columns) and h*U, or h*U[z,r] then (r*h)*U[h] (reset_after=False)
  AlignedBuffer<T> kernel;       // K=I,  N=3Hp
  AlignedBuffer<T> rec;          // K=H,  N=3H  (reset_after only: one GEMM for all three gates,
                                 // back to back: 3H columns in ceil(3H/L) vectors, no padding)
  AlignedBuffer<T> rec_zr;       // K=H,  N=2Hp (reset_after=False only)
  AlignedBuffer<T> rec_h;        // K=H,  N=Hp  (reset_after=False only)
  // The batch-1 latency path (either gate variant, U up to kGroupedLargeBytes; see the constructor
  // for when exactly) keeps h*U in registers, a chunk of unit groups at a time, so it wants
  // every gate of a unit in a fixed register and no padding to stream: columns grouped by units, a vector per
  // gate for each L units [z r n], then the last H % L units packed [z r n] into one vector
  // (3t <= L) or [z r][n] into two (2t <= L), else padded to [z][r][n] (grouped_column()).
  AlignedBuffer<T> rec_grouped;     // K=H, N=grouped_width, row-major (else empty)
  AlignedBuffer<T> kernel_grouped;  // K=I, N=grouped_width, row-major
  AlignedBuffer<T> bias_grouped;    // grouped_width: bias_x in that layout
  size_t grouped_width = 0;
  FASTGRU_SHARED_INLINE size_t grouped_vectors() const { return grouped_width / size_t(geo.lanes); }
  static constexpr size_t kGroupedVectors = 12;  // at most this many: one chunk on AVX-512
  static constexpr size_t kGroupedSmallBytes = 32 * 1024;
  static constexpr size_t kGroupedLargeBytes = 512 * 1024;
  AlignedBuffer<T> bias_x;       // 3Hp: input bias, with the recurrent z/r bias folded in
  AlignedBuffer<T> bias_hh;      // Hp:  recurrent h bias (reset_after) or zeros
  // backward: dx = dG*W^T, dh += dG[z,r]*U[z,r]^T + dG_h*U[h]^T (empty if !for_training)
  AlignedBuffer<T> kernel_t;     // K=3Hp, N=I
  AlignedBuffer<T> rec_zr_t;     // K=2Hp, N=H
  AlignedBuffer<T> rec_h_t;      // K=Hp,  N=H
  // reset_after training with a short tail (t = H % L units, 4t <= L): those units' rows of U
  // in d_gates' column order [h | z | r], each Hp wide, zero padded (t x 3Hp). The backward
  // computes their dh by dot products instead of a whole vector of mostly padding per product,
  // and their columns of dU as a product of their own (t rows of the transposed dU a gate).
  AlignedBuffer<T> rec_tail;
  size_t tail_dot_units = 0;
  bool for_training = true;

  // for_training=false packs only what the forward reads (the inference model).
  PackedWeights(SimdGeometry geo, const T* kernel, const T* recurrent_kernel, const T* bias,
                size_t input_size, size_t units, bool reset_after, bool for_training = true);
  // Repacks new weights of the same shapes into the existing buffers (no new buffers; a small
  // index table per pack_gates call).
  void pack(const T* kernel, const T* recurrent_kernel, const T* bias);

  FASTGRU_SHARED_INLINE size_t panel_width() const { return size_t(geo.nv) * geo.lanes; }
  // Steps gru_backward takes at a time: the gate gradients and inputs of one chunk of steps
  // for the whole batch, with the states the weight gradients read from the tape (5Hp + I
  // values a row either way: 4Hp + h_prev, or 3Hp + h_prev + r*h), stay within about
  // 512 KiB, in L2. (The chunk length also sets the order the weight gradients are summed.)
  FASTGRU_SHARED_INLINE size_t backward_chunk(size_t batch, size_t steps) const {
    const size_t row = 5 * padded_units + input_size;
    const size_t c = (size_t(512) << 10) / (sizeof(T) * batch * row);
    return c < 1 ? 1 : (c > steps ? steps : c);
  }
  // Elements of scratch gru_backward needs (BackwardBuffers cuts it with the two below): two
  // chunk buffers of `rows` rows, each the d_gates row (4Hp with reset_after, else 3Hp) and
  // the inputs rounded up to whole vectors, then per group of batch rows the padded weight
  // gradients and bias sums.
  FASTGRU_SHARED_INLINE size_t backward_chunk_elements(size_t rows) const {
    return rows * (reset_after ? 4 : 3) * padded_units +
           round_up(rows * input_size, 64 / sizeof(T));
  }
  FASTGRU_SHARED_INLINE size_t backward_group_elements() const {
    return (input_size + units) * 3 * padded_units + 4 * padded_units +
           3 * tail_dot_units * padded_units;  // + the tail units' columns of dU, transposed
  }
  FASTGRU_SHARED_INLINE size_t backward_workspace(size_t batch, size_t steps) const {
    return 2 * backward_chunk_elements(backward_chunk(batch, steps) * batch) +
           kBackwardGroups * backward_group_elements();
  }
  BView<T> view(const AlignedBuffer<T>& packed, size_t k, size_t n) const;

 private:
  void pack_grouped(const T* kernel, const T* recurrent_kernel);  // after bias_x
};

// The row order of the training tape, which the forward writes and the backward reads. The
// batch rows form groups (blocks of mr rows, at most kBackwardGroups; gru_backward keeps
// partial weight gradients per group), and each group's rows of all steps lie together,
// step-major: row (b, t) = lo*T + t*n + (b - lo) for the group's rows [lo, lo + n). So the
// rows of one block at one step are contiguous, and so is a group's run of steps, in the
// order the weight gradients sum them: those products read h_prev straight from the tape.
struct TapeRows {
  size_t steps;
  size_t groups;                   // at least 1 for a batch of at least one row
  size_t lo[kBackwardGroups + 1];  // first batch row of each group; lo[groups] = batch

  FASTGRU_SHARED_INLINE TapeRows(size_t batch, size_t steps_, size_t mr) : steps(steps_) {
    const size_t blocks = (batch + mr - 1) / mr;
    groups = blocks < kBackwardGroups ? blocks : kBackwardGroups;
    if (groups == 0) groups = 1;
    for (size_t g = 0; g <= groups; ++g) {
      const size_t r = blocks * g / groups * mr;
      lo[g] = r < batch ? r : batch;
    }
  }
  FASTGRU_SHARED_INLINE size_t group_of(size_t b) const {
    size_t g = 0;
    while (g + 1 < groups && b >= lo[g + 1]) ++g;
    return g;
  }
  FASTGRU_SHARED_INLINE size_t rows_of(size_t g) const { return lo[g + 1] - lo[g]; }
  // The tape row of batch row b at step t.
  FASTGRU_SHARED_INLINE size_t row(size_t b, size_t t) const { return row_in_run(b, t, steps); }
  // The same order over runs of `run` steps instead of all of them (gru_backward's chunk
  // buffers, which hold one chunk of steps at a time).
  FASTGRU_SHARED_INLINE size_t row_in_run(size_t b, size_t t, size_t run) const {
    const size_t g = group_of(b);
    return lo[g] * run + t * rows_of(g) + (b - lo[g]);
  }
};

// Buffers that the training forward fills and backward reads, (T * B, width) row-major in
// TapeRows' order; the arrays that hold them are shaped (T, B, width).
template <typename T>
struct Tape {
  T* h_prev;   // Hp: state before each step
  T* gates;    // 3Hp: z, r, n after their activations
  T* h_rec;    // Hp: h*U[h] + b_hh (reset_after) or r*h (reset_after=False)
};

template <typename T>
struct ForwardArgs {
  const PackedWeights<T>* w;
  const T* x;        // (B, T, I)
  const T* h0;       // (B, H) or null for zeros
  size_t batch, steps;
  T* out;            // (B, T, H), or null when only the last state is wanted
  T* h_last;         // (B, H), or null; may be h0 (h0 is read before it is written)
  Tape<T> tape;      // all null for inference
  int threads;
};

template <typename T>
struct BackwardArgs {
  const PackedWeights<T>* w;
  const T* x;          // (B, T, I)
  Tape<T> tape;
  const T* d_out;      // (B, T, H) or null
  const T* d_h_last;   // (B, H) or null
  size_t batch, steps;
  T* dx;               // (B, T, I)
  T* dh0;              // (B, H)
  T* dkernel;          // (I, 3H)
  T* drecurrent;       // (H, 3H)
  T* dbias;            // (2, 3H) or (3H,)
  T* workspace;        // PackedWeights::backward_workspace(batch, steps) elements
  int threads;
};

template <typename T>
struct TypedKernels {
  // Both return false when scratch memory could not be had (the caller raises MemoryError).
  bool (*forward)(const ForwardArgs<T>&);
  bool (*backward)(const BackwardArgs<T>&);
};

// One SIMD path: its name, its geometry per dtype, and its kernels.
struct KernelTable {
  const char* name;
  SimdGeometry f32, f64;
  TypedKernels<float> k32;
  TypedKernels<double> k64;
  template <typename T> const TypedKernels<T>& kernels() const;
  template <typename T> SimdGeometry geometry() const;
};
template <> FASTGRU_SHARED_INLINE const TypedKernels<float>& KernelTable::kernels<float>() const { return k32; }
template <> FASTGRU_SHARED_INLINE const TypedKernels<double>& KernelTable::kernels<double>() const { return k64; }
template <> FASTGRU_SHARED_INLINE SimdGeometry KernelTable::geometry<float>() const { return f32; }
template <> FASTGRU_SHARED_INLINE SimdGeometry KernelTable::geometry<double>() const { return f64; }

// Per-thread scratch, 64-byte aligned, reused across calls (no allocation on the hot path once
// warm). Valid until the same thread asks again. Returns null if memory is exhausted.
void* thread_scratch(size_t bytes);

// Thread count the kernels use at most (fastgru.set_num_threads), within [1, thread_limit()].
int max_threads();
void set_max_threads(int n);
// The most threads set_max_threads accepts: 4 per processor, at least 64. Far more than pays,
// and far below the counts at which libgomp fails to start a team and kills the process.
int thread_limit();
// Whether kernels may run fewer threads than planned when a team measures slower than one
// thread (TeamChooser). On unless FASTGRU_ADAPTIVE_THREADS=0 at import.
bool adaptive_threads();
void set_adaptive_threads(bool on);

// The team a kernel starts, chosen by what it measures: on shared cores (another busy process
// on each core) a team waits for whichever member the OS has descheduled, at every barrier
// and at the end of every region, and can take longer than one thread alone. Each call site
// (a static TeamChooser) keeps the time per FLOP it got alone and with its planned team
// (moving averages after the fastest of the first few samples; its first call, which may
// start the threads, is not counted), takes the faster, and now and then tries the other, so
// it follows the load as it comes and goes.
// Off (always the planned team) with set_adaptive_threads(false).
// Compiled once, in common.cpp: the SIMD units only call it (no atomics or clocks of the
// standard library instantiated with wider-ISA flags). Zero-initialised as a static.
class TeamChooser {
 public:
  struct Call {
    int team;        // threads to start
    bool timed;      // whether finish() records it (a choice, planned > 1, past the first call)
    double started;  // seconds, steady clock
  };
  Call start(int planned);
  void finish(const Call& call, double flops);

 private:
  std::atomic<double> cost_[2];   // seconds per FLOP: alone, with the team (0: unknown)
  std::atomic<uint32_t> samples_[2];  // samples taken into cost_[k] since it was last unknown
  std::atomic<uint32_t> calls_;
  std::atomic<int> team_size_;    // the planned team cost_[1] was measured with
};

// Picks the team for one call and times the call until it goes out of scope:
// `const TeamTimer timer(chooser, planned, flops);` then start timer.call.team threads.
class TeamTimer {
 public:
  FASTGRU_SHARED_INLINE TeamTimer(TeamChooser& chooser, int planned, double flops)
      : call(chooser.start(planned)), chooser_(chooser), flops_(flops) {}
  FASTGRU_SHARED_INLINE ~TeamTimer() { chooser_.finish(call, flops_); }
  TeamTimer(const TeamTimer&) = delete;
  TeamTimer& operator=(const TeamTimer&) = delete;
  const TeamChooser::Call call;

 private:
  TeamChooser& chooser_;
  const double flops_;
};

// Sets flush-to-zero / denormals-are-zero for the current thread, restores on destruction.
class DenormalGuard {
 public:
  DenormalGuard();
  ~DenormalGuard();
  DenormalGuard(const DenormalGuard&) = delete;
  DenormalGuard& operator=(const DenormalGuard&) = delete;

 private:
  uint64_t saved_;
};

}  // namespace fastgru
