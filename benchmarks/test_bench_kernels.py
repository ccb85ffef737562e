"""pytest-benchmark suite for the kernels and the seed training epoch.

    python -m pytest benchmarks --benchmark-only -p no:randomly

Each benchmark records GFLOP/s in extra_info next to the float32 NumPy matmul GFLOP/s measured
in the same session at the same thread count (`matmul_gflops`, via fastgru.bench; the BLAS
thread limit needs threadpoolctl), so figures from a noisy machine still come with their
yardstick. Forward FLOPs = 2*B*T*3H*(I+H); forward+backward = 3x that.
"""
import functools

import numpy as np
import pytest

import fastgru
from fastgru import bench

SHAPES = {"seed": (32, 100, 1, 50), "large": (256, 100, 32, 256), "window": (1, 100, 1, 50)}


@functools.lru_cache(maxsize=None)
def matmul_gflops(threads):
    """The yardstick at this thread count (fastgru.bench: BLAS limited with threadpoolctl)."""
    return bench.matmul_baseline(bench.BenchConfig(), threads)["gflops"]


@pytest.fixture
def one_thread():
    """The batch-1 rows: one row is never split across threads; say so by running on one."""
    previous = fastgru.get_num_threads()
    fastgru.set_num_threads(1)
    yield 1
    fastgru.set_num_threads(previous)


def packed_case(batch, steps, input_size, units, seed=0):
    rng = np.random.default_rng(seed)
    scale = 1 / np.sqrt(units)
    x = rng.standard_normal((batch, steps, input_size)).astype(np.float32)
    packed = fastgru.PackedGRU(rng.uniform(-scale, scale, (input_size, 3 * units)),
                               rng.uniform(-scale, scale, (units, 3 * units)),
                               np.zeros((2, 3 * units)), dtype=np.float32)
    return x, packed


def record(benchmark, flops, threads):
    seconds = benchmark.stats.stats.median
    yardstick = matmul_gflops(threads)
    benchmark.extra_info.update(
        threads=threads, simd=fastgru.show_config(mode="dicts")["simd"],
        gflops=round(flops / seconds / 1e9, 1), matmul_gflops=round(yardstick, 1),
        fraction_of_matmul=round(flops / seconds / 1e9 / yardstick, 3))


@pytest.mark.parametrize("shape", ["seed", "large"])
def test_forward(benchmark, shape, threads):
    x, packed = packed_case(*SHAPES[shape])
    benchmark(packed.forward, x)
    record(benchmark, bench.forward_flops(*SHAPES[shape]), threads)


@pytest.mark.parametrize("shape", ["seed", "large"])
def test_forward_backward(benchmark, shape, threads):
    x, packed = packed_case(*SHAPES[shape])
    d_out = np.ones(x.shape[:2] + (SHAPES[shape][3],), np.float32)

    def step():
        _, _, tape = packed.forward_train(x)
        return packed.backward(tape, d_out)

    benchmark(step)
    record(benchmark, 3 * bench.forward_flops(*SHAPES[shape]), threads)


def test_one_window_latency(benchmark, one_thread):
    x, packed = packed_case(*SHAPES["window"])
    benchmark(packed.forward, x)
    record(benchmark, bench.forward_flops(*SHAPES["window"]), 1)
    benchmark.extra_info["microseconds"] = round(benchmark.stats.stats.median * 1e6, 1)


def seed_model(steps):
    """GRU(50) -> Dense(1) with random weights, built for windows of `steps` readings."""
    model = fastgru.Sequential([fastgru.GRU(50, seed=0), fastgru.Dense(1, seed=1)])
    model.build((None, steps, 1))
    return model


def test_one_window_predict(benchmark, one_thread):
    # What a user calls: Sequential.predict on one (1, 100, 1) window (the C++ inference path).
    x = np.random.default_rng(0).standard_normal((1, 100, 1)).astype(np.float32)
    model = seed_model(100)
    benchmark(model.predict, x)
    record(benchmark, bench.forward_flops(*SHAPES["window"]), 1)
    benchmark.extra_info["microseconds"] = round(benchmark.stats.stats.median * 1e6, 2)


def test_stream_step(benchmark, one_thread):
    # One reading through GRU(50) -> Dense(1) with the state carried: model.stream().step.
    stream = seed_model(1).stream()
    reading = np.array([0.5], np.float32)
    benchmark(stream.step, reading)
    record(benchmark, bench.forward_flops(1, 1, 1, 50), 1)
    benchmark.extra_info["microseconds"] = round(benchmark.stats.stats.median * 1e6, 3)


def test_seed_training_epoch(benchmark, threads):
    # 7,900 windows of 100 steps, GRU(50) -> Dense(1), MSE, Adam, batch 32: the seed recipe.
    rng = np.random.default_rng(0)
    series = np.sin(np.arange(8000) * 2 * np.pi / 365.25) + 0.1 * rng.standard_normal(8000)
    X, y = fastgru.make_windows(series.astype(np.float32), window=100)
    X, y = X[:7900], y[:7900]
    model = seed_model(100)
    model.compile(optimizer=fastgru.Adam(1e-3), loss="mse")
    model.fit(X[:64], y[:64], epochs=1, batch_size=32, verbose=0)  # warm up
    benchmark.pedantic(model.fit, args=(X, y), kwargs=dict(epochs=1, batch_size=32, verbose=0),
                       rounds=3, iterations=1)
    record(benchmark, 3 * bench.forward_flops(7900, 100, 1, 50), threads)
