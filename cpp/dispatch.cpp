#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(_M_X64)
#define FASTGRU_X86 1
#if defined(_MSC_VER)  // MSVC and clang-cl: the intrinsics of <intrin.h>
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace fastgru {

namespace baseline { extern const KernelTable kernel_table; }
#ifdef FASTGRU_X86
namespace avx2 { extern const KernelTable kernel_table; }
namespace avx512 { extern const KernelTable kernel_table; }
#endif

namespace {

#ifdef FASTGRU_X86
// CPUID says what the core can do; XGETBV says whether the OS saves the wider registers.
struct CpuFeatures {
  bool avx2_fma = false;
  bool avx512 = false;
};

// CPUID leaf `leaf`, sub-leaf `sub`; false if the CPU does not have that leaf.
bool cpuid(unsigned leaf, unsigned sub, unsigned& a, unsigned& b, unsigned& c, unsigned& d) {
#if defined(_MSC_VER)
  int r[4];
  __cpuid(r, 0);
  if (unsigned(r[0]) < leaf) return false;
  __cpuidex(r, int(leaf), int(sub));
  a = unsigned(r[0]), b = unsigned(r[1]), c = unsigned(r[2]), d = unsigned(r[3]);
  return true;
#else
  return __get_cpuid_count(leaf, sub, &a, &b, &c, &d) != 0;
#endif
}

// The low half of XCR0 (which register states the OS saves). Only after CPUID said OSXSAVE.
unsigned xcr0_low() {
#if defined(__GNUC__) || defined(__clang__)  // clang-cl too: no xsave target flag needed
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return lo;
#else
  return unsigned(_xgetbv(0));
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!cpuid(1, 0, a, b, c, d)) return f;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28);
  if (!(osxsave && avx)) return f;
  const unsigned xcr0_lo = xcr0_low();
  const bool os_ymm = (xcr0_lo & 0x6u) == 0x6u;     // SSE and AVX state
  const bool os_zmm = (xcr0_lo & 0xE6u) == 0xE6u;   // plus opmask and ZMM state
  if (!cpuid(7, 0, a, b, c, d)) return f;
  const bool avx2 = b & (1u << 5);
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));
  f.avx2_fma = os_ymm && avx2 && fma;
  f.avx512 = f.avx2_fma && os_zmm && avx512;
  return f;
}
#endif

std::vector<const KernelTable*> compiled() {
#ifdef FASTGRU_X86
  return {&avx512::kernel_table, &avx2::kernel_table, &baseline::kernel_table};
#else
  return {&baseline::kernel_table};
#endif
}

const KernelTable* find_supported(const std::string& name) {
  for (const KernelTable* t : supported_paths()) {
    if (name == t->name) return t;
  }
  for (const KernelTable* t : compiled()) {
    if (name == t->name) {
      throw std::invalid_argument("SIMD path '" + name + "' is not supported by this CPU");
    }
  }
  std::string known;
  for (const KernelTable* t : compiled()) known += std::string(known.empty() ? "" : ", ") + t->name;
  throw std::invalid_argument("unknown SIMD path '" + name + "'; this build has: " + known);
}

std::atomic<const KernelTable*>& active() {
  static std::atomic<const KernelTable*> path{[] {
    const char* forced = std::getenv("FASTGRU_SIMD");
    if (forced != nullptr && *forced != '\0') return find_supported(forced);
    return supported_paths().front();
  }()};
  return path;
}

}  // namespace

std::vector<const KernelTable*> supported_paths() {
  std::vector<const KernelTable*> out;
#ifdef FASTGRU_X86
  const CpuFeatures f = detect();
  if (f.avx512) out.push_back(&avx512::kernel_table);
  if (f.avx2_fma) out.push_back(&avx2::kernel_table);
#endif
  out.push_back(&baseline::kernel_table);
  return out;
}

std::vector<std::string> compiled_paths() {
  std::vector<std::string> names;
  for (const KernelTable* t : compiled()) names.emplace_back(t->name);
  return names;
}

const KernelTable& active_path() { return *active().load(); }

void select_path(const std::string& name) { active().store(find_supported(name)); }

}  // namespace fastgru
