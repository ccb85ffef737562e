"""``fastgru bench`` / ``python -m fastgru.bench``: options, the run, the table, JSON and plot."""
from __future__ import annotations

import argparse
import json
from typing import List, Optional, Sequence

from .harness import ALL_WORKLOADS, BenchConfig, cores, log, sizes_for
from .report import format_table, write_plot
from .run import run_benchmarks, run_child


def parse_threads(text: str) -> List[int]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        n = cores() if part in ("all", "max") else int(part)
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
    cfg.threads = parse_threads(args.threads) if args.threads else parse_threads("1,all")
    for name in ("repeats", "epoch_repeats", "warmup", "rounds"):
        if getattr(args, name) is not None:
            setattr(cfg, name, max(1 if name != "warmup" else 0, getattr(args, name)))
    if args.max_seconds is not None:
        cfg.max_seconds = args.max_seconds if args.max_seconds > 0 else None
    if args.peers is not None:
        cfg.peers = [] if args.peers.strip().lower() == "none" else \
            [p.strip() for p in args.peers.split(",") if p.strip()]
    cfg.isolate = not args.no_isolate
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args._child:  # one library at one thread count, for run._run_child
        return run_child(args._child, args.json)
    cfg = config_from_args(args)
    report = run_benchmarks(cfg)
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=float)
        log(f"wrote {args.json}")
    if args.plot and write_plot(report, args.plot):
        log(f"wrote {args.plot}")
    bad = [r for r in report["results"] if r["status"] in ("mismatch", "error")]
    if bad:
        log(f"{len(bad)} implementation(s) failed the agreement check or errored (see table)")
        return 1
    return 0
