"""``fastgru bench`` / ``python -m fastgru.bench``: options, the run, the table, JSON and plot."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import threading
from typing import List, Optional, Sequence

from .._config import thread_limit, usable_cores
from .harness import ALL_WORKLOADS, BenchConfig, log, sizes_for
from . import peers as registry
from .report import format_table, write_plot
from .run import run_benchmarks, run_child


def parse_threads(text: str) -> List[int]:
    """``--threads``: comma-separated counts, 'all' (or 'max') for every usable core; each
    from 1 to fastgru's limit. Raises argparse.ArgumentTypeError (argparse's usage error)."""
    out, limit = [], thread_limit()
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            n = usable_cores() if part in ("all", "max") else int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"thread counts are whole numbers or 'all'; got {part!r}") from None
        if not 1 <= n <= limit:
            raise argparse.ArgumentTypeError(f"thread counts must be between 1 and {limit}; got {n}")
        if n not in out:
            out.append(n)
    if not out:
        raise argparse.ArgumentTypeError("no thread count given")
    return out


def _output_path(text: str) -> str:
    """An output file's path, its folder checked before the run rather than after it (the
    write itself can still fail; main reports that in one line)."""
    folder = os.path.dirname(os.path.abspath(text)) or "."
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder!r} does not exist")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder {folder!r} is not writable")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastgru bench",
        description="Time fastgru against PyTorch, Keras/TensorFlow and ONNX Runtime GRUs "
                    "(each peer's result is checked against fastgru's before it is timed).",
    )
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS),
                   help="comma-separated subset of A,B,C,D (default all)")
    p.add_argument("--threads", default=None, type=parse_threads,
                   help="comma-separated thread counts, 'all' = every core (default 1,all)")
    p.add_argument("--repeats", type=int, default=None, help="timed repetitions (default 7)")
    p.add_argument("--epoch-repeats", type=int, default=None,
                   help="timed epochs for workload A (default 3)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 3)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="time budget per implementation and thread count; repetitions stop "
                        "when it is spent, at least one always runs (default 120; 0 = none)")
    p.add_argument("--rounds", type=int, default=None,
                   help="run every library's rows this many times, interleaved, and pool the "
                        "samples (default 1; more is steadier on a busy machine)")
    p.add_argument("--no-isolate", action="store_true",
                   help="run every library in this process instead of a child process per "
                        "library and thread count (faster start; thread pools then interfere)")
    p.add_argument("--peers", default=None,
                   help="comma-separated peers to try (torch,onnxruntime,tensorflow; "
                        "default every installed one; 'none' for fastgru alone)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and few repetitions: checks the harness, not the speed")
    p.add_argument("--json", metavar="FILE", type=_output_path,
                   help="write the full report as JSON")
    p.add_argument("--plot", metavar="FILE.png", type=_output_path,
                   help="bar chart of the medians (needs matplotlib)")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> BenchConfig:
    """The run's configuration; a usage error (``parser.error``: message, exit 2) for unknown
    workloads or peers."""
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in workloads if w not in ALL_WORKLOADS]
    if bad or not workloads:
        what = f"unknown {','.join(bad)}" if bad else "none given"
        parser.error(f"--workloads: {what}; choose from {','.join(ALL_WORKLOADS)}")
    cfg = BenchConfig(workloads=workloads, quick=args.quick, **sizes_for(args.quick))
    cfg.threads = args.threads or parse_threads("1,all")
    for name in ("repeats", "epoch_repeats", "warmup", "rounds"):
        if getattr(args, name) is not None:
            setattr(cfg, name, max(1 if name != "warmup" else 0, getattr(args, name)))
    if args.max_seconds is not None:
        cfg.max_seconds = args.max_seconds if args.max_seconds > 0 else None
    if args.peers is not None:
        cfg.peers = [] if args.peers.strip().lower() == "none" else \
            [p.strip() for p in args.peers.split(",") if p.strip()]
        known = {p.library.lower() for p in registry.PEERS}
        unknown = [p for p in cfg.peers if p.lower() not in known]
        if unknown:
            parser.error(f"--peers: unknown {unknown}; choose from "
                         f"{','.join(sorted(known))} or 'none'")
    cfg.isolate = not args.no_isolate
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._child:  # one library at one thread count, for run._run_child
        return run_child(args._child, args.json)
    cfg = config_from_args(args, parser)
    try:
        with _sigterm_as_exit():  # so that a child process is stopped with the run
            report = run_benchmarks(cfg)
    except KeyboardInterrupt:
        log("fastgru bench: interrupted")
        return 130
    print(format_table(report))
    try:
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2, default=float)
            log(f"wrote {args.json}")
        if args.plot and write_plot(report, args.plot):
            log(f"wrote {args.plot}")
    except OSError as e:
        log(f"fastgru bench: error: could not write {e.filename or 'the output'}: {e.strerror or e}")
        return 1
    bad = [r for r in report["results"] if r["status"] in ("mismatch", "error")]
    if bad:
        log(f"{len(bad)} implementation(s) failed the agreement check or errored (see table)")
    if report["failures"]:
        log(f"{len(report['failures'])} child process(es) failed (see the table's last lines)")
    return 1 if bad or report["failures"] else 0


@contextlib.contextmanager
def _sigterm_as_exit():
    """SIGTERM raises SystemExit(143) while the run lasts, so its clean-up (stopping the
    child process, removing its files) runs; only from the main thread, where Python allows
    a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
