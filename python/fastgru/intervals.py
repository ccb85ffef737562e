"""Prediction intervals by split conformal prediction, one per forecast horizon step.

Why conformal and not a quantile loss: it needs nothing from the network (any loss, any
strategy, the same trained GRU), it holds its coverage without assuming a distribution of the
errors, and measuring errors separately at each step ahead makes the band widen with the
horizon as much as the errors really do (recursive forecasts compound their errors). A quantile
loss would need one more output per level, a level fixed at training time, and still gives no
coverage guarantee. The price is a calibration tail: ``GRUForecaster`` fits a copy of itself
on all but the last rows and measures its errors there, from every origin in the tail.

For ``n`` absolute errors at a step and a level ``L`` (percent), the radius is the
``ceil((n + 1) * L / 100)``-th smallest error: with exchangeable errors a new one falls inside
with probability at least ``L`` percent. When ``n`` is too small for that rank (fewer than 19
errors for 95 %), the largest error is used and the coverage can fall short of ``L``.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["check_levels", "conformal_radius", "interval_columns"]


def check_levels(level) -> Tuple[float, ...]:
    """``level`` (a number or a sequence of numbers in (0, 100)) as a sorted tuple; None -> ()."""
    if level is None:
        return ()
    items = [level] if isinstance(level, (int, float, np.integer, np.floating)) else level
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"level must be a number or a tuple of numbers in (0, 100), e.g. "
                        f"(80, 95); got {level!r}") from None
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float, np.integer, np.floating)) \
                or not 0 < item < 100:
            raise ValueError(f"level must be numbers in (0, 100) (percent), e.g. (80, 95); "
                             f"got {level!r}")
        out.append(float(item))
    if not out:
        raise ValueError("level is empty; pass None for no intervals")
    return tuple(sorted(set(out)))


def _label(level: float) -> str:
    # 15 significant digits: distinct levels keep distinct names (":g" made 99.99999999 "100")
    return str(int(level)) if float(level).is_integer() else f"{level:.15g}"


def interval_columns(levels: Sequence[float]) -> List[str]:
    """``["lo_80", "hi_80", "lo_95", "hi_95"]`` for levels (80, 95)."""
    return [f"{side}_{_label(lv)}" for lv in levels for side in ("lo", "hi")]


def conformal_radius(errors: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Interval half-widths from absolute errors.

    ``errors``: (steps, origins, targets), NaN where a step was not measured from an origin
    (past the end of the calibration tail). Returns (len(levels), steps, targets).
    """
    errors = np.asarray(errors, dtype=np.float64)
    steps, _, targets = errors.shape
    out = np.empty((len(levels), steps, targets))
    for h in range(steps):
        for j in range(targets):
            e = np.sort(errors[h, :, j][~np.isnan(errors[h, :, j])])
            n = len(e)
            for k, lv in enumerate(levels):
                if n == 0:
                    out[k, h, j] = np.nan
                    continue
                rank = math.ceil((n + 1) * lv / 100.0)
                out[k, h, j] = e[min(rank, n) - 1]
    return out
