"""A whole run: every workload x implementation x thread count, and the report.

By default each library runs at each thread count in its own child process (``child_command``:
the peer's library imported first, then ``cli.main`` with ``--_child``): a library's thread
pool, left spinning after its calls, then cannot slow another library's rows, and
TensorFlow's start-up thread settings hold. The first fastgru child also writes what the
peers are compared with (fastgru's outputs and the NumPy oracle's), so no child recomputes
them. ``rounds`` repeats the whole sequence of children, interleaved, and pools each row's
samples.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import signal
import site
import subprocess
import sys
import tempfile
import threading
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .._config import config as fastgru_config, usable_cores
from . import peers as registry
from .harness import (BenchConfig, Peer, Workload, check_candidate, log, sample_stats,
                      time_candidates)
from .workloads import make_workloads, matmul_baseline

# What peers are compared with, per workload key: {"reference": [arrays] or None,
# "expected": [arrays] or None (fastgru's first implementation, when it passed its check)}.
Known = Dict[str, Dict[str, Optional[List[np.ndarray]]]]


def run_benchmarks(cfg: BenchConfig, peers: Optional[Sequence[Peer]] = None,
                   time_fastgru: bool = True) -> Dict[str, Any]:
    """Run every workload x implementation x thread count; return the JSON-ready report.

    ``peers`` defaults to ``peers.PEERS`` (filtered by ``cfg.peers``). With ``cfg.isolate``,
    fastgru and the built-in peers run in a child process per library and thread count;
    other peers (given as objects) run in this process. With ``time_fastgru=False`` fastgru
    only supplies the expected results and its rows are left out.
    """
    peers = registry.PEERS if peers is None else peers
    if cfg.peers is not None:
        wanted = {p.lower() for p in cfg.peers}
        peers = [p for p in peers if p.library.lower() in wanted]
    notes: List[str] = []
    installed: List[Peer] = []
    for peer in peers:
        if importlib.util.find_spec(peer.module) is None:
            notes.append(f"{peer.library}: not installed, skipped")
            log(f"note: {peer.library} not installed, skipped")
        else:
            installed.append(peer)

    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    workloads = make_workloads(cfg)
    matmul: List[Dict[str, Any]] = []
    if time_fastgru and any(w.flops for w in workloads):
        matmul = [matmul_baseline(cfg, nt) for nt in cfg.threads]

    children = [p for p in installed if cfg.isolate and registry.is_built_in(p)]
    here = [p for p in installed if p not in children]
    rounds: List[List[Dict[str, Any]]] = []
    libraries: Dict[str, str] = {}
    failures: List[str] = []  # children that died or ran past their time
    openmp_waits: Dict[str, str] = {}  # each child's libgomp wait setting
    for _ in range(max(1, cfg.rounds)):
        rows: List[Dict[str, Any]] = []
        known: Known = {}
        if cfg.isolate:
            with tempfile.TemporaryDirectory() as tmp:
                for nt in cfg.threads:
                    jobs = ([registry.FASTGRU] if time_fastgru else []) + children
                    for peer in jobs:
                        child = _run_child(cfg, peer, nt, known, tmp)
                        failures.extend(child.get("failures", []))
                        rows.extend(child.get("results", []))
                        notes.extend(n for n in child.get("notes", []) if n not in notes)
                        libraries.update(child.get("libraries", {}))
                        if "openmp_wait" in child:
                            openmp_waits[f"{peer.library} @ {nt}"] = child["openmp_wait"]
                        known = child.get("known", known)
            if here:  # given as objects, not by name: compared with what the children wrote
                got, got_notes = run_here(cfg, workloads, here, time_fastgru=False, known=known)
                rows.extend(got)
                notes.extend(n for n in got_notes if n not in notes)
        else:
            got, got_notes = run_here(cfg, workloads, installed, time_fastgru)
            rows.extend(got)
            notes.extend(n for n in got_notes if n not in notes)
        rounds.append(rows)
    results = pool_rounds(rounds)

    _add_ratios(results)
    order = {w.key: k for k, w in enumerate(workloads)}
    rank = {p.library: k for k, p in enumerate([registry.FASTGRU, *installed])}
    results.sort(key=lambda r: (order.get(r["workload"], 99), r["threads"],
                                rank.get(r["library"], 99)))  # stable: candidate order kept
    return dict(
        machine=dict(machine_info(), loadavg_at_start=load_at_start, libraries=libraries,
                     openmp_wait_per_child=openmp_waits),
        config=dataclasses.asdict(cfg),
        matmul=matmul,
        results=results,
        notes=notes,
        failures=failures,
        flops_note="FLOPs count the GRU's two matmuls only: forward 2*B*T*3H*(I+H) (B: one "
                   "window, C: one step); training (A, D.fwd+bwd) 3x forward",
    )


def run_here(cfg: BenchConfig, workloads: Sequence[Workload], peers: Sequence[Peer],
             time_fastgru: bool, known: Optional[Known] = None):
    """Every workload in this process for ``peers`` (and fastgru's rows if ``time_fastgru``).
    ``known`` supplies, and receives, what the peers are compared with. Returns (rows, notes)."""
    known = {} if known is None else known
    results: List[Dict[str, Any]] = []
    notes: List[str] = []
    for w in workloads:
        candidates = []
        for peer in peers:
            try:
                got = peer.candidates(w)
            except (ImportError, OSError) as e:  # installed but broken (a missing .so: OSError)
                note = f"{peer.library}: could not be loaded ({type(e).__name__}: {e}), skipped"
                if note not in notes:
                    notes.append(note)
                    log(f"note: {note}")
                continue
            if not got and w.key in peer.absent:
                notes.append(f"{peer.library} / {w.key}: {peer.absent[w.key]}")
            candidates.extend(got)
        if not candidates and not time_fastgru:
            continue
        log(f"== {w.key}: {w.title}")
        have = known.get(w.key)
        if have is None or time_fastgru:
            candidates = registry.FASTGRU.candidates(w) + candidates
        if have is not None:
            reference_out = have["reference"]
        else:
            reference_out = w.reference() if w.reference is not None else None
        for nt in cfg.threads:
            expected = have["expected"] if have is not None else None
            rows, checked = [], []
            for cand in candidates:
                row, runner = check_candidate(cfg, w, cand, nt, expected, reference_out)
                if cand.library == "fastgru" and expected is None and "_out" in row:
                    expected = row["_out"]
                row.pop("_out", None)
                row["pid"] = os.getpid()  # shows which rows shared a process
                if time_fastgru or cand.library != "fastgru":
                    rows.append(row)
                    if runner is not None:
                        checked.append((row, runner))
            # a library's implementations take turns (fit and the bare loop meet the same
            # moments of a noisy machine); libraries one after the other
            for library in dict.fromkeys(row["library"] for row, _ in checked):
                time_candidates(cfg, w, [c for c in checked if c[0]["library"] == library], nt)
            results.extend(rows)
            if have is None:
                have = known[w.key] = dict(reference=reference_out, expected=expected)
    return results, notes


def pool_rounds(rounds: List[List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """One row per (workload, implementation, threads): the samples of every round pooled
    (``cpu_per_wall`` averaged over the rounds' timed seconds, ``number`` the most calls a
    sample took); a row that failed in any round stays failed."""
    merged: Dict[Any, Dict[str, Any]] = {}
    for rows in rounds:
        for r in rows:
            key = (r["workload"], r["implementation"], r["threads"])
            m = merged.get(key)
            if m is None or (m["status"] == "ok" and r["status"] != "ok"):
                merged[key] = r
            elif m["status"] == "ok" and "samples" in m and "samples" in r:
                old_median = m["median"]
                if "cpu_per_wall" in m and "cpu_per_wall" in r:  # weighted by timed seconds
                    wall_m = sum(m["samples"]) * m.get("number", 1)
                    wall_r = sum(r["samples"]) * r.get("number", 1)
                    m["cpu_per_wall"] = ((m["cpu_per_wall"] * wall_m + r["cpu_per_wall"] * wall_r)
                                         / max(wall_m + wall_r, 1e-12))
                    m["number"] = max(m.get("number", 1), r.get("number", 1))
                m.update(sample_stats(m["samples"] + r["samples"]))
                if "gflops" in m:
                    m["gflops"] *= old_median / m["median"]
    return list(merged.values())


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


# ------------------------------------------------------------------------------- children
def _save_known(known: Known, path: str) -> None:
    arrays: Dict[str, np.ndarray] = {}
    manifest: Dict[str, Dict[str, Optional[int]]] = {}
    for key, entry in known.items():
        manifest[key] = {}
        for part, value in entry.items():
            manifest[key][part] = None if value is None else len(value)
            for i, a in enumerate(value or []):
                arrays[f"{key}|{part}|{i}"] = np.asarray(a)
    np.savez(path, __manifest__=np.array(json.dumps(manifest)), **arrays)


def _load_known(path: str) -> Known:
    with np.load(path, allow_pickle=False) as f:
        manifest = json.loads(str(f["__manifest__"]))
        return {key: {part: None if n is None else [f[f"{key}|{part}|{i}"] for i in range(n)]
                      for part, n in entry.items()}
                for key, entry in manifest.items()}


# A child starts here rather than at ``-m fastgru.bench``: it imports the peer's library (argv[1],
# empty for fastgru) before fastgru, so that a library sharing fastgru's libgomp (PyTorch) loads
# it with libgomp's own settings, not the short spin fastgru picks for itself (fastgru keeps an
# OpenMP runtime that is already loaded as it is: see fastgru/_openmp.py).
_CHILD_BOOTSTRAP = """
import importlib, sys
first = sys.argv.pop(1)
if first:
    try:
        importlib.import_module(first)
    except Exception as e:  # the child reports the library as not loadable later; say why now
        print(f"note: importing {first} failed: {type(e).__name__}: {e}", file=sys.stderr)
from fastgru.bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


def child_command(module: str, job_path: str, report_path: str) -> List[str]:
    """The command line of a child that imports ``module`` first ("" for none), then runs
    the job in ``job_path`` and writes its report to ``report_path``."""
    return [sys.executable, "-c", _CHILD_BOOTSTRAP, module, "--_child", job_path,
            "--json", report_path]


def _child_env() -> Dict[str, str]:
    """This environment, with the directory holding this fastgru on PYTHONPATH when a child
    would not find it otherwise (a source tree; an installed fastgru's site-packages is on
    every child's path already, and putting it first would shadow the user's PYTHONPATH)."""
    env = dict(os.environ)
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    default = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if hasattr(site, "getusersitepackages"):
        default.append(site.getusersitepackages())
    if os.path.realpath(pkg_root) not in {os.path.realpath(d) for d in default}:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
    return env


def child_timeout(cfg: BenchConfig) -> Optional[float]:
    """Seconds a child may run before it is stopped, so that a hung library cannot hold the
    run: four implementations' time budgets per workload (one repetition always runs, even
    past the budget) plus 15 minutes for start-up, building and checks; None when the budget
    is unlimited (``--max-seconds 0``)."""
    if cfg.max_seconds is None:
        return None
    return 900.0 + 4 * cfg.max_seconds * len(cfg.workloads)


def _kill_child(proc: subprocess.Popen) -> None:
    """Stops a child started by ``_run_child`` if it still runs, with its process group on
    POSIX (whatever it started, which may hold its stderr open)."""
    if proc.poll() is not None:
        return
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:  # gone meanwhile
            pass
    else:
        proc.kill()


def _run_child(cfg: BenchConfig, peer: Peer, nt: int, known: Known, tmp: str) -> Dict[str, Any]:
    """Run ``peer`` at ``nt`` threads in a child process; return its report, with ``known``
    updated from what it wrote (the first fastgru child writes it), or one with ``failures``
    when the child died or ran past ``child_timeout``."""
    library = peer.library
    log(f"== {library} @ {nt} thread(s) (child process)")
    stem = os.path.join(tmp, f"{library}-{nt}")
    known_in, known_out = os.path.join(tmp, "known.npz"), stem + "-known.npz"
    if known:
        _save_known(known, known_in)
    job = dict(config=dataclasses.asdict(dataclasses.replace(cfg, threads=[nt], rounds=1)),
               library=library, known_in=known_in if known else None, known_out=known_out)
    with open(stem + ".json", "w") as f:
        json.dump(job, f)
    report_path = stem + "-report.json"
    module = "" if peer is registry.FASTGRU else peer.module
    timeout = child_timeout(cfg)
    # Its own process group (POSIX), so that stopping it also stops anything it started that
    # holds its stderr open; otherwise reading stderr would wait for those.
    proc = subprocess.Popen(child_command(module, stem + ".json", report_path), env=_child_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=os.name == "posix")
    expired = threading.Event()
    timer = None
    if timeout is not None:
        timer = threading.Timer(timeout, lambda: (expired.set(), _kill_child(proc)))
        timer.start()
    try:
        for line in proc.stderr:  # the child's progress, as it comes (sys.stderr may be no file)
            sys.stderr.write(line)
        proc.wait()
    finally:  # interrupted (Ctrl-C, SIGTERM turned into SystemExit): no child left behind
        if timer is not None:
            timer.cancel()
        _kill_child(proc)
        proc.wait()
        proc.stderr.close()
    if proc.returncode != 0 or not os.path.exists(report_path):
        why = f"stopped after {timeout:.0f} s" if expired.is_set() else f"exit {proc.returncode}"
        failure = f"{library} @ {nt} threads: child process failed ({why})"
        log(f"error: {failure}")
        return dict(results=[], failures=[failure])
    with open(report_path) as f:
        report = json.load(f)
    if os.path.exists(known_out):
        merged = dict(known)
        merged.update(_load_known(known_out))
        report["known"] = merged
    return report


def run_child(job_path: str, report_path: str) -> int:
    """The child's side of ``_run_child``: one library at one thread count."""
    with open(job_path) as f:
        job = json.load(f)
    cfg = BenchConfig(**job["config"])
    library = job["library"]
    peers = [] if library == "fastgru" else [registry.BUILT_IN[library]]
    known = _load_known(job["known_in"]) if job["known_in"] else {}
    workloads = make_workloads(cfg)
    rows, notes = run_here(cfg, workloads, peers, time_fastgru=library == "fastgru", known=known)
    if library == "fastgru":
        _save_known(known, job["known_out"])
    versions = {m: getattr(sys.modules[m], "__version__", "?")
                for m in ("torch", "onnxruntime", "tensorflow", "keras") if m in sys.modules}
    with open(report_path, "w") as f:
        json.dump(dict(results=rows, notes=notes, libraries=versions,
                       openmp_wait=fastgru_config()["openmp_wait"]), f, default=float)
    return 0


# ------------------------------------------------------------------------------- machine
def machine_info() -> Dict[str, Any]:
    import fastgru as fg

    info: Dict[str, Any] = dict(python=platform.python_version(), platform=platform.platform(),
                                processor=cpu_name(), cores=usable_cores(), numpy=np.__version__,
                                fastgru=getattr(fg, "__version__", "?"),
                                date=datetime.datetime.now(datetime.timezone.utc)
                                .strftime("%Y-%m-%d %H:%M UTC"))
    if hasattr(os, "getloadavg"):  # other processes on the machine skew multi-thread numbers
        info["loadavg_at_end"] = list(os.getloadavg())
    info["fastgru_config"] = {k: str(v) for k, v in fastgru_config().items()}
    for mod in ("torch", "onnxruntime", "tensorflow", "keras"):
        if mod in sys.modules:
            info[mod] = getattr(sys.modules[mod], "__version__", "?")
    return info


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The processor's name, with its family and model (x86) or implementer and part (ARM)
    where ``cpuinfo`` gives them: virtual machines often name only "AMD EPYC" or "Intel Xeon
    Processor", which hides the generation (Zen 2 and Zen 4 differ in SIMD width and L1)."""
    fields: Dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, colon, value = line.partition(":")
                if not colon:  # a blank line ends the first processor's block
                    if fields:
                        break
                    continue
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine() or "?"
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    if "CPU implementer" in fields and "CPU part" in fields:
        return f"{name} (implementer {fields['CPU implementer']}, part {fields['CPU part']})"
    return name
