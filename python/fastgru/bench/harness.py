"""The harness's vocabulary and its row machinery: what a workload, a candidate and a peer
are; how calls are timed (one library's implementations taking turns); how a result is checked
against fastgru's.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ALL_WORKLOADS = ("A", "B", "C", "D")
UNIT_SCALE = {"s": 1.0, "ms": 1e3, "us": 1e6}


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
    # One child process per library and thread count, so that no library's thread pool (left
    # spinning after its calls) slows another's rows. False: everything in this process.
    isolate: bool = True
    rounds: int = 1  # the whole set of child runs, repeated and interleaved; samples pooled
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


def sizes_for(quick: bool) -> Dict[str, Any]:
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
    # why a workload has no candidate of this library, for the report's notes
    absent: Dict[str, str] = dataclasses.field(default_factory=dict)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(w))):  # NaN compares as no gap
            return float("inf"), float("inf")
        d = float(np.max(np.abs(g - w))) if g.size else 0.0
        worst_abs = max(worst_abs, d)
        worst_rel = max(worst_rel, d / max(1.0, float(np.max(np.abs(w))) if w.size else 1.0))
    return worst_abs, worst_rel


def sample_stats(samples: Sequence[float]) -> Dict[str, Any]:
    """Median, quartiles, min and max of per-call seconds, with the samples themselves."""
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    return dict(median=float(med), q1=float(q1), q3=float(q3), min=float(min(samples)),
                max=float(max(samples)), repeats=len(samples), samples=[float(s) for s in samples])


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int, per_call: bool,
               min_rep_seconds: float, max_seconds: Optional[float] = None) -> Dict[str, Any]:
    """Per-call seconds: median, q1, q3, min, max over ``repeats`` repetitions.

    With ``max_seconds``, warm-up and repetitions stop once that much time is spent (at least
    one timed repetition always runs); ``repeats`` in the result says how many ran.
    """
    stats = time_in_turns([fn], repeats, warmup, per_call, min_rep_seconds, max_seconds)[0]
    if "error" in stats:
        raise stats["error"]
    return stats


@dataclasses.dataclass
class _TimedFunction:
    """One function's progress through ``time_in_turns``."""

    fn: Callable[[], Any]
    number: int = 1  # calls a repetition
    spent: float = 0.0  # seconds of its warm-up, calibration and repetitions
    samples: List[float] = dataclasses.field(default_factory=list)
    cpu: float = 0.0  # process CPU seconds during its repetitions
    wall: float = 0.0  # wall seconds of its repetitions
    error: Optional[BaseException] = None
    done: bool = False


def time_in_turns(fns: Sequence[Callable[[], Any]], repeats: int, warmup: int, per_call: bool,
                  min_rep_seconds: float, max_seconds: Optional[float] = None) -> List[Dict[str, Any]]:
    """``time_calls`` for several functions at once, their repetitions taking turns (a b a b
    ...): on a machine whose speed drifts, each meets the same mix of quiet and loud moments,
    so their ratio holds where their times one after the other would not. Each is warmed up
    and calibrated first, on its own; ``max_seconds`` is each one's budget. A function that
    raises leaves the turns: its entry is ``{"error": the exception}``.
    """
    timed = [_TimedFunction(fn) for fn in fns]
    for t in timed:
        start = time.perf_counter()
        try:
            for _ in range(warmup):
                t.fn()
                if max_seconds is not None and time.perf_counter() - start > max_seconds:
                    break
            if per_call:  # calls per repetition so that one repetition lasts >= min_rep_seconds
                while True:
                    t0 = time.perf_counter()
                    for _ in range(t.number):
                        t.fn()
                    elapsed = time.perf_counter() - t0
                    if elapsed >= min_rep_seconds or t.number >= 1 << 20:
                        break
                    t.number = max(t.number * 2,
                                   int(t.number * 1.2 * min_rep_seconds / max(elapsed, 1e-9)))
        except Exception as e:  # noqa: BLE001 - reported in its entry; the others go on
            t.error = e
        t.spent = time.perf_counter() - start
    for _ in range(repeats):
        turn = [t for t in timed if t.error is None and not t.done]
        if not turn:
            break
        for t in turn:
            # CPU time of every thread of this process per second of the timed calls: about 1
            # for a single-threaded call unless other thread pools in the process spin meanwhile.
            cpu0, t0 = time.process_time(), time.perf_counter()
            try:
                for _ in range(t.number):
                    t.fn()
            except Exception as e:  # noqa: BLE001
                t.error = e
                continue
            elapsed = time.perf_counter() - t0
            t.samples.append(elapsed / t.number)
            t.cpu += time.process_time() - cpu0
            t.wall += elapsed
            t.spent += elapsed
            t.done = max_seconds is not None and t.spent > max_seconds
    return [{"error": t.error} if t.error is not None else
            dict(sample_stats(t.samples), number=t.number, cpu_per_wall=t.cpu / max(t.wall, 1e-9))
            for t in timed]


def set_all_threads(n: int) -> None:
    """fastgru's thread count, PyTorch's when it is loaded (its pool is process-wide), and
    NumPy's BLAS where threadpoolctl is installed: a "1 thread" row's NumPy Dense head must not
    wake a BLAS pool that spins on the other cores."""
    import fastgru as fg

    fg.set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    limit_blas_threads(n)  # in force until the next row sets its own


def limit_blas_threads(n: int):
    """Hold NumPy's BLAS to ``n`` threads from now on. Returns threadpoolctl's limiter (as a
    context manager, it restores the previous limits on exit), or None where threadpoolctl is
    not installed and BLAS keeps its default thread count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=n, user_api="blas")


def format_duration(seconds: Optional[float], unit: str) -> str:
    if seconds is None:
        return "-"
    v = seconds * UNIT_SCALE[unit]
    return f"{v:.4g} {unit}" if v < 1000 else f"{v:,.0f} {unit}"


def check_candidate(cfg: BenchConfig, w: Workload, cand: Candidate, nt: int, expected,
                    reference_out) -> Tuple[Dict[str, Any], Optional[Runner]]:
    """Build one implementation at ``nt`` threads and check its result. Returns its row and,
    if it agrees, the runner to time (else None, with the row's status saying why). A row that
    passed its check carries its outputs under ``"_out"`` (the caller removes them)."""
    row: Dict[str, Any] = dict(workload=w.key, implementation=cand.name, library=cand.library,
                               threads=nt, unit=w.unit, status="ok", note="")
    try:
        set_all_threads(nt)
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
        return row, runner
    except SkipCandidate as e:
        row.update(status="skipped", note=str(e))
        log(f"   {cand.name} @ {nt} thr: skipped: {e}")
    except Mismatch as e:
        row.update(status="mismatch", note=str(e))
        log(f"!! MISMATCH: {cand.name} on {w.key} @ {nt} threads: {e} -- NOT timed")
    except Exception as e:  # noqa: BLE001 - one implementation failing must not stop the run
        _record_error(row, e)
    return row, None


def _add_note(row: Dict[str, Any], text: str) -> None:
    row["note"] = f"{row['note']}; {text}" if row.get("note") else text


def _record_error(row: Dict[str, Any], e: BaseException) -> None:
    row["status"] = "error"
    _add_note(row, f"{type(e).__name__}: {e}")
    log(f"!! ERROR: {row['implementation']} on {row['workload']} @ {row['threads']} threads: "
        f"{type(e).__name__}: {e}")


def time_candidates(cfg: BenchConfig, w: Workload, checked: Sequence[Tuple[Dict[str, Any], Runner]],
                    nt: int) -> None:
    """Time checked runners at ``nt`` threads, their repetitions taking turns
    (``time_in_turns``), and fill in their rows. Give it one library's runners at a time: a
    peer's thread pool left spinning between its turns would slow another library's. Within
    one library it can still happen (at nt > 1, the bare loop's BLAS pool next to fit's
    OpenMP team), which ``cpu_per_wall`` shows; libraries' own children keep it to that."""
    if not checked:
        return
    set_all_threads(nt)
    wanted = cfg.repeats if w.per_call else cfg.epoch_repeats
    all_stats = time_in_turns([runner.run for _, runner in checked], wanted,
                              cfg.warmup if w.per_call else 1, w.per_call, cfg.min_rep_seconds,
                              cfg.max_seconds)
    for (row, _), stats in zip(checked, all_stats):
        if "error" in stats:
            _record_error(row, stats["error"])
            continue
        if stats["repeats"] < wanted:
            _add_note(row, f"stopped after {stats['repeats']} repetition(s): "
                           f"--max-seconds {cfg.max_seconds:g}")
        row.update(stats)
        if w.flops:
            row["gflops"] = w.flops / stats["median"] / 1e9
        log(f"   {row['implementation']} @ {nt} thr: {format_duration(stats['median'], w.unit)} "
            f"(max|diff| {row['max_abs_diff']:.2g} vs {row['compared_with']})")


def carried_state_runner(readings, zero_state, step) -> Runner:
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
