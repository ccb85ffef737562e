"""Which SIMD path and how many threads the kernels use."""
from __future__ import annotations

import os

from . import _core, _openmp


def set_num_threads(n: int) -> None:
    """Use at most ``n`` OpenMP threads in the kernels, 1 <= n <= 4 per processor (at least
    64 allowed): more never pays, and OpenMP kills the process when it cannot start them."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int; got {type(n).__name__}")
    limit = thread_limit()
    if not 1 <= n <= limit:
        raise ValueError(f"n must be between 1 and {limit} (4 threads per processor, at "
                         f"least 64); got {n}")
    _core.set_num_threads(n)


def thread_limit() -> int:
    """The most threads ``set_num_threads`` accepts (4 per processor, at least 64)."""
    return _core.thread_limit()


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """The number of threads the kernels use at most."""
    return _core.get_num_threads()


def config() -> dict:
    """The build and run-time configuration as a dict (see ``show_config``)."""
    return {**_core.config(), "openmp_wait": _openmp.wait_policy}


def show_config(mode: str = "stdout") -> dict | None:
    """Print the SIMD path chosen for this CPU, the compiler, OpenMP, the thread count, whether
    kernels may run fewer threads when a team measures slower than one thread (shared cores:
    ``adaptive_threads``; off with FASTGRU_ADAPTIVE_THREADS=0) and how idle OpenMP threads wait.
    ``mode="dicts"`` returns them as a dict instead, as ``numpy.show_config`` does (for a
    service's log or a benchmark's record)."""
    if mode == "dicts":
        return config()
    if mode != "stdout":
        raise ValueError(f"mode must be 'stdout' or 'dicts'; got {mode!r}")
    for key, value in config().items():
        print(f"{key:>16}: {value}")
    return None
