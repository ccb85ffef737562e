"""``fastgru bench``: time fastgru against the GRUs of PyTorch, Keras/TensorFlow and ONNX Runtime.

Every implementation runs on the same weights and inputs. Before a peer is timed, its result is
compared with fastgru's (max abs difference, normalised by max(1, max|fastgru|)); a peer that
disagrees beyond the workload's tolerance is reported as MISMATCH, not timed, and the command
exits 1. fastgru itself is compared with the NumPy oracle ``fastgru.reference`` the same way.
Missing peers are skipped with a note.

Workloads (float32):
  A  training epoch: 7,900 windows x 100 steps x 1 feature, GRU(50) -> Dense(1), MSE, Adam,
     batch 32, shuffled -- seconds per epoch
  B  one-window predict (1, 100, 1) through that model -- microseconds per call
  C  streaming: one reading through GRU(50) -> Dense(1) with carried state -- us per step
  D  B=256, T=100, I=32, H=256: forward (D.fwd) and forward+backward (D.fwd+bwd) -- ms and
     GFLOP/s, with forward FLOPs = 2*B*T*3H*(I+H) (the two matmuls; gate arithmetic not
     counted) and forward+backward = 3x that; next to float32 matmul GFLOP/s measured in the
     same run

Timing: warm-up calls, then ``--repeats`` repetitions (each at least ~50 ms of calls for the
short workloads, one epoch for A); reported per call: median, interquartile range, min-max.
``ratio`` = median / median of the first fastgru implementation of the same workload and
thread count (>1: slower than fastgru).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

__all__ = ["main", "run_benchmarks", "BenchConfig", "Workload", "Candidate", "Runner", "Peer",
           "PEERS", "Mismatch"]

ALL_WORKLOADS = ("A", "B", "C", "D")


# ------------------------------------------------------------------------------- structures
@dataclasses.dataclass
class BenchConfig:
    workloads: Sequence[str] = ALL_WORKLOADS
    threads: Sequence[int] = (1,)
    repeats: int = 7
    epoch_repeats: int = 3
    warmup: int = 3
    quick: bool = False
    peers: Optional[Sequence[str]] = None  # None: every installed peer
    min_rep_seconds: float = 0.05
    max_seconds: Optional[float] = 120.0  # time budget per implementation and thread count
    seed: int = 0
    # sizes (set by sizes_for(quick))
    a_windows: int = 7900
    a_steps: int = 100
    a_units: int = 50
    a_batch: int = 32
    bc_steps: int = 100
    bc_units: int = 50
    d_batch: int = 256
    d_steps: int = 100
    d_inputs: int = 32
    d_units: int = 256
    matmul_n: int = 2048
    check_steps: int = 20  # stream length used by the C agreement check
    check_batches: int = 3  # training batches used by the A agreement check


def sizes_for(quick: bool) -> Dict[str, int]:
    if not quick:
        return {}
    return dict(a_windows=96, a_steps=8, a_units=6, a_batch=32, bc_steps=8, bc_units=6,
                d_batch=4, d_steps=5, d_inputs=3, d_units=8, matmul_n=128, check_steps=5,
                repeats=3, epoch_repeats=2, warmup=1, min_rep_seconds=0.002)


@dataclasses.dataclass
class Runner:
    """A prepared implementation: ``run()`` is what is timed; ``check()`` returns the arrays
    that are compared with fastgru's (same order in every implementation of a workload)."""

    run: Callable[[], Any]
    check: Callable[[], Sequence[np.ndarray]]
    note: str = ""


@dataclasses.dataclass
class Candidate:
    name: str  # e.g. "torch nn.GRU (inference_mode)"
    library: str  # "fastgru", "torch", "onnxruntime", "tensorflow", ...
    build: Callable[[int], Runner]  # threads -> Runner


@dataclasses.dataclass
class Workload:
    key: str
    title: str
    unit: str  # "s", "us" or "ms"
    tol: float
    data: Dict[str, Any]
    flops: Optional[float] = None  # per call
    per_call: bool = True  # False: one repetition = one call (training epochs)
    reference: Optional[Callable[[], Sequence[np.ndarray]]] = None  # the NumPy oracle


class SkipCandidate(Exception):
    """Raised by ``Candidate.build`` when it cannot run here (the message says why)."""


class Mismatch(Exception):
    pass


@dataclasses.dataclass
class Peer:
    library: str
    module: str  # what must be importable
    candidates: Callable[[Workload], List[Candidate]]
    # run in a child process per thread count (for libraries whose thread pools are fixed at
    # start-up, and so that their pools do not disturb the other libraries' timings)
    isolate: bool = False


UNIT_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6}


# ------------------------------------------------------------------------------- helpers
def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _glorot(rng, shape):
    limit = np.sqrt(6.0 / (shape[0] + shape[-1]))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def _gru_weights(rng, inputs, units):
    kernel = _glorot(rng, (inputs, 3 * units))
    recurrent = _glorot(rng, (units, 3 * units))
    bias = rng.uniform(-0.1, 0.1, (2, 3 * units)).astype(np.float32)
    return kernel, recurrent, bias


def _model_weights(rng, inputs, units):
    """Keras order: GRU kernel, recurrent_kernel, bias (2, 3H); Dense kernel (H, 1), bias (1,)."""
    return [*_gru_weights(rng, inputs, units), _glorot(rng, (units, 1)),
            rng.uniform(-0.1, 0.1, (1,)).astype(np.float32)]


def _series_windows(n_windows, steps, seed):
    """Windows of a noisy sine in [0, 1] as a forecaster feeds them: X (N, T, 1), y (N, 1)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_windows + steps, dtype=np.float64)
    series = 0.5 + 0.4 * np.sin(t / 20.0) + 0.05 * rng.standard_normal(t.shape)
    idx = np.arange(steps)[None, :] + np.arange(n_windows)[:, None]
    X = series[idx][..., None].astype(np.float32)
    y = series[steps:steps + n_windows, None].astype(np.float32)
    return X, y


def max_diff(got: Sequence[np.ndarray], want: Sequence[np.ndarray]):
    """``(max abs difference, the same divided by max(1, max|want|))`` over paired arrays."""
    got, want = list(got), list(want)
    if len(got) != len(want):
        raise Mismatch(f"returned {len(got)} arrays, fastgru {len(want)}")
    worst_abs, worst_rel = 0.0, 0.0
    for k, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            raise Mismatch(f"array {k} has shape {g.shape}, fastgru's {w.shape}")
        if not np.all(np.isfinite(g)):
            return float("inf"), float("inf")
        d = float(np.max(np.abs(g - w))) if g.size else 0.0
        worst_abs = max(worst_abs, d)
        worst_rel = max(worst_rel, d / max(1.0, float(np.max(np.abs(w))) if w.size else 1.0))
    return worst_abs, worst_rel


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int, per_call: bool,
               min_rep_seconds: float, max_seconds: Optional[float] = None) -> Dict[str, float]:
    """Per-call seconds: median, q1, q3, min, max over ``repeats`` repetitions.

    With ``max_seconds``, warm-up and repetitions stop once that much time is spent (at least
    one timed repetition always runs); ``repeats`` in the result says how many ran.
    """
    start = time.perf_counter()
    over = lambda: max_seconds is not None and time.perf_counter() - start > max_seconds  # noqa: E731
    for _ in range(warmup):
        fn()
        if over():
            break
    number = 1
    if per_call:  # calls per repetition so that one repetition lasts >= min_rep_seconds
        while True:
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_rep_seconds or number >= 1 << 20:
                break
            number = max(number * 2, int(number * 1.2 * min_rep_seconds / max(elapsed, 1e-9)))
    samples: List[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
        if over():
            break
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    return dict(median=float(med), q1=float(q1), q3=float(q3), min=float(min(samples)),
                max=float(max(samples)), repeats=len(samples), number=number)


# ------------------------------------------------------------------------------- workloads
def make_workloads(cfg: BenchConfig) -> List[Workload]:
    import fastgru as fg
    from fastgru import reference

    rng = np.random.default_rng(cfg.seed)
    out: List[Workload] = []
    wanted = {w.upper() for w in cfg.workloads}
    if "A" in wanted:
        X, y = _series_windows(cfg.a_windows, cfg.a_steps, cfg.seed)
        out.append(Workload(
            "A", f"training epoch: {cfg.a_windows} windows x {cfg.a_steps} steps x 1, "
                 f"GRU({cfg.a_units})->Dense(1), MSE, Adam, batch {cfg.a_batch}",
            "s", tol=2e-4, per_call=False,
            data=dict(X=X, y=y, weights=_model_weights(rng, 1, cfg.a_units), lr=1e-3,
                      batch=cfg.a_batch, check_n=min(len(X), cfg.check_batches * cfg.a_batch)),
        ))
    if "B" in wanted or "C" in wanted:
        weights = _model_weights(rng, 1, cfg.bc_units)
        kernel, recurrent, bias, dk, db = weights
    if "B" in wanted:
        x = rng.uniform(0, 1, (1, cfg.bc_steps, 1)).astype(np.float32)
        out.append(Workload(
            "B", f"one-window predict (1, {cfg.bc_steps}, 1), GRU({cfg.bc_units})->Dense(1)",
            "us", tol=1e-5, data=dict(x=x, weights=weights),
            reference=lambda x=x: [reference.gru_forward(x, kernel, recurrent, bias)[1] @ dk + db],
        ))
    if "C" in wanted:
        seq = rng.uniform(0, 1, (cfg.check_steps, 1)).astype(np.float32)
        out.append(Workload(
            "C", f"streaming step: one reading through GRU({cfg.bc_units})->Dense(1), carried state",
            "us", tol=1e-5, data=dict(seq=seq, weights=weights),
            reference=lambda seq=seq: [
                reference.gru_forward(seq[None], kernel, recurrent, bias)[0][0] @ dk + db],
        ))
    if "D" in wanted:
        B, T, I, H = cfg.d_batch, cfg.d_steps, cfg.d_inputs, cfg.d_units
        w = _gru_weights(rng, I, H)
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


def _carried_state_runner(readings, zero_state, step) -> "Runner":
    """A streaming runner: ``step(reading, h) -> (output, h)`` over ``readings`` in a cycle, the
    state carried between calls; the check replays all readings in order from ``zero_state()``."""
    state = {"h": zero_state(), "i": 0}

    def run():
        i = state["i"] = (state["i"] + 1) % len(readings)
        y, state["h"] = step(readings[i], state["h"])
        return y

    def check():
        state["h"], state["i"] = zero_state(), -1
        return [np.concatenate([run() for _ in readings])]

    return Runner(run, check)


def forward_flops(batch, steps, input_size, units) -> float:
    """FLOPs of a GRU forward, the two matmuls only: 2*B*T*3H*(I+H) (backward: 2x that)."""
    return 2.0 * batch * steps * 3 * units * (input_size + units)


# ------------------------------------------------------------------------------- fastgru
class KernelTrainer:
    """GRU -> Dense(1), MSE, Adam written directly on ``fastgru.PackedGRU``: the kernels with the
    least Python around them (what ``Sequential.fit`` does, minus its bookkeeping)."""

    def __init__(self, weights, lr=1e-3, eps=1e-7):
        import fastgru as fg

        self.params = [np.array(w, np.float32) for w in weights]
        self.packed = fg.PackedGRU(*self.params[:3])
        self.optimizers = [fg.Adam(learning_rate=lr, epsilon=eps) for _ in self.params]

    def train_batch(self, xb, yb):
        kernel, recurrent, bias, dk, db = self.params
        _, h, tape = self.packed.forward_train(xb)
        diff = h @ dk + db - yb
        d_pred = (2.0 / diff.size) * diff
        d_h = d_pred @ dk.T
        g = self.packed.backward(tape, d_h_last=d_h, need_dx=False)
        grads = [g.dkernel, g.drecurrent_kernel, g.dbias, h.T @ d_pred, d_pred.sum(0)]
        for opt, p, grad in zip(self.optimizers, self.params, grads):
            opt.step(p, grad)
        self.packed.update(kernel, recurrent, bias)
        return float(np.mean(diff * diff))

    def fit_epoch(self, X, y, batch, rng=None):
        order = np.arange(len(X)) if rng is None else rng.permutation(len(X))
        for i in range(0, len(X), batch):
            idx = order[i:i + batch]
            self.train_batch(X[idx], y[idx])

    def predict(self, X):
        dk, db = self.params[3:]
        return self.packed.forward(X)[1] @ dk + db


def _fastgru_sequential(units, weights, steps, lr=None):
    """A fastgru ``Sequential([GRU(units), Dense(1)])`` holding ``weights`` (compiled with Adam
    when ``lr`` is given)."""
    import fastgru as fg

    model = fg.Sequential([fg.GRU(units), fg.Dense(1)])
    if lr is not None:
        model.compile(optimizer=fg.Adam(learning_rate=lr), loss="mse")
    model.build((None, steps, 1))
    model.set_weights([np.array(w) for w in weights])
    return model


def _fastgru_adam_eps():
    """fastgru's (Keras') Adam epsilon, given to every peer's Adam."""
    import fastgru as fg

    return float(fg.Adam().epsilon)


def fastgru_candidates(w: Workload) -> List[Candidate]:
    import fastgru as fg

    def threads(n):
        fg.set_num_threads(n)

    c: List[Candidate] = []
    d = w.data
    if w.key == "A":
        X, y, ws, lr, batch, n = d["X"], d["y"], d["weights"], d["lr"], d["batch"], d["check_n"]
        units, steps = ws[1].shape[0], X.shape[1]

        def sequential(nt):
            threads(nt)

            def check():
                m = _fastgru_sequential(units, ws, steps, lr)
                m.fit(X[:n], y[:n], epochs=1, batch_size=batch, shuffle=False, verbose=0)
                return [m.predict(X[:n])]

            m = _fastgru_sequential(units, ws, steps, lr)
            return Runner(lambda: m.fit(X, y, epochs=1, batch_size=batch, shuffle=True, verbose=0),
                          check)

        def kernels(nt):
            threads(nt)
            eps = _fastgru_adam_eps()

            def check():
                t = KernelTrainer(ws, lr, eps)
                t.fit_epoch(X[:n], y[:n], batch)
                return [t.predict(X[:n])]

            t, rng = KernelTrainer(ws, lr, eps), np.random.default_rng(0)
            return Runner(lambda: t.fit_epoch(X, y, batch, rng), check)

        c.append(Candidate("fastgru Sequential.fit", "fastgru", sequential))
        c.append(Candidate("fastgru PackedGRU loop (kernels + NumPy Dense, fastgru Adam)",
                           "fastgru", kernels))
    elif w.key == "B":
        x, ws = d["x"], d["weights"]
        kernel, recurrent, bias, dk, db = ws

        def predict(nt):
            threads(nt)
            m = _fastgru_sequential(recurrent.shape[0], ws, x.shape[1])
            return Runner(lambda: m.predict(x), lambda: [m.predict(x)])

        def packed(nt):
            threads(nt)
            p = fg.PackedGRU(kernel, recurrent, bias)
            f = lambda: p.forward(x)[1] @ dk + db  # noqa: E731
            return Runner(f, lambda: [f()])

        c.append(Candidate("fastgru Sequential.predict", "fastgru", predict))
        c.append(Candidate("fastgru PackedGRU.forward + NumPy Dense", "fastgru", packed))
    elif w.key == "C":
        seq, ws = d["seq"], d["weights"]
        kernel, recurrent, bias, dk, db = ws

        def stream(nt):
            threads(nt)
            st = _fastgru_sequential(recurrent.shape[0], ws, 1).stream()

            def check():
                st.reset()
                return [np.concatenate([np.asarray(st.step(v)).reshape(1, -1) for v in seq])]

            state = {"i": 0}

            def step():
                state["i"] = (state["i"] + 1) % len(seq)
                return st.step(seq[state["i"]])

            return Runner(step, check)

        def packed(nt):
            threads(nt)
            p = fg.PackedGRU(kernel, recurrent, bias)

            def step(x, h):
                _, h = p.forward(x, h)
                return h @ dk + db, h

            return _carried_state_runner(seq.reshape(len(seq), 1, 1, 1),
                                         lambda: np.zeros((1, recurrent.shape[0]), np.float32),
                                         step)

        c.append(Candidate("fastgru stream().step", "fastgru", stream))
        c.append(Candidate("fastgru PackedGRU.forward T=1 + NumPy Dense", "fastgru", packed))
    elif w.key == "D.fwd":
        x, ws = d["x"], d["weights"]

        def fwd(nt):
            threads(nt)
            p = fg.PackedGRU(*ws)
            return Runner(lambda: p.forward(x), lambda: list(p.forward(x)))

        c.append(Candidate("fastgru PackedGRU.forward", "fastgru", fwd))
    elif w.key == "D.fwd+bwd":
        x, ws, d_out = d["x"], d["weights"], d["d_out"]

        def train(nt):
            threads(nt)
            p = fg.PackedGRU(*ws)

            def f():
                _, _, tape = p.forward_train(x)
                g = p.backward(tape, d_out=d_out)
                return [g.dx, g.dkernel, g.drecurrent_kernel, g.dbias]

            return Runner(f, f)

        c.append(Candidate("fastgru PackedGRU.forward_train+backward", "fastgru", train))
    return c


# ------------------------------------------------------------------------------- PyTorch
def torch_candidates(w: Workload) -> List[Candidate]:
    import torch

    from . import interop

    def threads(n):
        torch.set_num_threads(n)

    def gru_module(kernel, recurrent, bias):
        return interop.to_torch((kernel, recurrent, bias))

    class Net(torch.nn.Module):  # what a PyTorch user writes for GRU(H) -> Dense(1)
        def __init__(self, ws):
            super().__init__()
            self.gru = gru_module(*ws[:3])
            self.fc = torch.nn.Linear(ws[1].shape[0], 1)
            with torch.no_grad():
                self.fc.weight.copy_(torch.from_numpy(ws[3].T.copy()))
                self.fc.bias.copy_(torch.from_numpy(ws[4]))

        def forward(self, x):
            out, _ = self.gru(x)
            return self.fc(out[:, -1])

    d = w.data
    c: List[Candidate] = []
    if w.key == "A":
        X, y, ws, lr, batch, n = d["X"], d["y"], d["weights"], d["lr"], d["batch"], d["check_n"]
        eps = _fastgru_adam_eps()
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def make():
            net = Net(ws).train()
            return net, torch.optim.Adam(net.parameters(), lr=lr, eps=eps), torch.nn.MSELoss()

        def epoch(net, opt, loss_fn, order):
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                opt.zero_grad()
                loss = loss_fn(net(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()

        def build(nt):
            threads(nt)

            def check():
                net, opt, loss_fn = make()
                epoch(net, opt, loss_fn, torch.arange(n))
                with torch.inference_mode():
                    return [net(Xt[:n]).numpy()]

            net, opt, loss_fn = make()
            return Runner(lambda: epoch(net, opt, loss_fn, torch.randperm(len(Xt))), check,
                          note=f"Adam eps={eps:g} to match fastgru")

        c.append(Candidate("torch nn.GRU+Linear, Adam loop", "torch", build))
    elif w.key == "B":
        x, ws = d["x"], d["weights"]

        def build(nt):
            threads(nt)
            net = Net(ws).eval()

            def f():
                with torch.inference_mode():
                    return net(torch.from_numpy(x)).numpy()

            return Runner(f, lambda: [f()])

        c.append(Candidate("torch nn.GRU+Linear (inference_mode)", "torch", build))
    elif w.key == "C":
        seq, ws = d["seq"], d["weights"]

        def build(nt):
            threads(nt)
            gru = gru_module(*ws[:3])
            cell = torch.nn.GRUCell(gru.input_size, gru.hidden_size)
            fc = torch.nn.Linear(gru.hidden_size, 1)
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(gru, name + "_l0"))
                fc.weight.copy_(torch.from_numpy(ws[3].T.copy()))
                fc.bias.copy_(torch.from_numpy(ws[4]))
            def step(x, h):
                with torch.inference_mode():
                    h = cell(x, h)
                    return fc(h).numpy(), h

            return _carried_state_runner([torch.from_numpy(v.reshape(1, -1)) for v in seq],
                                         lambda: torch.zeros(1, gru.hidden_size), step)

        c.append(Candidate("torch GRUCell+Linear (inference_mode)", "torch", build))
    elif w.key == "D.fwd":
        x, ws = d["x"], d["weights"]

        def build(nt):
            threads(nt)
            gru, xt = gru_module(*ws), torch.from_numpy(x)

            def f():
                with torch.inference_mode():
                    out, h = gru(xt)
                return [out.numpy(), h[0].numpy()]

            return Runner(f, f)

        c.append(Candidate("torch nn.GRU (inference_mode)", "torch", build))
    elif w.key == "D.fwd+bwd":
        x, ws, d_out = d["x"], d["weights"], d["d_out"]

        def build(nt):
            threads(nt)
            gru = gru_module(*ws).train()
            xt, gt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(d_out)

            def f():
                xt.grad = None
                for p in gru.parameters():
                    p.grad = None
                out, _ = gru(xt)
                out.backward(gt)

            def check():
                f()
                k, r, b = interop.torch_to_keras(gru.weight_ih_l0.grad, gru.weight_hh_l0.grad,
                                                 gru.bias_ih_l0.grad, gru.bias_hh_l0.grad)
                return [xt.grad.numpy(), k, r, b]

            return Runner(f, check)

        c.append(Candidate("torch nn.GRU forward+backward (autograd)", "torch", build))
    return c


# ------------------------------------------------------------------------------- ONNX Runtime
def onnxruntime_candidates(w: Workload) -> List[Candidate]:
    import onnxruntime as ort

    from . import interop

    def session(proto, nt):
        so = ort.SessionOptions()
        so.intra_op_num_threads = nt
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        return ort.InferenceSession(proto.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])

    d = w.data
    c: List[Candidate] = []
    if w.key == "B":
        x, ws = d["x"], d["weights"]

        def build(nt):
            s = session(interop.to_onnx_gru(*ws[:3], dense=(ws[3], ws[4])), nt)
            feed = {"x": x, "h0": np.zeros((1, ws[1].shape[0]), np.float32)}
            f = lambda: s.run(["prediction"], feed)[0]  # noqa: E731
            return Runner(f, lambda: [f()])

        c.append(Candidate("onnxruntime GRU op + MatMul (session.run)", "onnxruntime", build))
    elif w.key == "C":
        seq, ws = d["seq"], d["weights"]

        def build(nt):
            s = session(interop.to_onnx_gru(*ws[:3], dense=(ws[3], ws[4])), nt)
            def step(x, h):
                y, h = s.run(["prediction", "h_last"], {"x": x, "h0": h})
                return y, h

            return _carried_state_runner([v.reshape(1, 1, -1) for v in seq],
                                         lambda: np.zeros((1, ws[1].shape[0]), np.float32), step)

        c.append(Candidate("onnxruntime GRU op, initial_h carried", "onnxruntime", build))
    elif w.key == "D.fwd":
        x, ws = d["x"], d["weights"]

        def build(nt):
            s = session(interop.to_onnx_gru(*ws), nt)
            feed = {"x": x, "h0": np.zeros((x.shape[0], ws[1].shape[0]), np.float32)}
            f = lambda: s.run(["output", "h_last"], feed)  # noqa: E731
            return Runner(f, f)

        c.append(Candidate("onnxruntime GRU op (session.run)", "onnxruntime", build))
    return c


# ------------------------------------------------------------------------------- Keras / TF
_TF_THREADS: Dict[str, int] = {}


def _tf(nt):
    """Import TensorFlow with ``nt`` threads. TF fixes its thread pools at the first op, so a
    later different count cannot be honoured in the same process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if "n" not in _TF_THREADS:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(nt)
            tf.config.threading.set_inter_op_parallelism_threads(1 if nt == 1 else 2)
            _TF_THREADS["n"] = nt
        except RuntimeError:  # already initialised by someone else
            _TF_THREADS["n"] = tf.config.threading.get_intra_op_parallelism_threads() or -1
    if _TF_THREADS["n"] != nt:
        raise SkipCandidate(
            f"TensorFlow fixes its thread pools at start-up (here {_TF_THREADS['n']} threads); "
            f"run `fastgru bench --threads {nt}` separately for this row")
    return tf


def tensorflow_candidates(w: Workload) -> List[Candidate]:
    d = w.data
    c: List[Candidate] = []

    def keras_model(tf, ws, steps, lr=None):
        import keras

        units = ws[1].shape[0]
        m = keras.Sequential([keras.Input((steps, 1)), keras.layers.GRU(units, reset_after=True),
                              keras.layers.Dense(1)])
        if lr is not None:
            m.compile(optimizer=keras.optimizers.Adam(learning_rate=lr, epsilon=_fastgru_adam_eps()),
                      loss="mse")
        m.set_weights([np.array(a) for a in ws])
        return m

    if w.key == "A":
        X, y, ws, lr, batch, n = d["X"], d["y"], d["weights"], d["lr"], d["batch"], d["check_n"]

        def build(nt):
            tf = _tf(nt)

            def check():
                m = keras_model(tf, ws, X.shape[1], lr)
                m.fit(X[:n], y[:n], epochs=1, batch_size=batch, shuffle=False, verbose=0)
                return [m.predict(X[:n], verbose=0)]

            m = keras_model(tf, ws, X.shape[1], lr)
            return Runner(lambda: m.fit(X, y, epochs=1, batch_size=batch, shuffle=True,
                                        verbose=0), check)

        c.append(Candidate("keras GRU+Dense fit (TensorFlow)", "tensorflow", build))
    elif w.key == "B":
        x, ws = d["x"], d["weights"]

        def build(nt):
            tf = _tf(nt)
            m = keras_model(tf, ws, x.shape[1])
            fn = tf.function(lambda v: m(v, training=False), reduce_retracing=True)
            xt = tf.constant(x)
            f = lambda: fn(xt).numpy()  # noqa: E731
            return Runner(f, lambda: [f()])

        c.append(Candidate("keras GRU+Dense (tf.function call)", "tensorflow", build))
    elif w.key in ("D.fwd", "D.fwd+bwd"):
        x, ws = d["x"], d["weights"]

        def build(nt):
            tf = _tf(nt)
            import keras

            layer = keras.layers.GRU(ws[1].shape[0], return_sequences=True, return_state=True,
                                     reset_after=True)
            layer.build((None, None, x.shape[2]))
            layer.set_weights([np.array(a) for a in ws])
            xt = tf.constant(x)
            if w.key == "D.fwd":
                fn = tf.function(lambda v: layer(v, training=False))
                f = lambda: [a.numpy() for a in fn(xt)]  # noqa: E731
                return Runner(f, f)
            gt = tf.constant(d["d_out"])

            @tf.function
            def grads(v):
                with tf.GradientTape() as tape:
                    tape.watch(v)
                    out, _ = layer(v, training=True)
                    loss = tf.reduce_sum(out * gt)
                return tape.gradient(loss, [v] + layer.trainable_weights)

            f = lambda: [a.numpy() for a in grads(xt)]  # noqa: E731
            return Runner(f, f)

        c.append(Candidate("keras GRU layer (tf.function)" if w.key == "D.fwd"
                           else "keras GRU layer, GradientTape (tf.function)", "tensorflow", build))
    return c


PEERS: List[Peer] = [
    Peer("torch", "torch", torch_candidates),
    Peer("onnxruntime", "onnxruntime", onnxruntime_candidates),
    Peer("tensorflow", "tensorflow", tensorflow_candidates, isolate=True),
]
_PEER_NOTES = {
    ("onnxruntime", "A"): "no training in ONNX Runtime's inference package",
    ("onnxruntime", "D.fwd+bwd"): "no backward in ONNX Runtime's inference package",
    ("tensorflow", "C"): "Keras has no public per-step state carry without a fixed batch",
}


# ------------------------------------------------------------------------------- matmul
def matmul_baseline(cfg: BenchConfig, threads: int) -> Dict[str, Any]:
    """float32 n x n NumPy matmul GFLOP/s (2 n^3 FLOPs) at ``threads`` BLAS threads."""
    n = cfg.matmul_n
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    limit = contextlib.nullcontext()
    note = ""
    try:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=threads, user_api="blas")
    except ImportError:
        note = "threadpoolctl not installed: BLAS at its default thread count"
    with limit:
        stats = time_calls(lambda: a @ b, max(3, cfg.repeats), 1, True, cfg.min_rep_seconds)
    gflops = 2.0 * n ** 3 / stats["median"] / 1e9
    return dict(n=n, threads=threads, median_s=stats["median"], gflops=gflops, note=note)


# ------------------------------------------------------------------------------- the run
def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _set_all_threads(n: int) -> None:
    import fastgru as fg

    fg.set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def run_benchmarks(cfg: BenchConfig, peers: Optional[Sequence[Peer]] = None,
                   time_fastgru: bool = True, isolate: bool = True) -> Dict[str, Any]:
    """Run every workload x implementation x thread count; return the JSON-ready report.

    ``peers`` defaults to ``PEERS`` (filtered by ``cfg.peers``). Peers marked ``isolate`` run in
    a child process per thread count. With ``time_fastgru=False`` fastgru only supplies the
    expected results and its rows are left out; ``isolate=False`` runs every peer in this process
    (what such a child does).
    """
    peers = PEERS if peers is None else peers
    if cfg.peers is not None:
        wanted = {p.lower() for p in cfg.peers}
        peers = [p for p in peers if p.library.lower() in wanted]
    results: List[Dict[str, Any]] = []
    notes: List[str] = []
    local: List[Peer] = []
    isolated: List[Peer] = []
    for peer in peers:
        if importlib.util.find_spec(peer.module) is None:
            notes.append(f"{peer.library}: not installed, skipped")
            _log(f"note: {peer.library} not installed, skipped")
        else:
            (isolated if peer.isolate and isolate else local).append(peer)

    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    workloads = make_workloads(cfg)
    matmul: List[Dict[str, Any]] = []

    for w in workloads:
        if w.flops and time_fastgru and not matmul:  # right before the workloads it calibrates
            matmul.extend(matmul_baseline(cfg, nt) for nt in cfg.threads)
        _log(f"== {w.key}: {w.title}")
        candidates = fastgru_candidates(w)
        for peer in local:
            try:
                got = peer.candidates(w)
            except ImportError as e:  # installed but broken
                notes.append(f"{peer.library}: import failed ({e}), skipped")
                _log(f"note: {peer.library} import failed: {e}")
                continue
            if not got and (peer.library, w.key) in _PEER_NOTES:
                notes.append(f"{peer.library} / {w.key}: {_PEER_NOTES[peer.library, w.key]}")
            candidates.extend(got)
        reference_out = w.reference() if w.reference is not None else None
        for nt in cfg.threads:
            expected = None
            for cand in candidates:
                row = _run_candidate(cfg, w, cand, nt, expected, reference_out,
                                     timed=time_fastgru or cand.library != "fastgru")
                if cand.library == "fastgru" and expected is None and "_out" in row:
                    expected = row["_out"]
                row.pop("_out", None)
                if time_fastgru or cand.library != "fastgru":
                    results.append(row)

    for peer in isolated:
        for nt in cfg.threads:
            child = _run_isolated(cfg, peer, nt)
            results.extend(child.get("results", []))
            notes.extend(n for n in child.get("notes", []) if n not in notes)

    _add_ratios(results)
    order = {w.key: k for k, w in enumerate(workloads)}
    results.sort(key=lambda r: (order.get(r["workload"], 99), r["threads"]))  # stable
    return dict(
        machine=dict(_machine_info(), loadavg_at_start=load_at_start),
        config=dataclasses.asdict(cfg),
        matmul=matmul,
        results=results,
        notes=notes,
        flops_note="D FLOPs count the two matmuls only: forward 2*B*T*3H*(I+H); "
                   "forward+backward 3x forward",
    )


def _run_candidate(cfg, w, cand, nt, expected, reference_out, timed=True) -> Dict[str, Any]:
    """Build, check and (if it agrees) time one implementation at ``nt`` threads."""
    row: Dict[str, Any] = dict(workload=w.key, implementation=cand.name, library=cand.library,
                               threads=nt, unit=w.unit, status="ok", note="")
    try:
        _set_all_threads(nt)
        runner = cand.build(nt)
        row["note"] = runner.note
        out = [np.asarray(a) for a in runner.check()]
        if cand.library == "fastgru" and (reference_out is not None or expected is None):
            want, row["compared_with"] = (
                (reference_out, "fastgru.reference") if reference_out is not None
                else (out, "itself (first fastgru implementation)"))
        elif expected is not None:
            want, row["compared_with"] = expected, "fastgru"
        elif reference_out is not None:  # fastgru failed or was skipped: judge peers by the oracle
            want, row["compared_with"] = reference_out, "fastgru.reference (no fastgru result)"
        else:
            raise SkipCandidate("no fastgru result to compare with")
        row["max_abs_diff"], rel = max_diff(out, want)
        row["tolerance"] = w.tol
        if not rel <= w.tol:
            raise Mismatch(
                f"max abs diff {row['max_abs_diff']:.3g} vs {row['compared_with']} "
                f"(normalised {rel:.3g}) exceeds tolerance {w.tol:g}")
        row["_out"] = out
        if not timed:
            return row
        _set_all_threads(nt)
        stats = time_calls(runner.run, cfg.repeats if w.per_call else cfg.epoch_repeats,
                           cfg.warmup if w.per_call else 1, w.per_call, cfg.min_rep_seconds,
                           cfg.max_seconds)
        if stats["repeats"] < (cfg.repeats if w.per_call else cfg.epoch_repeats):
            row["note"] = (row["note"] + "; " if row["note"] else "") + (
                f"stopped after {stats['repeats']} repetition(s): --max-seconds {cfg.max_seconds:g}")
        row.update(stats)
        if w.flops:
            row["gflops"] = w.flops / stats["median"] / 1e9
        _log(f"   {cand.name} @ {nt} thr: {_fmt(stats['median'], w.unit)} "
             f"(max|diff| {row['max_abs_diff']:.2g} vs {row['compared_with']})")
    except SkipCandidate as e:
        row.update(status="skipped", note=str(e))
        _log(f"   {cand.name} @ {nt} thr: skipped: {e}")
    except Mismatch as e:
        row.update(status="mismatch", note=str(e))
        _log(f"!! MISMATCH: {cand.name} on {w.key} @ {nt} threads: {e} -- NOT timed")
    except Exception as e:  # noqa: BLE001 - one implementation failing must not stop the run
        row.update(status="error", note=f"{type(e).__name__}: {e}")
        _log(f"!! ERROR: {cand.name} on {w.key} @ {nt} threads: {type(e).__name__}: {e}")
    return row


def _add_ratios(results: List[Dict[str, Any]]) -> None:
    """ratio = median / median of the first timed fastgru row of the same workload and threads."""
    baseline: Dict[Any, float] = {}
    for r in results:
        if r["library"] == "fastgru" and "median" in r:
            baseline.setdefault((r["workload"], r["threads"]), r["median"])
    for r in results:
        base = baseline.get((r["workload"], r["threads"]))
        if "median" in r:
            r["ratio"] = None if base is None else r["median"] / base


def _run_isolated(cfg: BenchConfig, peer: Peer, nt: int) -> Dict[str, Any]:
    """Run one peer at ``nt`` threads in a child ``python -m fastgru.bench`` and read its JSON."""
    import subprocess
    import tempfile

    _log(f"== {peer.library} @ {nt} threads (child process)")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "child.json")
        child_cfg = dataclasses.replace(cfg, threads=[nt], peers=[peer.library])
        with open(os.path.join(tmp, "cfg.json"), "w") as f:
            json.dump(dataclasses.asdict(child_cfg), f)
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
        proc = subprocess.run(
            [sys.executable, "-m", "fastgru.bench", "--_child", os.path.join(tmp, "cfg.json"),
             "--json", path], env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr, check=False)
        if not os.path.exists(path):
            return dict(results=[], notes=[
                f"{peer.library} @ {nt} threads: child process failed (exit {proc.returncode})"])
        with open(path) as f:
            return json.load(f)


def _machine_info() -> Dict[str, Any]:
    import fastgru as fg

    info: Dict[str, Any] = dict(python=platform.python_version(), platform=platform.platform(),
                                processor=_cpu_name(), cores=_cores(), numpy=np.__version__,
                                fastgru=getattr(fg, "__version__", "?"))
    if hasattr(os, "getloadavg"):  # other processes on the machine skew multi-thread numbers
        info["loadavg_at_end"] = list(os.getloadavg())
    try:
        info["fastgru_config"] = {k: str(v) for k, v in fg._config.config().items()}
    except Exception:  # noqa: BLE001
        pass
    for mod in ("torch", "onnxruntime", "tensorflow", "keras"):
        if mod in sys.modules:
            info[mod] = getattr(sys.modules[mod], "__version__", "?")
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# ------------------------------------------------------------------------------- output
def _fmt(seconds: Optional[float], unit: str) -> str:
    if seconds is None:
        return "-"
    v = seconds * UNIT_SCALE[unit]
    return f"{v:.4g} {unit}" if v < 1000 else f"{v:,.0f} {unit}"


def format_table(report: Dict[str, Any]) -> str:
    header = ["workload", "implementation", "thr", "median", "IQR", "min-max", "ratio",
              "GFLOP/s", "max|diff|", "status"]
    rows = [header]
    for r in report["results"]:
        u = r["unit"]
        scale = UNIT_SCALE[u]
        timed = "median" in r
        rows.append([
            r["workload"], r["implementation"], str(r["threads"]),
            _fmt(r.get("median"), u),
            f"{(r['q3'] - r['q1']) * scale:.3g}" if timed else "-",
            f"{r['min'] * scale:.4g}-{r['max'] * scale:.4g}" if timed else "-",
            f"{r['ratio']:.2f}x" if r.get("ratio") else "-",
            f"{r['gflops']:.2f}" if "gflops" in r else "",
            f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-",
            r["status"] if r["status"] == "ok" else f"{r['status']}: {r['note']}"[:70],
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(c.ljust(wd) for c, wd in zip(row, widths)) + "  " + row[-1])
        if k == 0:
            lines.append("-" * (sum(widths) + 2 * len(widths) + 6))
    for m in report.get("matmul", []):
        lines.append(f"float32 NumPy matmul {m['n']}x{m['n']} @ {m['threads']} thr: "
                     f"{m['gflops']:.1f} GFLOP/s {('(' + m['note'] + ')') if m['note'] else ''}")
    if any("gflops" in r for r in report["results"]):
        lines.append(report["flops_note"])
    for n in report.get("notes", []):
        lines.append(f"note: {n}")
    return "\n".join(lines)


def write_plot(report: Dict[str, Any], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _log("note: matplotlib not installed, no plot written")
        return False
    ok = [r for r in report["results"] if "median" in r]
    keys = list(dict.fromkeys(r["workload"] for r in ok))
    if not keys:
        return False
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 2.2 + 0.45 * len(ok) / len(keys) * 2),
                             squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        rows = [r for r in ok if r["workload"] == key]
        labels = [f"{r['implementation']} [{r['threads']} thr]" for r in rows]
        vals = [r["median"] * UNIT_SCALE[r["unit"]] for r in rows]
        errs = [[(r["median"] - r["q1"]) * UNIT_SCALE[r["unit"]] for r in rows],
                [(r["q3"] - r["median"]) * UNIT_SCALE[r["unit"]] for r in rows]]
        colors = ["tab:green" if r["library"] == "fastgru" else "tab:gray" for r in rows]
        ax.barh(range(len(rows)), vals, xerr=errs, color=colors)
        ax.set_yticks(range(len(rows)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_title(f"{key} (median, {rows[0]['unit']}, lower is better)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------- CLI
def _parse_threads(text: str) -> List[int]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        n = _cores() if part in ("all", "max") else int(part)
        if n < 1:
            raise argparse.ArgumentTypeError(f"thread counts must be >= 1; got {n}")
        if n not in out:
            out.append(n)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastgru bench",
        description="Time fastgru against PyTorch, Keras/TensorFlow and ONNX Runtime GRUs "
                    "(each peer's result is checked against fastgru's before it is timed).",
    )
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS),
                   help="comma-separated subset of A,B,C,D (default all)")
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts, 'all' = every core (default 1,all)")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions (default 7)")
    p.add_argument("--epoch-repeats", type=int, default=None,
                   help="timed epochs for workload A (default 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 3)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="time budget per implementation and thread count; repetitions stop "
                        "when it is spent, at least one always runs (default 120; 0 = none)")
    p.add_argument("--peers", default=None,
                   help="comma-separated peers to try (torch,onnxruntime,tensorflow; "
                        "default every installed one; 'none' for fastgru alone)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and few repetitions: checks the harness, not the speed")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of the medians (needs matplotlib)")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    return p


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in workloads if w not in ALL_WORKLOADS]
    if bad:
        raise SystemExit(f"fastgru bench: unknown workload(s) {bad}; choose from {ALL_WORKLOADS}")
    cfg = BenchConfig(workloads=workloads, quick=args.quick, **sizes_for(args.quick))
    cfg.threads = _parse_threads(args.threads) if args.threads else _parse_threads("1,all")
    for name in ("repeats", "epoch_repeats", "warmup"):
        if getattr(args, name) is not None:
            setattr(cfg, name, max(1 if name != "warmup" else 0, getattr(args, name)))
    if args.max_seconds is not None:
        cfg.max_seconds = args.max_seconds if args.max_seconds > 0 else None
    if args.peers is not None:
        cfg.peers = [] if args.peers.strip().lower() == "none" else \
            [p.strip() for p in args.peers.split(",") if p.strip()]
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args._child:  # one isolated peer at one thread count, for _run_isolated
        with open(args._child) as f:
            cfg = BenchConfig(**json.load(f))
        report = run_benchmarks(cfg, peers=[p for p in PEERS if p.library in cfg.peers],
                                time_fastgru=False, isolate=False)
        with open(args.json, "w") as f:
            json.dump(report, f, default=float)
        return 0
    cfg = config_from_args(args)
    report = run_benchmarks(cfg)
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=float)
        _log(f"wrote {args.json}")
    if args.plot and write_plot(report, args.plot):
        _log(f"wrote {args.plot}")
    bad = [r for r in report["results"] if r["status"] in ("mismatch", "error")]
    if bad:
        _log(f"{len(bad)} implementation(s) failed the agreement check or errored (see table)")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
