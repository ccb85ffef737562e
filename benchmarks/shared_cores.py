"""Seed epoch at 1 thread, 2 threads fixed and 2 threads adaptive, with a busy process on
every core: the "Shared cores" table of benchmarks/RESULTS.md.

    python benchmarks/shared_cores.py [--rounds 4] [--no-load]

Runs one child process per libgomp spin setting (300,000 pauses, libgomp's default, against
fastgru's default of 1,000), each alternating the three modes epoch by epoch, so every mode
sees the same load. The busy processes (one `while True: pass` per core) are killed at the end.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = r"""
import os, sys, time
import numpy as np
import fastgru as fg
from fastgru import _core
rounds = int(sys.argv[1])
rng = np.random.default_rng(0)
X = rng.standard_normal((7900, 100, 1)).astype(np.float32)
y = rng.standard_normal((7900, 1)).astype(np.float32)
model = fg.Sequential([fg.GRU(50), fg.Dense(1)])
model.compile(optimizer=fg.Adam(1e-3), loss="mse")
model.fit(X[:320], y[:320], epochs=1, batch_size=32, verbose=0)
modes = [("1 thread", 1, False), ("2 fixed", 2, False), ("2 adaptive", 2, True)]
times = {name: [] for name, _, _ in modes}
for _ in range(rounds):
    for name, threads, adaptive in modes:
        fg.set_num_threads(threads)
        _core.set_adaptive_threads(adaptive)
        start = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=32, verbose=0)
        times[name].append(time.perf_counter() - start)
alone = np.array(times["1 thread"])
print(f"{fg.show_config(mode='dicts')['openmp_wait']}; load average {os.getloadavg()[0]:.1f}")
for name, values in times.items():
    values = np.array(values)
    print(f"  {name:>10}: median {np.median(values):.3f} s, ratio to the round's 1-thread epoch "
          f"{np.median(values / alone):.2f}  [{' '.join(f'{v:.2f}' for v in values)}]")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--no-load", action="store_true", help="no busy processes")
    args = parser.parse_args()
    busy = [] if args.no_load else [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 1)]
    try:
        for spin in ("300000", None):
            env = {k: v for k, v in os.environ.items()
                   if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "FASTGRU_ADAPTIVE_THREADS")}
            if spin is not None:
                env["GOMP_SPINCOUNT"] = spin
            subprocess.run([sys.executable, "-c", CHILD, str(args.rounds)], env=env, check=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
