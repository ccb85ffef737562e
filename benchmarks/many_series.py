"""Many series: series per second for forecast_many run locally (one process, a process pool) and
on a dask LocalCluster, and local against global models on many short series.

    python benchmarks/many_series.py                 # 1,000 series x 500 steps (minutes)
    python benchmarks/many_series.py --quick         # 40 series: checks the script, not speed
    python benchmarks/many_series.py --part accuracy # only local vs global on short series

Every configuration forecasts the same frame with the same settings and seed; the script
checks that each gives the same forecasts bit for bit before it reports a rate.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import fastgru
from fastgru import backtest_many, forecast_many

SPEED_PARAMS = dict(window=24, units=16, epochs=3, batch_size=32, seed=0)
SHORT_PARAMS = dict(window=12, units=16, epochs=20, batch_size=32, seed=0)


def synthetic(n_series: int, steps: int, seed: int = 0) -> pd.DataFrame:
    """Long frame of ``n_series`` daily series: a level, a weekly or monthly cycle of its own
    amplitude and phase, and AR(1) noise; starts staggered over a year."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    frames = []
    for i in range(n_series):
        period = (7, 30.4, 12)[i % 3]
        noise = np.zeros(steps)
        eps = rng.normal(0, 1, steps)
        for k in range(1, steps):
            noise[k] = 0.7 * noise[k - 1] + eps[k]
        y = (rng.uniform(10, 100) + rng.uniform(1, 10) * np.sin(2 * np.pi * t / period
                                                                 + rng.uniform(0, 6.3))
             + rng.uniform(0.2, 2) * noise)
        start = pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(rng.integers(0, 365)))
        frames.append(pd.DataFrame({"unique_id": f"series_{i:05d}",
                                    "ds": pd.date_range(start, periods=steps, freq="D"), "y": y}))
    return pd.concat(frames, ignore_index=True)


def timed(fn, reference=None):
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    if reference is not None:
        pd.testing.assert_frame_equal(out, reference, check_exact=True)
    return out, seconds


def speed(n_series, steps, workers, threads_series):
    df = synthetic(n_series, steps)
    h = 7
    print(f"# {n_series} series x {steps} steps, {SPEED_PARAMS}, horizon {h}; "
          f"{workers} workers", flush=True)
    print("| run | series | seconds | series / s |\n|---|---|---|---|", flush=True)

    def row(label, n, s):
        print(f"| {label} | {n} | {s:.1f} | {n / s:.1f} |", flush=True)

    previous = fastgru.get_num_threads()
    # one process: kernel threads against one thread, on the same first series
    few = df[df["unique_id"].isin(df["unique_id"].unique()[:threads_series])]
    fastgru.set_num_threads(1)
    few_ref, s = timed(lambda: forecast_many(few, h, n_jobs=1, **SPEED_PARAMS))
    row("local sequential, 1 kernel thread", threads_series, s)
    fastgru.set_num_threads(workers)
    _, s = timed(lambda: forecast_many(few, h, n_jobs=1, **SPEED_PARAMS), few_ref)
    row(f"local sequential, {workers} kernel threads", threads_series, s)
    fastgru.set_num_threads(1)
    ref, s = timed(lambda: forecast_many(df, h, n_jobs=1, **SPEED_PARAMS))
    row("local sequential (1 process, 1 kernel thread)", n_series, s)
    fastgru.set_num_threads(previous)
    _, s = timed(lambda: forecast_many(df, h, n_jobs=workers, **SPEED_PARAMS), ref)
    row(f"local parallel ({workers} processes x 1 thread, pool start included)", n_series, s)
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        print(f"(LocalCluster start: {time.perf_counter() - t0:.1f} s, not counted)", flush=True)
        _, s = timed(lambda: forecast_many(df, h, client=client, progress=False,
                                           **SPEED_PARAMS), ref)
        row(f"LocalCluster ({workers} worker processes x 1 thread)", n_series, s)
        _, s = timed(lambda: forecast_many(df, h, client=client, progress=False,
                                           series_per_task=1, **SPEED_PARAMS), ref)
        row(f"LocalCluster, one series per task ({n_series} tasks)", n_series, s)


def accuracy(n_series, steps, test_size):
    df = synthetic(n_series, steps, seed=1)
    print(f"# {n_series} series x {steps} steps, last {test_size} held out, {SHORT_PARAMS}",
          flush=True)
    print("| mode | GRU beats persistence | median skill | median RMSE | seconds |\n"
          "|---|---|---|---|---|")
    # local models also trained 10x longer: a short series gives them few gradient steps
    for mode, extra in (("local", {}), ("local", {"epochs": 200}), ("global", {})):
        t0 = time.perf_counter()
        result = backtest_many(df, test_size, mode=mode, **{**SHORT_PARAMS, **extra})
        s = time.perf_counter() - t0
        label = f"{mode}, epochs={extra['epochs']}" if extra else mode
        print(f"| {label} | {result.summary['share_beating_persistence']:.1%} | "
              f"{result.summary['median_skill']:+.1%} | {result.metrics['rmse'].median():.3f} | "
              f"{s:.1f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-series", type=int, default=100,
                        help="series for the kernel-threads comparison (it is slow under load)")
    parser.add_argument("--short-series", type=int, default=300)
    parser.add_argument("--short-steps", type=int, default=60)
    parser.add_argument("--part", choices=("all", "speed", "accuracy"), default="all")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    fastgru.show_config()
    if args.quick:
        args.series, args.steps, args.short_series, args.threads_series = 40, 100, 20, 10
    if args.part in ("all", "speed"):
        speed(args.series, args.steps, args.workers, args.threads_series)
    if args.part in ("all", "accuracy"):
        accuracy(args.short_series, args.short_steps, test_size=8)


if __name__ == "__main__":
    main()
