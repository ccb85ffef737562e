"""The workloads (same weights and inputs for every implementation) and the machine's yardstick:
float32 NumPy matmul GFLOP/s at each thread count."""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List

import numpy as np

from ..layers import glorot_uniform
from .harness import BenchConfig, Workload, limit_blas_threads, time_calls


def gru_weights(rng, inputs, units):
    """Keras layout: kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H)."""
    kernel = glorot_uniform((inputs, 3 * units), rng)
    recurrent = glorot_uniform((units, 3 * units), rng)
    bias = rng.uniform(-0.1, 0.1, (2, 3 * units)).astype(np.float32)
    return kernel, recurrent, bias


def model_weights(rng, inputs, units):
    """Keras order: GRU kernel, recurrent_kernel, bias (2, 3H); Dense kernel (H, 1), bias (1,)."""
    return [*gru_weights(rng, inputs, units), glorot_uniform((units, 1), rng),
            rng.uniform(-0.1, 0.1, (1,)).astype(np.float32)]


def series_windows(n_windows, steps, seed):
    """Windows of a noisy sine in [0, 1] as a forecaster feeds them: X (N, T, 1), y (N, 1)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_windows + steps, dtype=np.float64)
    series = 0.5 + 0.4 * np.sin(t / 20.0) + 0.05 * rng.standard_normal(t.shape)
    idx = np.arange(steps)[None, :] + np.arange(n_windows)[:, None]
    X = series[idx][..., None].astype(np.float32)
    y = series[steps:steps + n_windows, None].astype(np.float32)
    return X, y


def forward_flops(batch, steps, input_size, units) -> float:
    """FLOPs of a GRU forward, the two matmuls only: 2*B*T*3H*(I+H) (backward: 2x that)."""
    return 2.0 * batch * steps * 3 * units * (input_size + units)


def make_workloads(cfg: BenchConfig) -> List[Workload]:
    """The selected workloads, deterministic in ``cfg.seed`` (a child process rebuilds the same)."""
    from fastgru import reference

    rng = np.random.default_rng(cfg.seed)
    out: List[Workload] = []
    wanted = {w.upper() for w in cfg.workloads}
    if "A" in wanted:
        X, y = series_windows(cfg.a_windows, cfg.a_steps, cfg.seed)
        out.append(Workload(
            "A", f"training epoch: {cfg.a_windows} windows x {cfg.a_steps} steps x 1, "
                 f"GRU({cfg.a_units})->Dense(1), MSE, Adam, batch {cfg.a_batch}",
            "s", tol=2e-4, per_call=False,
            flops=3 * forward_flops(cfg.a_windows, cfg.a_steps, 1, cfg.a_units),
            data=dict(X=X, y=y, weights=model_weights(rng, 1, cfg.a_units), lr=1e-3,
                      batch=cfg.a_batch, check_n=min(len(X), cfg.check_batches * cfg.a_batch)),
        ))
    if "B" in wanted or "C" in wanted:
        weights = model_weights(rng, 1, cfg.bc_units)
        kernel, recurrent, bias, dk, db = weights
    if "B" in wanted:
        x = rng.uniform(0, 1, (1, cfg.bc_steps, 1)).astype(np.float32)
        out.append(Workload(
            "B", f"one-window predict (1, {cfg.bc_steps}, 1), GRU({cfg.bc_units})->Dense(1)",
            "us", tol=1e-5, data=dict(x=x, weights=weights),
            flops=forward_flops(1, cfg.bc_steps, 1, cfg.bc_units),
            reference=lambda x=x: [reference.gru_forward(x, kernel, recurrent, bias)[1] @ dk + db],
        ))
    if "C" in wanted:
        seq = rng.uniform(0, 1, (cfg.check_steps, 1)).astype(np.float32)
        out.append(Workload(
            "C", f"streaming step: one reading through GRU({cfg.bc_units})->Dense(1), carried state",
            "us", tol=1e-5, data=dict(seq=seq, weights=weights),
            flops=forward_flops(1, 1, 1, cfg.bc_units),
            reference=lambda seq=seq: [
                reference.gru_forward(seq[None], kernel, recurrent, bias)[0][0] @ dk + db],
        ))
    if "D" in wanted:
        B, T, I, H = cfg.d_batch, cfg.d_steps, cfg.d_inputs, cfg.d_units
        w = gru_weights(rng, I, H)
        x = rng.standard_normal((B, T, I)).astype(np.float32)
        d_out = rng.standard_normal((B, T, H)).astype(np.float32)
        flops = forward_flops(B, T, I, H)
        data = dict(x=x, weights=w, d_out=d_out)

        def ref_fwd():
            return list(reference.gru_forward(x, *w))

        def ref_train():
            _, _, tape = reference.gru_forward_train(x, *w)
            g = reference.gru_backward(tape, d_out=d_out)
            return [g.dx, g.dkernel, g.drecurrent_kernel, g.dbias]

        out.append(Workload("D.fwd", f"forward B={B} T={T} I={I} H={H}", "ms", tol=1e-4,
                            data=data, flops=flops, reference=ref_fwd))
        out.append(Workload("D.fwd+bwd", f"forward+backward B={B} T={T} I={I} H={H}", "ms",
                            tol=1e-3, data=data, flops=3 * flops, reference=ref_train))
    return out


def matmul_baseline(cfg: BenchConfig, threads: int) -> Dict[str, Any]:
    """float32 n x n NumPy matmul GFLOP/s (2 n^3 FLOPs) at ``threads`` BLAS threads."""
    n = cfg.matmul_n
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    limit = limit_blas_threads(threads)
    note = "" if limit is not None else "threadpoolctl not installed: BLAS at its default thread count"
    with limit or contextlib.nullcontext():
        stats = time_calls(lambda: a @ b, max(3, cfg.repeats), 1, True, cfg.min_rep_seconds)
    gflops = 2.0 * n ** 3 / stats["median"] / 1e9
    return dict(n=n, threads=threads, median_s=stats["median"], gflops=gflops, note=note)


def adam_epsilon() -> float:
    """fastgru's (Keras') Adam epsilon, given to every implementation's Adam in workload A."""
    import fastgru as fg

    return float(fg.Adam().epsilon)
