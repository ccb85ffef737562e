"""Where the tasks run: in this process, in a local process pool, or on a Dask cluster.

``run_tasks(fn, batches, args, ...)`` calls ``fn(batch, *args)`` once per batch and returns the
results in batch order. Nothing here schedules: the process pool is the standard library's and
the cluster is ``dask.distributed``'s. What is added is recovery and reporting:

* **Threads.** Pool workers start with ``OMP_NUM_THREADS=1`` (and the BLAS equivalents), so
  ``n_jobs`` processes use ``n_jobs`` cores, not ``n_jobs`` times all of them. Dask's nanny
  starts its workers the same way (``distributed.nanny.pre-spawn-environ``). In-process runs
  keep the kernels' own thread count.
* **Lost workers.** A batch whose worker died (a broken pool; on Dask, a task whose scattered
  data or result went with its worker) is sent again, at most ``retries`` times; after that
  its series are reported as ``LostBatch``. An exception raised by ``fn`` itself is a bug, not
  a lost worker, and is raised here.
* **Data sent once.** On Dask each batch is scattered to one worker (not kept in the task
  graph, so the scheduler's memory does not grow with the data); the fitting task then runs
  where its data is. Only a batch lost with a worker is sent again.
* **Progress.** ``progress`` True prints a line to stderr at most once a second; a callable
  gets a ``Progress`` after every finished task.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from .._config import usable_cores

__all__ = ["Progress", "LostBatch", "run_tasks", "default_jobs", "cluster_slots",
           "require_dask_client", "DASK_HINT"]

DASK_HINT = "pip install 'fastgru[dask]'"
# The variables Dask's nanny sets for its workers: one thread each for OpenMP and the BLASes.
_ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_ENV_LOCK = threading.Lock()


@dataclass(frozen=True)
class Progress:
    """Where a run stands, given to a ``progress`` callable after each finished task."""

    tasks_done: int
    tasks_total: int
    series_done: int
    series_total: int
    resubmitted: int  # batches sent again after their worker was lost
    elapsed: float  # seconds since the run started

    def __str__(self) -> str:
        rate = self.series_done / self.elapsed if self.elapsed > 0 else 0.0
        again = f", {self.resubmitted} resent after a lost worker" if self.resubmitted else ""
        return (f"{self.series_done}/{self.series_total} series ({self.tasks_done}/"
                f"{self.tasks_total} tasks) in {self.elapsed:.1f} s, {rate:.1f} series/s{again}")


@dataclass(frozen=True)
class LostBatch:
    """The result of a batch that could not be run: every series in it gets ``reason``."""

    reason: str


class _Tracker:
    def __init__(self, batches, progress, label):
        self.sizes = [len(b) for b in batches]
        self.total = sum(self.sizes)
        self.tasks_done = self.series_done = self.resubmitted = 0
        self.start = time.perf_counter()
        self.last_print = 0.0
        self.label = label
        self.report = progress if callable(progress) else (self._print if progress else None)

    def done(self, i):
        self.tasks_done += 1
        self.series_done += self.sizes[i]
        self._emit()

    def resent(self, count=1):
        self.resubmitted += count

    def _emit(self):
        if self.report is not None:
            self.report(Progress(self.tasks_done, len(self.sizes), self.series_done, self.total,
                                 self.resubmitted, time.perf_counter() - self.start))

    def _print(self, info: Progress):
        now = time.perf_counter()
        if now - self.last_print >= 1.0 or info.tasks_done == info.tasks_total:
            self.last_print = now
            print(f"{self.label}: {info}", file=sys.stderr, flush=True)


# A pool's workers take a second or more to start (each imports NumPy, pandas and fastgru):
# worth it only with several series for each of them to fit.
MIN_SERIES_PER_PROCESS = 8


def default_jobs(n_series: int) -> int:
    """Local processes for ``n_series`` series: every usable core, but no more than one per
    ``MIN_SERIES_PER_PROCESS`` series (1: run in this process)."""
    return max(1, min(usable_cores(), n_series // MIN_SERIES_PER_PROCESS))


def require_dask_client(client):
    """Check ``client`` is a ``dask.distributed.Client``; ImportError with the pip hint when
    Dask is not installed."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("client= needs dask.distributed, which is not installed: "
                          f"{DASK_HINT}") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client (or None to run locally); "
                        f"got {type(client).__name__}")
    return client


def cluster_slots(client) -> int:
    """Tasks the cluster runs at once: the sum of its workers' threads (at least 1)."""
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def run_tasks(fn: Callable, batches: Sequence, args: tuple = (), *, client=None, n_jobs: int = 1,
              progress=None, retries: int = 3, label: str = "fastgru") -> List:
    """``[fn(batch, *args) for batch in batches]``, run as the module doc says."""
    tracker = _Tracker(batches, progress, label)
    if client is not None:
        return _run_dask(client, fn, batches, args, tracker, retries)
    if n_jobs > 1 and len(batches) > 1:
        return _run_pool(fn, batches, args, min(n_jobs, len(batches)), tracker, retries)
    results = []
    for i, batch in enumerate(batches):
        results.append(fn(batch, *args))
        tracker.done(i)
    return results


@contextmanager
def _one_thread_env():
    """Child processes started inside inherit one-thread settings; ours are put back after.
    (The standard library cannot pass an environment to a pool's workers, which
    ProcessPoolExecutor starts during the first submits; loky sets them the same way.)"""
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in _ONE_THREAD_ENV}
        os.environ.update(_ONE_THREAD_ENV)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _run_pool(fn, batches, args, workers, tracker, retries):
    import multiprocessing

    # spawn, not fork: a forked child of a process whose OpenMP runtime has started threads
    # can hang in its first parallel region (GNU libgomp)
    context = multiprocessing.get_context("spawn")
    results: List[Optional[object]] = [None] * len(batches)
    pending = list(range(len(batches)))
    attempts = 0
    while pending:
        lost = []
        with ProcessPoolExecutor(max_workers=min(workers, len(pending)),
                                 mp_context=context) as pool:
            with _one_thread_env():  # the workers start during the first submits
                futures = {pool.submit(fn, batches[i], *args): i for i in pending}
            try:
                for future in as_completed(futures):
                    i = futures[future]
                    try:
                        results[i] = future.result()
                    except BrokenProcessPool:
                        lost.append(i)
                        continue
                    tracker.done(i)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        if lost and len(lost) == len(pending):
            # not one task finished: the workers die on start, not mid-run (most often a
            # script that starts the pool at import time, which every spawned worker re-runs)
            raise RuntimeError(
                "the worker processes died before finishing any task. In a script, call "
                "forecast_many/backtest_many under `if __name__ == \"__main__\":` (spawned "
                "workers import the script), or pass n_jobs=1 to run in this process")
        pending = sorted(lost)
        if pending:
            attempts += 1
            if attempts > retries:
                for i in pending:
                    results[i] = LostBatch(f"its worker process died {attempts} times")
                break
            tracker.resent(len(pending))
    return results


def _run_dask(client, fn, batches, args, tracker, retries):
    from distributed import KilledWorker
    from distributed import as_completed as dask_as_completed

    results: List[Optional[object]] = [None] * len(batches)
    attempts = [0] * len(batches)
    run = uuid.uuid4().hex  # keys unique to this run: a later run never reads this one's results

    def submit(i, data):
        return client.submit(fn, data, *args, pure=False,
                             key=f"{tracker.label}-{run}-{i}-{attempts[i]}")

    data = client.scatter(list(batches), hash=False)  # one call: batches spread over workers
    futures = {submit(i, d): i for i, d in enumerate(data)}
    del data  # the tasks hold the scattered data; it is released with them
    pending = dask_as_completed(list(futures))
    try:
        for future in pending:
            i = futures.pop(future)
            try:
                results[i] = future.result()  # an exception raised by fn (a bug) is raised here
            except KilledWorker as exc:
                # Dask already re-ran it on other workers and each of them died: the batch itself
                # kills workers (out of memory, say); sending it again would kill more
                results[i] = LostBatch(f"its task killed every worker that ran it ({exc})")
            except CancelledError:
                # its scattered data, or its result before we fetched it, went with a worker
                attempts[i] += 1
                if attempts[i] > retries:
                    results[i] = LostBatch(f"its data was lost with a worker {attempts[i]} times")
                else:
                    [fresh] = client.scatter([batches[i]], hash=False)
                    again = submit(i, fresh)
                    futures[again] = i
                    pending.add(again)
                    tracker.resent()
                    continue
            finally:
                future.release()
            tracker.done(i)
    except BaseException:  # a bug in fn, or Ctrl-C: stop what is still queued
        client.cancel(list(futures))
        raise
    return results
