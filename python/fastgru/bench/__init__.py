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
thread count (>1: slower than fastgru). Each library runs at each thread count in its own
child process, so that no library's thread pool slows another's rows; there its
implementations of a workload take turns repetition by repetition (``time_in_turns``), so
that e.g. ``Sequential.fit`` and the bare kernel loop meet the same moments of a noisy machine.

Modules: ``harness`` (what a workload, candidate and peer are; timing; the agreement check),
``workloads`` (data, weights, the matmul yardstick), ``training`` (workload A's loop on the
bare kernels), ``peer_<library>`` (one module per implementation family), ``peers`` (the
registry), ``run`` (a whole run, child processes, ratios), ``report`` (table, chart),
``cli`` (``fastgru bench``).
"""
from __future__ import annotations

from . import peers
from .cli import main
from .harness import (ALL_WORKLOADS, BenchConfig, Candidate, Mismatch, Peer, Runner, SkipCandidate,
                      Workload, max_diff, sizes_for, time_calls, time_in_turns)
from .report import format_table, write_plot
from .run import run_benchmarks
from .training import KernelTrainer
from .workloads import forward_flops, make_workloads, matmul_baseline

__all__ = ["main", "run_benchmarks", "BenchConfig", "Workload", "Candidate", "Runner", "Peer",
           "Mismatch", "SkipCandidate", "peers", "ALL_WORKLOADS", "sizes_for", "time_calls",
           "time_in_turns", "max_diff", "format_table", "write_plot", "KernelTrainer",
           "forward_flops", "make_workloads", "matmul_baseline"]
