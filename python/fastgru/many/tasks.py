"""What one task does on a worker: fit one ``GRUForecaster`` per series of a batch.

A task gets a list of ``SeriesData`` and returns a ``BatchResult``: rows for the series that
were fitted and ``(code, reason)`` for those that could not be (too short, NaN, duplicate
dates, ...: the ``ValueError`` the forecaster raised). One series' failure never stops the
others. A series is fitted the same way whichever process runs it, so with a fixed ``seed`` a
series gets the same forecast bit for bit on one core, in a process pool or on a cluster.
"""
from __future__ import annotations

from typing import List, NamedTuple, Sequence, Tuple

import numpy as np

from ..forecaster import GRUForecaster
from .frames import SeriesData

__all__ = ["BatchResult", "forecast_local", "backtest_local"]


class BatchResult(NamedTuple):
    rows: List[Tuple]  # (code, times, values...) per fitted series
    errors: List[Tuple[int, str]]  # (code, reason) per series that could not be fitted


def _as_series(s: SeriesData):
    import pandas as pd

    return pd.Series(s.values, index=s.times, name="y")


def forecast_local(batch: Sequence[SeriesData], horizon: int, params: dict) -> BatchResult:
    """Fit each series and forecast ``horizon`` steps: rows ``(code, future times, y_hat)``."""
    rows, errors = [], []
    for s in batch:
        try:
            forecast = GRUForecaster(**params).fit(_as_series(s)).predict(steps=horizon)
        except ValueError as exc:
            errors.append((s.code, str(exc)))
            continue
        rows.append((s.code, forecast.index, forecast.to_numpy(dtype=np.float64)))
    return BatchResult(rows, errors)


def backtest_local(batch: Sequence[SeriesData], test_size, params: dict) -> BatchResult:
    """``GRUForecaster.backtest`` per series: rows ``(code, times of the held-out tail, actual,
    forecast, persistence)``, one step ahead."""
    rows, errors = [], []
    for s in batch:
        try:
            result = GRUForecaster(**params).backtest(_as_series(s), test_size=test_size)
        except ValueError as exc:
            errors.append((s.code, str(exc)))
            continue
        p = result.predictions
        rows.append((s.code, p.index, p["actual"].to_numpy(dtype=np.float64),
                     p["forecast"].to_numpy(dtype=np.float64),
                     p["persistence"].to_numpy(dtype=np.float64)))
    return BatchResult(rows, errors)
