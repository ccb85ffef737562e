// How kernels split work across OpenMP threads. Inside the ISA namespace on purpose: inline
// code shared by translation units built with different -m flags could be merged by the
// linker into the widest-ISA copy and then run on a CPU without it.
#pragma once

#include <cstddef>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastgru {
namespace FASTGRU_ISA {

struct RowRange {
  size_t begin, end;
};

// Blocks of `mr` rows shared out as evenly as possible between `team` threads, in order.
inline RowRange rows_of_thread(size_t rows, int mr, int thread, int team) {
  const size_t blocks = (rows + mr - 1) / mr;
  const size_t b0 = blocks * thread / team, b1 = blocks * (thread + 1) / team;
  const size_t r0 = b0 * mr, r1 = b1 * mr;
  return {r0 < rows ? r0 : rows, r1 < rows ? r1 : rows};
}

// Below this many FLOPs one thread beats starting a team (measured on the seed shapes).
constexpr double kMinParallelFlops = 4e6;

// Threads worth starting: none beyond the row blocks there are, and one for small work, where
// starting a team costs more than it saves.
inline int plan_threads(int requested, size_t rows, int mr, double flops) {
  const size_t blocks = (rows + mr - 1) / mr;
  int n = requested < 1 ? 1 : requested;
  if (size_t(n) > blocks) n = int(blocks);
  return flops < kMinParallelFlops ? 1 : n;
}

inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

}  // namespace FASTGRU_ISA
}  // namespace fastgru
