// How kernels split work across OpenMP threads. Inside the ISA namespace on purpose: inline
// code shared by translation units built with different -m flags could be merged by the
// linker into the widest-ISA copy and then run on a CPU without it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "common.h"
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

// The team a kernel starts, chosen by what it measures: on shared cores (another busy process
// on each core) a team waits for whichever member the OS has descheduled, at every barrier
// and at the end of every region, and can take longer than one thread alone. Each call site
// keeps the time per FLOP it got alone and with its planned team (moving averages), takes
// the faster, and now and then tries the other, so it follows the load as it comes and goes.
// Off (always the planned team) with adaptive_threads(false) / FASTGRU_ADAPTIVE_THREADS=0.
class TeamChooser {
 public:
  // The team for the next call, planned >= 1 threads (1 when plan says so: nothing to choose).
  int choose(int planned) {
    if (planned <= 1 || !adaptive_threads()) return planned;
    if (team_size_.exchange(planned, std::memory_order_relaxed) != planned) {
      cost_[1].store(0, std::memory_order_relaxed);  // another team: measure it afresh
    }
    const double alone = cost_[0].load(std::memory_order_relaxed);
    const double team = cost_[1].load(std::memory_order_relaxed);
    const uint32_t call = calls_.fetch_add(1, std::memory_order_relaxed);
    if (team == 0) return planned;  // not measured yet: the team first
    if (alone == 0) return call % 2 == 0 ? 1 : planned;  // then once alone
    const bool team_better = team <= alone;
    // Try the other choice every 16th call while they are close, every 64th when one is
    // 1.5x faster (the price of a try on a quiet machine: ~1% of the calls' time).
    const double gap = team_better ? alone / team : team / alone;
    const uint32_t every = gap > 1.5 ? 64 : 16;
    const bool explore = call % every == every - 1;
    return team_better != explore ? planned : 1;
  }
  // What a call of `flops` took with `threads` (1 or the planned team).
  void record(int threads, double seconds, double flops) {
    if (flops <= 0) return;
    std::atomic<double>& cost = cost_[threads > 1 ? 1 : 0];
    const double sample = seconds / flops, old = cost.load(std::memory_order_relaxed);
    cost.store(old == 0 ? sample : 0.875 * old + 0.125 * sample, std::memory_order_relaxed);
  }

 private:
  std::atomic<double> cost_[2] = {};  // seconds per FLOP: alone, with the team (0: unknown)
  std::atomic<uint32_t> calls_{0};
  std::atomic<int> team_size_{0};  // the planned team cost_[1] was measured with
};

// Picks the team for one call and, when there was a choice, times the call until it goes
// out of scope: `TeamTimer timer(chooser, planned, flops);` then start timer.team threads.
class TeamTimer {
 public:
  TeamTimer(TeamChooser& chooser, int planned, double flops)
      : team(chooser.choose(planned)), chooser_(chooser), timed_(planned > 1), flops_(flops),
        start_(std::chrono::steady_clock::now()) {}
  ~TeamTimer() {
    if (!timed_) return;
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start_;
    chooser_.record(team, took.count(), flops_);
  }
  TeamTimer(const TeamTimer&) = delete;
  TeamTimer& operator=(const TeamTimer&) = delete;
  const int team;

 private:
  TeamChooser& chooser_;
  const bool timed_;
  const double flops_;
  const std::chrono::steady_clock::time_point start_;
};

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
