"""One optimizer step on fresh state, and on state left by zero gradients: the "Moments that
decay to subnormal" section of benchmarks/RESULTS.md.

    python benchmarks/subnormal_state.py [--params 8001] [--zero-steps 1500]

Weights whose gradient is exactly zero (a saturated unit's, a dead input's) see their moments
decay geometrically; in round-to-nearest such a value ends stuck at the smallest subnormal
(m * 0.9 rounds back to it), and every arithmetic operation on a subnormal costs the CPU a
microcode assist. fastgru stores such values as zero (optimizers.py, _flush_subnormal); run
this script against an older build (PYTHONPATH=<its python/>) to see the difference.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import fastgru as fg
from fastgru.bench.run import cpu_name
from fastgru import optimizers


def subnormal_count(state: np.ndarray) -> int:
    return int(np.count_nonzero((state != 0) & (np.abs(state) < np.finfo(state.dtype).tiny)))


def median_step_us(opt, params, grads, steps=300) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        opt.step(params, grads)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=8001,
                        help="parameters (8001: GRU(50) -> Dense(1) on one feature)")
    parser.add_argument("--zero-steps", type=int, default=1500,
                        help="zero-gradient steps before the second timing")
    args = parser.parse_args()
    print(f"fastgru {fg.__version__}, NumPy {np.__version__}, {cpu_name()}; "
          f"{args.params} float32 parameters, median of 300 steps")
    rng = np.random.default_rng(0)
    makers = [("Adam", lambda: optimizers.Adam()),
              ("AdamW", lambda: optimizers.AdamW()),
              ("SGD(momentum=0.9)", lambda: optimizers.SGD(momentum=0.9)),
              ("RMSprop", lambda: optimizers.RMSprop())]
    print(f"{'optimizer':<20} {'fresh state':>12} {'after zeros':>12} {'ratio':>6}  subnormal values left")
    for name, make in makers:
        params = rng.standard_normal(args.params).astype(np.float32)
        grads = (rng.standard_normal(args.params) * 1e-2).astype(np.float32)
        opt = make()
        opt.build(params)
        fresh = median_step_us(opt, params, grads)
        zeros = np.zeros_like(grads)
        for _ in range(args.zero_steps):
            opt.step(params, zeros)
        stale = median_step_us(opt, params, zeros)
        state = [a for a in (getattr(opt, n, None) for n in ("m", "v", "velocity")) if a is not None]
        left = sum(subnormal_count(a) for a in state)
        print(f"{name:<20} {fresh:>9.1f} us {stale:>9.1f} us {stale / fresh:>5.1f}x  {left}")


if __name__ == "__main__":
    main()
