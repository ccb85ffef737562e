"""The floor under a one-window predict: how fast the batch-1 latency path could run at best.

    python benchmarks/window_floor.py [--units 50] [--steps 100]

For each x86 SIMD path (avx512, avx2) it compiles the latency path's step for GRU(units)
(reset_after, one input feature, float32) with the project's flags, one function per chunk
of unit groups as ``forward_latency_path`` cuts them, and counts from the machine code the
operations that need a multiply-add pipe: FMAs and multiplies (the gates' sigmoid and tanh
included). The recurrent product (``units x vectors`` FMAs a step) and the input projection
(one FMA a vector for one feature) are counted by construction, the gates from each chunk's
code after the product's loop. It then measures how many FMAs a second this core runs at that
vector width (independent chains, no loads). The floor is

    (product + projection + gate multiply-adds) x steps / that rate

with every load from L1, every other operation free, and no latency exposed. A measured
window that is k times its floor uses its multiply-add pipes 1/k of the time. It needs g++
and objdump (binutils) and the built package, whose ``PackedGRU.latency_vectors`` gives the
layout's width, and measures only the paths this CPU has.
"""
import argparse
import math
import re
import subprocess
import tempfile
from pathlib import Path

CPP = Path(__file__).resolve().parents[1] / "cpp"
FLAGS = {  # CMakeLists.txt's FASTGRU_AVX2_FLAGS / FASTGRU_AVX512_FLAGS
    "avx512": "-mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma",
    "avx2": "-mavx2 -mfma",
}
MULTIPLY_ADD = re.compile(r"^vf(n)?m(add|sub)(132|213|231)?p[sd]$|^vmulp[sd]$")

FMA_RATE_SOURCE = r"""
#include <immintrin.h>
#include <chrono>
#include <cstdio>
// Vector FMAs a second on 12 independent chains (no loads): the pipes' throughput.
template <typename V, V (*fma)(V, V, V), V (*splat)(float)>
double rate(long iters) {
  V a[12];
  for (int i = 0; i < 12; ++i) a[i] = splat(i * 1e-3f);
  const V b = splat(0.999999f), c = splat(1e-7f);
  const auto t0 = std::chrono::steady_clock::now();
  for (long n = 0; n < iters; ++n) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = fma(a[i], b, c);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  volatile float sink = 0;
  for (int i = 0; i < 12; ++i) sink = sink + reinterpret_cast<float*>(&a[i])[0];
  return 12.0 * iters / s;
}
int main() {
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const double x = rate<VEC, FMA, SPLAT>(50000000);
    best = x > best ? x : best;
  }
  std::printf("%.6e\n", best);
}
"""


def isa_defines(isa):
    """The #defines of cpp/isa_<isa>.cpp ({name: value}), so that the step compiles as the
    package's does and is cut into chunks of at most its FASTGRU_LATENCY_GROUPS."""
    text = (CPP / f"isa_{isa}.cpp").read_text()
    return dict(re.findall(r"^#define (FASTGRU_\w+) ?(.*)$", text, re.M))


def plan(vectors, max_groups):
    """forward_latency_path's chunks of a row of `vectors` vectors of the grouped U (full
    [z r n] groups, then the tail's 0-2 vectors): [(groups, tail vectors, first group)], at
    most `max_groups` groups each, balanced, the first ones a group larger, the tail last."""
    full, tail = vectors // 3, vectors % 3
    n_chunks = 1 if full == 0 else math.ceil(full / max_groups)
    chunks, g0 = [], 0
    for c in range(n_chunks):
        groups = full // n_chunks + (1 if c < full % n_chunks else 0)
        chunks.append((groups, tail if c + 1 == n_chunks else 0, g0))
        g0 += groups
    return chunks


def chunk_source(isa, defines, chunks):
    functions = "".join(
        f"__attribute__((flatten)) void chunk{i}(const LatencyRow<float>& w, const float* x_next,\n"
        f"    float* xw_next, const float* xw_cur, const float* h, float* h_next) {{\n"
        f"  latency_chunk<float, {g}, {tv}>(w, {g0}, x_next, xw_next, xw_cur, h, h_next);\n}}\n"
        for i, (g, tv, g0) in enumerate(chunks))
    return ("".join(f"#define {name} {value}\n" for name, value in defines.items())
            + '#include "kernels_impl.h"\n'
            f"namespace fastgru {{ namespace {isa} {{\n{functions}}} }}\n")


def disassemble(obj):
    """{function name: [(address, mnemonic, operands)]} of an object file."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", str(obj)], check=True,
                         capture_output=True, text=True).stdout
    functions, lines = {}, None
    for line in out.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if head:  # keyed by the bare name of a plain function, else by the whole symbol
            name = re.match(r"^(?:\w+::)*(\w+)\(", head.group(1))
            lines = functions.setdefault(name.group(1) if name else head.group(1), [])
            continue
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line) if lines is not None else None
        if m:
            lines.append((int(m.group(1), 16), m.group(2), m.group(3)))
    return functions


def gate_multiply_adds(instructions, vectors):
    """Multiply-add operations of one chunk's gates a step: those after the product's loop.
    `vectors`: the chunk's accumulators (3G + TV), the memory FMAs of one row of U."""
    loops = []  # conditional backward branches (the tail's jmps go back from out-of-line code)
    index = {addr: i for i, (addr, _, _) in enumerate(instructions)}
    for i, (_, op, args) in enumerate(instructions):
        target = re.match(r"^([0-9a-f]+)\b", args)
        if op.startswith("j") and op != "jmp" and target and int(target.group(1), 16) in index:
            start = index[int(target.group(1), 16)]
            if start < i:
                loops.append((start, i))

    def memory_fmas(span):
        return sum(1 for _, op, args in instructions[span[0]:span[1]]
                   if op.startswith("vfmadd231") and "(" in args)

    # The loops over U's rows and over x's features both hold whole rows of memory FMAs; the
    # product's comes last in the source, and the gates after it are straight-line code.
    rows = [span for span in loops if memory_fmas(span) and memory_fmas(span) % vectors == 0]
    if not rows:
        raise RuntimeError(f"no loop of {vectors} FMAs a row in the chunk's code")
    product = rows[-1]
    if any(start > product[1] for start, _ in loops):
        raise RuntimeError("a loop after the product's: the gates' code is not what was expected")
    end = next((i for i, (_, op, _) in enumerate(instructions) if op.startswith("ret")), None)
    if end is None:
        raise RuntimeError("the chunk's code has no return")
    return sum(1 for _, op, _ in instructions[product[1] + 1:end] if MULTIPLY_ADD.match(op))


def count_step(isa, vectors, workdir):
    """(chunks, the gates' multiply-adds a step) of the latency step whose grouped U has
    `vectors` vectors a row (PackedGRU.latency_vectors), compiled as the package compiles it.
    Needs g++ and objdump."""
    defines = isa_defines(isa)
    chunks = plan(vectors, int(defines["FASTGRU_LATENCY_GROUPS"]))
    src = workdir / f"step_{isa}_{vectors}.cpp"
    src.write_text(chunk_source(isa, defines, chunks))
    obj = src.with_suffix(".o")
    subprocess.run(["g++", "-O3", "-DNDEBUG", "-std=c++17", "-fno-math-errno",
                    *FLAGS[isa].split(), f"-I{CPP}", "-c", str(src), "-o", str(obj)], check=True)
    functions = disassemble(obj)
    gates = sum(gate_multiply_adds(functions[f"chunk{i}"], 3 * g + tv)
                for i, (g, tv, _) in enumerate(chunks))
    return chunks, gates


def fma_rate(isa, workdir):
    vec = {"avx512": ("__m512", "_mm512_fmadd_ps", "_mm512_set1_ps"),
           "avx2": ("__m256", "_mm256_fmadd_ps", "_mm256_set1_ps")}[isa]
    src = workdir / f"rate_{isa}.cpp"
    src.write_text(FMA_RATE_SOURCE)
    exe = workdir / f"rate_{isa}"
    subprocess.run(["g++", "-O2", *FLAGS[isa].split(), f"-DVEC={vec[0]}", f"-DFMA={vec[1]}",
                    f"-DSPLAT={vec[2]}", str(src), "-o", str(exe)], check=True)
    return float(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)


def latency_vectors(isa, units):
    """Vectors a row of U on the package's latency path for GRU(units) on `isa` (0: the path
    is not taken there), or None when this CPU lacks `isa`."""
    import numpy as np
    from fastgru import _core

    if isa not in _core.config()["simd_supported"]:
        return None
    previous = _core.config()["simd"]
    _core.set_simd(isa)
    try:
        weights = [np.zeros(shape, np.float32) for shape in ((1, 3 * units), (units, 3 * units),
                                                             (2, 3 * units))]
        return _core.PackedGRU(*weights, True).latency_vectors
    finally:
        _core.set_simd(previous)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=50)
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for isa in ("avx512", "avx2"):
            vectors = latency_vectors(isa, args.units)
            if vectors is None:
                print(f"{isa}: this CPU does not have it")
                continue
            if vectors == 0:
                print(f"{isa}: GRU({args.units}) does not take the latency path (U too large)")
                continue
            chunks, gates = count_step(isa, vectors, workdir)
            product = args.units * vectors
            projection = vectors  # x*W for one feature: an FMA a vector of the row
            per_step = product + projection + gates
            rate = fma_rate(isa, workdir)
            floor_us = per_step * args.steps / rate * 1e6
            print(f"{isa}: GRU({args.units}), {len(chunks)} chunk(s) {[c[:2] for c in chunks]}, "
                  f"{vectors} vectors a row of U")
            print(f"  multiply-adds a step: product {product} + projection {projection} + gates "
                  f"{gates} = {per_step}")
            print(f"  FMA rate {rate / 1e9:.2f} G/s -> floor {floor_us:.1f} us for {args.steps} "
                  f"steps (product alone {product * args.steps / rate * 1e6:.1f} us)")


if __name__ == "__main__":
    main()
