"""Time indexes for forecasting: check them, infer their step, continue them, describe them.

What ``GRUForecaster`` needs from pandas dates, in one place:

* ``check_index``: a DatetimeIndex or numeric index that is sorted, unique and has no NaT
  (errors name the first offending date and say how to fix it);
* ``infer_step`` / ``future_index``: the spacing of an index and the dates that come next
  (pandas' frequency when it has one; for dates with gaps, the calendar step of month,
  quarter or year starts or ends or of business days; else the median spacing);
* ``encode_*`` / ``decode_*``: that spacing and the last date as JSON-safe values for saving;
* ``calendar_features``: day of week, hour, month or day of year as sine/cosine pairs, known in
  advance for any date (the forecaster's calendar covariates).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["CALENDAR_FEATURES", "calendar_features", "calendar_feature_names", "check_calendar",
           "check_index", "gaps",
           "decode_index_value", "decode_step", "encode_index_value", "encode_step",
           "future_index", "infer_step", "is_datetime_index"]

# name -> (how to read it from a DatetimeIndex, its period): each becomes a sin/cos pair, so
# December sits next to January and hour 23 next to hour 0.
CALENDAR_FEATURES = {
    "hour": (lambda idx: idx.hour + idx.minute / 60.0, 24.0),
    "day_of_week": (lambda idx: idx.day_of_week, 7.0),
    "month": (lambda idx: idx.month - 1, 12.0),
    "day_of_year": (lambda idx: idx.day_of_year - 1, 365.25),
}


def is_datetime_index(index) -> bool:
    import pandas as pd

    return isinstance(index, pd.DatetimeIndex)


def check_index(index, what: str = "data") -> None:
    """Raise ValueError unless ``index`` is a sorted, duplicate-free DatetimeIndex (without NaT)
    or numeric index."""
    import pandas as pd

    if len(index) == 0:
        raise ValueError(f"{what} is empty")
    if isinstance(index, pd.DatetimeIndex):
        if index.hasnans:
            raise ValueError(f"{what} has missing dates (NaT) in its index")
        if not index.is_unique:
            dup = index[index.duplicated()].unique()
            shown = ", ".join(str(d) for d in dup[:5])
            raise ValueError(
                f"{what} has duplicate dates in its index: {shown}"
                f"{' ...' if len(dup) > 5 else ''} ({len(dup)} duplicated); "
                "aggregate them first (e.g. df.groupby(level=0).mean())"
            )
        if not index.is_monotonic_increasing:
            pos = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
            raise ValueError(
                f"{what}'s dates are not in increasing order: {index[pos]} comes after "
                f"{index[pos - 1]} (row {pos}); sort them first (df.sort_index())"
            )
    elif pd.api.types.is_numeric_dtype(index.dtype):
        if not index.is_unique or not index.is_monotonic_increasing:
            raise ValueError(f"{what}'s index must be increasing without duplicates")
    else:
        raise ValueError(
            f"{what}'s index must be a DatetimeIndex (e.g. read_csv(..., parse_dates=['Date'],"
            f" index_col='Date')) or numeric; got an index of dtype {index.dtype}"
        )


def infer_step(index):
    """The index step as ``("offset", DateOffset)``, ``("timedelta", Timedelta)``,
    ``("number", step)``, or ``None`` for no index (arrays)."""
    import pandas as pd

    if index is None:
        return None
    if isinstance(index, pd.DatetimeIndex):
        freq = _pandas_freq(index)
        if freq is not None:
            return ("offset", freq)
        calendar = _calendar_step(index)
        if calendar is not None:
            return ("offset", calendar[0])
        if len(index) >= 2:
            return ("timedelta", pd.Timedelta((index[1:] - index[:-1]).median()))
        return ("timedelta", pd.Timedelta(days=1))
    if len(index) >= 2:
        step = np.median(np.diff(index.to_numpy()))
        if pd.api.types.is_integer_dtype(index.dtype) and float(step).is_integer():
            step = int(step)
        return ("number", step)
    return ("number", 1)


def _pandas_freq(index):
    """The DatetimeIndex's frequency, or the one pandas infers from regular dates, or None."""
    import pandas as pd

    if index.freq is not None or len(index) < 3:
        return index.freq
    try:  # freq="infer" is pd.infer_freq returning an offset on every pandas version
        return pd.DatetimeIndex(index, freq="infer").freq
    except (TypeError, ValueError):
        return None


def _calendar_step(index):
    """``(offset, periods between consecutive dates)`` for dates with gaps whose spacing is a
    calendar unit that a median time span would get wrong: n months, quarters or years from
    month starts or ends (months differ in length), or n business days (weekends are not
    gaps). Every date must be such a date, at one time of day, and every spacing a whole
    number of the median spacing; else None. So monthly data missing a month continues on
    month starts, and trading days skip weekends."""
    import pandas as pd

    if len(index) < 3:
        return None
    if index.tz is not None:  # the calendar of the wall clock, not of UTC
        index = index.tz_localize(None)
    time_of_day = index - index.normalize()
    if (time_of_day != time_of_day[0]).any():
        return None

    def unit_of(steps):  # the median spacing, when every spacing is a whole number of it
        unit = np.median(steps)
        if unit < 1 or not float(unit).is_integer() or np.any(steps % int(unit)):
            return None
        return int(unit)

    first = index[0]
    starts, ends = bool((index.day == 1).all()), bool(index.is_month_end.all())
    if starts or ends:
        months = np.diff(np.asarray(index.year) * 12 + np.asarray(index.month))
        unit = unit_of(months)
        if unit is None:
            return None
        quarter_month = (first.month - 1) % 3 + 1  # pandas' startingMonth: 1 = Jan, Apr, ...
        if unit % 12 == 0:
            offset = (pd.offsets.YearBegin if starts else pd.offsets.YearEnd)(
                unit // 12, month=first.month)
        elif unit % 3 == 0:
            offset = (pd.offsets.QuarterBegin if starts else pd.offsets.QuarterEnd)(
                unit // 3, startingMonth=quarter_month)
        else:
            offset = (pd.offsets.MonthBegin if starts else pd.offsets.MonthEnd)(unit)
        return offset, months // unit
    if bool((index.day_of_week < 5).all()):
        days = index.normalize().values.astype("datetime64[D]")
        busdays = np.busday_count(days[:-1], days[1:])
        unit = unit_of(busdays)
        if unit is not None and unit < 5:  # 5 business days apart: weekly data, a time span
            return pd.offsets.BDay(unit), busdays // unit
    return None


def future_index(last, step, n: int, name=None):
    """The ``n`` index values after ``last`` at spacing ``step`` (from ``infer_step``)."""
    import pandas as pd

    kind, value = step
    if kind == "offset":
        return pd.date_range(start=last + value, periods=n, freq=value, name=name)
    if kind == "timedelta":
        return pd.DatetimeIndex([last + value * k for k in range(1, n + 1)], name=name)
    if isinstance(value, int) and isinstance(last, (int, np.integer)):
        return pd.RangeIndex(int(last) + value, int(last) + value * (n + 1), value, name=name)
    return pd.Index([last + value * k for k in range(1, n + 1)], name=name)


def gaps(index) -> Tuple[int, list]:
    """Gaps in a DatetimeIndex without a regular frequency: ``(count, [(before, after), ...])``
    (the first five pairs): spacings of more than one period of a calendar step (months,
    quarters, years, business days: see ``_calendar_step``), else over 1.5 times the median.
    ``(0, [])`` when pandas can infer a frequency (monthly dates are regular although months
    differ in length)."""
    import pandas as pd

    if not isinstance(index, pd.DatetimeIndex) or len(index) < 3:
        return 0, []
    if _pandas_freq(index) is not None:
        return 0, []
    calendar = _calendar_step(index)
    if calendar is not None:
        where = np.flatnonzero(calendar[1] > 1)
    else:
        spacing = np.diff(index.asi8)
        where = np.flatnonzero(spacing > 1.5 * np.median(spacing))
    return len(where), [(index[i], index[i + 1]) for i in where[:5]]


def calendar_feature_names(names: Sequence[str]) -> List[str]:
    """Column names of ``calendar_features(index, names)``: ``<name>_sin``, ``<name>_cos``."""
    return [f"{n}_{part}" for n in names for part in ("sin", "cos")]


def check_calendar(names) -> tuple:
    """``names`` as a tuple of known calendar feature names (None -> empty)."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = (names,)
    try:
        names = tuple(names)
    except TypeError:
        raise TypeError(f"calendar must be None or a list of names from "
                        f"{list(CALENDAR_FEATURES)}; got {names!r}") from None
    unknown = [n for n in names if n not in CALENDAR_FEATURES]
    if unknown:
        raise ValueError(f"calendar: unknown feature(s) {unknown}; choose from "
                         f"{list(CALENDAR_FEATURES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"calendar names a feature more than once: {list(names)}")
    return names


def calendar_features(index, names: Sequence[str]) -> np.ndarray:
    """(len(index), 2 * len(names)) float64: sin and cos of each feature over its period."""
    if not is_datetime_index(index):
        raise ValueError("calendar features need a DatetimeIndex; got an index of type "
                         f"{type(index).__name__}")
    columns = []
    for name in names:
        read, period = CALENDAR_FEATURES[name]
        angle = 2.0 * np.pi * np.asarray(read(index), dtype=np.float64) / period
        columns += [np.sin(angle), np.cos(angle)]
    return np.stack(columns, axis=1) if columns else np.empty((len(index), 0))


# ------------------------------------------------------------------------------ saving


def encode_index_value(value):
    import pandas as pd

    if isinstance(value, pd.Timestamp):
        return {"timestamp": value.isoformat()}
    if isinstance(value, (np.integer, int)):
        return {"int": int(value)}
    return {"float": float(value)}


def decode_index_value(enc):
    import pandas as pd

    if "timestamp" in enc:
        return pd.Timestamp(enc["timestamp"])
    if "int" in enc:
        return enc["int"]
    return enc["float"]


def encode_step(step):
    if step is None:
        return None
    kind, value = step
    if kind == "offset":
        return {"offset": value.freqstr}
    if kind == "timedelta":
        return {"timedelta": value.isoformat()}
    return {"number": value.item() if isinstance(value, np.generic) else value}


def decode_step(enc):
    import pandas as pd

    if enc is None:
        return None
    if "offset" in enc:
        return ("offset", pd.tseries.frequencies.to_offset(enc["offset"]))
    if "timedelta" in enc:
        return ("timedelta", pd.Timedelta(enc["timedelta"]))
    return ("number", enc["number"])
