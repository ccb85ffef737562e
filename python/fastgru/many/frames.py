"""Long-format frames in and out: Nixtla's ``unique_id`` / ``ds`` / ``y`` layout.

``split_long_frame`` checks a long frame and cuts it into one ``SeriesData`` per series (its
rows sorted by time), numbered in the order the ids first appear. Workers only ever see those
numbers (``code``), times and float64 values; the frames that come back are built here, with the
ids taken from the input again, so an id keeps its dtype (int, str, category).
"""
from __future__ import annotations

import math
from typing import Iterable, List, NamedTuple, Sequence, Tuple

import numpy as np

from .._validation import is_real_number_dtype

__all__ = ["SeriesData", "LongFrame", "split_long_frame", "series_per_task", "batches",
           "forecast_frame", "errors_frame"]

# A task should carry a few seconds of work at least (the scheduler spends ~1 ms on each), and
# a run should not need more tasks than a scheduler keeps comfortably in memory.
TASKS_PER_SLOT = 4
MAX_TASKS = 10_000


class SeriesData(NamedTuple):
    """One series: its number (position of its id in first-appearance order), times, values."""

    code: int
    times: object  # a pandas Index (DatetimeIndex or numeric), sorted
    values: np.ndarray  # float64, NaN where the target is missing


class LongFrame(NamedTuple):
    """A checked long frame: the series and what is needed to label results with their ids."""

    series: List[SeriesData]
    ids: object  # the distinct ids, in first-appearance order; ids.take(codes) relabels
    id_col: object
    time_col: object
    target_col: object


def split_long_frame(df, id_col="unique_id", time_col="ds", target_col="y") -> LongFrame:
    """Check ``df`` and split it into series (see the module doc).

    Raises TypeError if ``df`` is not a DataFrame; ValueError for missing or repeated column
    names, missing ids, times that are neither dates nor numbers, or a non-numeric target.
    Problems of one series (too short, NaN, duplicate times) are left to the fit, which reports
    them for that series alone.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame in long format ({id_col!r}, "
                        f"{time_col!r}, {target_col!r} columns); got {type(df).__name__}")
    names = {"id_col": id_col, "time_col": time_col, "target_col": target_col}
    if len({id_col, time_col, target_col}) < 3:
        raise ValueError(f"id_col, time_col and target_col must be three different columns; "
                         f"got {names}")
    missing = [f"{arg}={col!r}" for arg, col in names.items() if col not in df.columns]
    if missing:
        raise ValueError(f"df has no column for {', '.join(missing)}; its columns are "
                         f"{list(df.columns)}")
    if len(df) == 0:
        raise ValueError("df has no rows")

    ids = df[id_col]
    if ids.isna().any():
        rows = np.flatnonzero(ids.isna().to_numpy())
        raise ValueError(f"id_col {id_col!r} is missing in {len(rows)} row(s) (first at "
                         f"position {rows[0]}); every row needs a series id")
    times = _check_times(df[time_col], time_col)
    target = df[target_col]
    if not is_real_number_dtype(target.dtype):
        raise ValueError(f"target_col {target_col!r} must be real numbers; it has dtype "
                         f"{target.dtype}")
    values = target.to_numpy(dtype=np.float64, na_value=np.nan)

    codes, uniques = pd.factorize(ids, sort=False)
    # stable: rows of one series with equal times keep their order (the fit reports duplicates)
    order = pd.DataFrame({"code": codes, "time": times}).sort_values(
        ["code", "time"], kind="stable").index.to_numpy()
    codes = codes[order]
    times = pd.Index(times.take(order), name=None)
    values = values[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(codes)]])
    series = [SeriesData(int(codes[a]), times[a:b], values[a:b]) for a, b in zip(starts, stops)]
    return LongFrame(series, uniques, id_col, time_col, target_col)


def _check_times(column, time_col):
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return pd.Index(column)
    if is_real_number_dtype(column.dtype):
        return pd.Index(column)
    try:  # dates written as text, as read from a CSV
        return pd.Index(pd.to_datetime(column))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"time_col {time_col!r} must hold dates or numbers; cannot read it as "
                         f"dates ({exc})") from None


def series_per_task(n_series: int, slots: int) -> int:
    """How many series go into one task: enough tasks for ``TASKS_PER_SLOT`` per worker slot
    (load balance; a lost worker costs a quarter of a slot's share), at most ``MAX_TASKS``."""
    per_slot = math.ceil(n_series / (TASKS_PER_SLOT * max(1, slots)))
    return max(1, per_slot, math.ceil(n_series / MAX_TASKS))


def batches(series: Sequence[SeriesData], size: int) -> List[List[SeriesData]]:
    """``series`` cut into consecutive lists of ``size`` (the last may be shorter)."""
    return [list(series[i:i + size]) for i in range(0, len(series), size)]


def _concat_index(parts):
    if not parts:
        import pandas as pd

        return pd.Index([])
    return parts[0].append(list(parts[1:])) if len(parts) > 1 else parts[0]


def _sorted_rows(rows):
    return sorted(rows, key=lambda row: row[0])


def forecast_frame(frame: LongFrame, rows: Iterable[Tuple], value_names: Sequence[str]):
    """Rows ``(code, times, column_1, column_2, ...)`` as one long DataFrame
    ``[id_col, time_col, *value_names]``, series in first-appearance order."""
    import pandas as pd

    rows = _sorted_rows(rows)
    lengths = np.array([len(r[1]) for r in rows], dtype=np.int64)
    codes = np.repeat(np.array([r[0] for r in rows], dtype=np.int64), lengths)
    out = {frame.id_col: frame.ids.take(codes),
           frame.time_col: _concat_index([r[1] for r in rows])}
    for k, name in enumerate(value_names):
        parts = [np.asarray(r[2 + k], dtype=np.float64) for r in rows]
        out[name] = np.concatenate(parts) if parts else np.empty(0)
    return pd.DataFrame(out)


def errors_frame(frame: LongFrame, errors: Iterable[Tuple[int, str]]):
    """``(code, reason)`` pairs as a DataFrame ``[id_col, "reason"]`` in first-appearance order."""
    import pandas as pd

    errors = _sorted_rows(errors)
    codes = np.array([c for c, _ in errors], dtype=np.int64)
    return pd.DataFrame({frame.id_col: frame.ids.take(codes),
                         "reason": [r for _, r in errors]})
