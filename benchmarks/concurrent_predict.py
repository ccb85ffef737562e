"""Throughput of `predict` from several Python threads: one model shared by all of them, against
one model per thread (nothing shared): the "Several threads predicting on one model" section
of benchmarks/RESULTS.md.

    python benchmarks/concurrent_predict.py [--seconds 2] [--rounds 3]

GRU(50) -> Dense(1) on (batch, 100, 1) windows, fastgru at 1 kernel thread per call (a
service's usual setting: its own threads are the parallelism). Run it against an older build
with PYTHONPATH=<its python/> to compare.
"""
from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np

import fastgru as fg
from fastgru.bench.run import cpu_name


def throughput(models, x, seconds: float) -> float:
    """Windows a second with one thread per entry of ``models`` (entries may repeat)."""
    counts = [0] * len(models)
    stop = threading.Event()

    def run(i: int) -> None:
        model, n = models[i], 0
        while not stop.is_set():
            model.predict(x)
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(models))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) * len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fg.set_num_threads(1)
    cores = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    shared = fg.Sequential([fg.GRU(50), fg.Dense(1)])
    shared.build((None, 100, 1))
    own = []
    for _ in range(cores):
        m = fg.Sequential([fg.GRU(50), fg.Dense(1)])
        m.build((None, 100, 1))
        m.set_weights(shared.get_weights())
        own.append(m)
    config = fg.show_config(mode="dicts")
    print(f"fastgru {fg.__version__}, {cpu_name()}, simd {config['simd']}, {cores} cores, "
          f"1 kernel thread a call; windows/s, best of {args.rounds} rounds of {args.seconds} s")
    for batch in (1, 32):
        x = rng.standard_normal((batch, 100, 1)).astype(np.float32)
        shared.predict(x)
        for m in own:
            m.predict(x)
        for threads in sorted({1, 2, cores}):
            best = {"one shared model": 0.0, "a model per thread": 0.0}
            for _ in range(args.rounds):
                best["one shared model"] = max(best["one shared model"],
                                               throughput([shared] * threads, x, args.seconds))
                best["a model per thread"] = max(best["a model per thread"],
                                                 throughput(own[:threads], x, args.seconds))
            print(f"batch {batch:>2}, {threads} thread(s): "
                  + ", ".join(f"{name} {value:,.0f}" for name, value in best.items()))


if __name__ == "__main__":
    main()
