"""Many series at once: ``forecast_many`` and ``backtest_many`` on long-format frames.

    fc = fastgru.forecast_many(df, horizon=7, window=24, units=16, epochs=5, seed=0)
    fc = fastgru.forecast_many(df, 7, client=Client("tcp://scheduler:8786"), seed=0)
    bt = fastgru.backtest_many(df, test_size=28, window=24, seed=0); print(bt)

``df`` is Nixtla's long format: one row per (series id, time, value). Series may differ in
length, start and frequency; each gets its own future times. Two modes:

* ``mode="local"``: one ``GRUForecaster`` per series, with the given settings;
* ``mode="global"``: one GRU trained on windows from every series, each series scaled by its
  own scaler (``many.globalmodel``).

Where it runs: ``client=None`` runs on this machine, ``n_jobs`` processes (default: every
core, but at least 8 series each) with one kernel thread each; ``n_jobs=1`` runs in this
process with the kernels' own threads. ``client=`` a ``dask.distributed.Client`` runs the
same tasks on that cluster. With a fixed ``seed`` a series gets the same forecast bit for bit
either way (``many.executors``).
The series are batched into tasks of ``series_per_task`` (default: about four tasks per
worker thread, at most 10,000 tasks; ``many.frames``).

Series that cannot be fitted (too short, NaN, duplicate times, ...) do not stop the others:
they are listed with the reason in an errors table (``return_errors=True``; else a warning
names how many and the first reason). Call from under ``if __name__ == "__main__":`` in a
script, as for any use of process pools or a ``LocalCluster``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Dict

import numpy as np

from .._validation import check_positive_int
from ..forecaster import GRUForecaster
from . import frames
from .executors import (LostBatch, Progress, cluster_slots, default_jobs, require_dask_client,
                        run_tasks)
from .globalmodel import backtest_global, check_global_params, forecast_global
from .tasks import backtest_local, forecast_local

__all__ = ["forecast_many", "backtest_many", "ManyBacktestResult", "Progress"]

_MODES = ("local", "global")


def forecast_many(df, horizon: int, *, id_col="unique_id", time_col="ds", target_col="y",
                  mode: str = "local", client=None, n_jobs=None, series_per_task=None,
                  progress=None, return_errors: bool = False, **forecaster_params):
    """Forecast the next ``horizon`` steps of every series in the long frame ``df``.

    Returns a DataFrame ``[id_col, time_col, "y_hat"]``: ``horizon`` rows per fitted series,
    at the times that follow its own last time (its own frequency), series in the order their
    ids first appear. With ``return_errors=True``, returns ``(forecasts, errors)`` where
    ``errors`` is a DataFrame ``[id_col, "reason"]`` of the series that could not be fitted.

    ``forecaster_params`` go to ``GRUForecaster`` (``window``, ``units``, ``epochs``,
    ``batch_size``, ``seed``, ...; ``mode="global"`` takes the subset in
    ``many.globalmodel.GLOBAL_DEFAULTS``, ``log`` and ``difference`` for trends included).

    ``client``: a ``dask.distributed.Client`` to run on (``n_jobs`` is then ignored); None runs
    locally on ``n_jobs`` processes (default: every usable core, but at least 8 series each;
    1: in this process).
    ``series_per_task``: series per task (default: about four tasks per worker thread, at most
    10,000 tasks). ``mode="global"`` trains one model, so it is one task wherever it runs.
    ``progress``: True prints progress to stderr, a callable receives a ``Progress`` after each
    task, None prints on a cluster only.
    """
    horizon = check_positive_int("horizon", horizon)
    run = _Run(df, id_col, time_col, target_col, mode, client, n_jobs, series_per_task,
               progress, forecaster_params, "forecast_many")
    if run.mode == "local":
        rows, errors = run.execute(forecast_local, (horizon, {**run.params, "horizon": horizon}))
    else:
        rows, errors = run.execute(forecast_global, (horizon, run.params))
    forecasts = frames.forecast_frame(run.frame, rows, ["y_hat"])
    errors = frames.errors_frame(run.frame, errors)
    if return_errors:
        return forecasts, errors
    _warn_errors(errors, len(run.frame.series), id_col, "forecast_many")
    return forecasts


@dataclass
class ManyBacktestResult:
    """What ``backtest_many`` returns.

    ``metrics``: one row per fitted series: ``[id_col, "n_test", "rmse", "mae",
    "persistence_rmse", "persistence_mae", "skill"]`` (skill = 1 - rmse / persistence_rmse,
    > 0 where the GRU beats "next value = last value"); ``predictions``: the one-step-ahead
    forecasts ``[id_col, time_col, "y", "y_hat", "persistence"]``; ``errors``: ``[id_col,
    "reason"]`` for series that could not be fitted; ``summary``: ``n_series``, ``n_fitted``,
    ``n_failed``, ``share_beating_persistence`` (of the fitted series), ``median_skill``.
    """

    metrics: Any
    predictions: Any
    errors: Any
    summary: Dict[str, float]

    def __str__(self) -> str:
        s = self.summary
        fitted = f"{s['n_fitted']} of {s['n_series']} series fitted ({s['n_failed']} failed)"
        if s["n_fitted"] == 0:
            return f"{fitted}; see .errors for why"
        return (f"{fitted}; the GRU beats persistence on {s['share_beating_persistence']:.1%} "
                f"of them, median skill {s['median_skill']:+.1%}")


def backtest_many(df, test_size=0.1, *, id_col="unique_id", time_col="ds", target_col="y",
                  mode: str = "local", client=None, n_jobs=None, series_per_task=None,
                  progress=None, **forecaster_params) -> ManyBacktestResult:
    """Hold out each series' last ``test_size`` rows (an int, or a fraction of each series'
    rows), fit on the rest, forecast each held-out row one step ahead from the actual rows
    before it, and compare with persistence. Arguments as ``forecast_many``; returns a
    ``ManyBacktestResult`` (per-series metrics, predictions, errors, summary)."""
    test_size = _check_test_size(test_size)
    run = _Run(df, id_col, time_col, target_col, mode, client, n_jobs, series_per_task,
               progress, forecaster_params, "backtest_many")
    task = backtest_local if run.mode == "local" else backtest_global
    rows, errors = run.execute(task, (test_size, run.params))
    predictions = frames.forecast_frame(run.frame, rows, ["y", "y_hat", "persistence"])
    metrics = _metrics(run.frame, rows)
    errors = frames.errors_frame(run.frame, errors)
    skill = metrics["skill"].to_numpy()
    beats = (metrics["rmse"] < metrics["persistence_rmse"]).to_numpy()
    summary = {
        "n_series": len(run.frame.series),
        "n_fitted": len(metrics),
        "n_failed": len(errors),
        "share_beating_persistence": float(beats.mean()) if len(beats) else float("nan"),
        "median_skill": float(np.nanmedian(skill)) if np.isfinite(skill).any() else float("nan"),
    }
    return ManyBacktestResult(metrics, predictions, errors, summary)


# ---------------------------------------------------------------------------------- helpers


class _Run:
    """The checked arguments of one call, and how its tasks are cut and run."""

    def __init__(self, df, id_col, time_col, target_col, mode, client, n_jobs, series_per_task,
                 progress, params, label):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}; got {mode!r}")
        self.mode = mode
        self.params = _check_params(mode, params)
        if client is not None:
            require_dask_client(client)
        self.client = client
        if n_jobs is not None:
            n_jobs = check_positive_int("n_jobs", n_jobs)
        if series_per_task is not None:
            series_per_task = check_positive_int("series_per_task", series_per_task)
        self.frame = frames.split_long_frame(df, id_col, time_col, target_col)
        n = len(self.frame.series)
        self.n_jobs = default_jobs(n) if n_jobs is None else n_jobs
        if mode == "global":  # one model: one task, whose data is sent once
            size = n
        elif series_per_task is not None:
            size = series_per_task
        else:
            slots = cluster_slots(client) if client is not None else self.n_jobs
            size = frames.series_per_task(n, slots)
        self.batches = frames.batches(self.frame.series, size)
        self.progress = (client is not None) if progress is None else progress
        self.label = label

    def execute(self, fn, args):
        """Run ``fn`` on every batch: (rows, errors) over all series."""
        results = run_tasks(fn, self.batches, args, client=self.client, n_jobs=self.n_jobs,
                            progress=self.progress, label=self.label)
        rows, errors = [], []
        for batch, result in zip(self.batches, results):
            if isinstance(result, LostBatch):
                errors.extend((s.code, f"not fitted: {result.reason}") for s in batch)
            else:
                rows.extend(result.rows)
                errors.extend(result.errors)
        return rows, errors


def _check_params(mode, params):
    if mode == "global":
        return check_global_params(params)
    valid = set(GRUForecaster().get_params())
    unknown = sorted(set(params) - valid)
    if unknown:
        raise TypeError(f"unknown GRUForecaster parameter(s) {unknown}; valid ones are "
                        f"{sorted(valid)}")
    # forecast_many returns point forecasts only: no interval calibration (which would fit
    # every series twice) unless the caller asks for it
    return {"calibration_size": None, **params}


def _check_test_size(test_size):
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"a fractional test_size must be in (0, 1); got {test_size}")
        return test_size
    return check_positive_int("test_size", test_size)


def _metrics(frame, rows):
    import pandas as pd

    rows = sorted(rows, key=lambda r: r[0])
    records = []
    for _, _, actual, forecast, persistence in rows:
        rmse = float(np.sqrt(np.mean((actual - forecast) ** 2)))
        p_rmse = float(np.sqrt(np.mean((actual - persistence) ** 2)))
        records.append((len(actual), rmse, float(np.mean(np.abs(actual - forecast))), p_rmse,
                        float(np.mean(np.abs(actual - persistence))),
                        1.0 - rmse / p_rmse if p_rmse > 0 else float("nan")))
    columns = ["n_test", "rmse", "mae", "persistence_rmse", "persistence_mae", "skill"]
    metrics = pd.DataFrame(records, columns=columns)
    # typed even when empty (every series failed): the summary's comparisons need numbers
    metrics = metrics.astype({c: np.int64 if c == "n_test" else np.float64 for c in columns})
    codes = np.array([r[0] for r in rows], dtype=np.int64)
    metrics.insert(0, frame.id_col, frame.ids.take(codes))
    return metrics


def _warn_errors(errors, n_series, id_col, what):
    if len(errors):
        first = errors.iloc[0]
        warnings.warn(
            f"{what}: {len(errors)} of {n_series} series could not be fitted and have no "
            f"forecast (first: {id_col}={first[id_col]!r}: {first['reason']}); pass "
            "return_errors=True for the table of ids and reasons", UserWarning, stacklevel=3)
