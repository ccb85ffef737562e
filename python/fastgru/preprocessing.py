"""Scalers and sliding windows: what a forecasting recipe does before the GRU sees the data.

``MinMaxScaler`` and ``StandardScaler`` follow scikit-learn's names and semantics (``fit``,
``transform``, ``fit_transform``, ``inverse_transform``; per column; the same fitted attributes;
constant columns handled the same way; NaN ignored when fitting and kept when transforming),
with two additions for time series:

* a 1-D array (one series) is accepted and comes back 1-D;
* pandas in, pandas out: a Series or DataFrame comes back with the same index and columns.

``LogTransformer`` and ``Differencer`` are the target transforms for series with a trend or a
season (a GRU trained on min-max scaled values cannot forecast past the training range; on
log-differences it can): ``difference`` / ``undifference`` are the same maps on plain arrays.

``make_windows`` cuts a series into (input window, target) pairs with
``numpy.lib.stride_tricks.sliding_window_view``: ``X`` and ``y`` are read-only *views* of the
input array (no copy), so windows over a long series cost no memory until they are used.
"""
from __future__ import annotations

import inspect
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._validation import check_positive_int

__all__ = ["NotFittedError", "MinMaxScaler", "StandardScaler", "LogTransformer", "Differencer",
           "difference", "undifference", "make_windows"]


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (as ``sklearn.exceptions.NotFittedError``)."""


# ----------------------------------------------------------------------------------------------
# estimator plumbing shared with GRUForecaster


class _ParamsMixin:
    """scikit-learn's ``get_params`` / ``set_params`` for estimators whose ``__init__`` stores
    each argument under its own name."""

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [
            p.name for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments as a dict (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor arguments by name; return ``self``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters are {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, value in self.get_params().items():
            default = sig.parameters[name].default
            if default is inspect.Parameter.empty or not _same(value, default):
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _same(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # arrays and other objects without a plain ==
        return a is b


# ----------------------------------------------------------------------------------------------
# input handling


def _is_pandas(obj) -> bool:
    mod = type(obj).__module__
    return mod.startswith("pandas") and type(obj).__name__ in ("Series", "DataFrame")


class _Input:
    """An input array as 2-D float data plus what is needed to give the result the same form."""

    __slots__ = ("values", "ndim", "kind", "index", "columns", "name")

    def __init__(self, X, what: str = "X"):
        self.kind = "numpy"
        self.index = self.columns = self.name = None
        if _is_pandas(X):
            self.kind = type(X).__name__  # "Series" or "DataFrame"
            self.index = X.index
            if self.kind == "Series":
                self.name = X.name
            else:
                self.columns = X.columns
                bad = [c for c, dt in X.dtypes.items() if not _numeric_dtype(dt)]
                if bad:
                    raise ValueError(f"{what} has non-numeric columns {bad}; scalers need numbers")
            arr = X.to_numpy(dtype=_float_dtype_of(X), na_value=np.nan)
        else:
            arr = np.asarray(X)
            if arr.dtype.kind not in "biuf":
                raise ValueError(
                    f"{what} must be numeric; got an array of dtype {arr.dtype}"
                )
            arr = arr.astype(_float_dtype(arr.dtype), copy=False)
        if arr.ndim not in (1, 2):
            raise ValueError(
                f"{what} must be 1-D (one series) or 2-D (samples, features); got shape {arr.shape}"
            )
        if arr.shape[0] == 0:
            raise ValueError(f"{what} has 0 samples; at least 1 is required")
        self.ndim = arr.ndim
        self.values = arr if arr.ndim == 2 else arr[:, None]
        if self.values.shape[1] == 0:
            raise ValueError(f"{what} has 0 features; at least 1 is required")
        if np.isinf(self.values).any():
            raise ValueError(f"{what} contains infinity; scalers accept finite values and NaN")

    @property
    def feature_names(self):
        if self.columns is not None and all(isinstance(c, str) for c in self.columns):
            return np.asarray(list(self.columns), dtype=object)
        return None

    def wrap(self, out: np.ndarray):
        out = out if self.ndim == 2 else out[:, 0]
        if self.kind == "Series":
            import pandas as pd

            return pd.Series(out, index=self.index, name=self.name)
        if self.kind == "DataFrame":
            import pandas as pd

            return pd.DataFrame(out, index=self.index, columns=self.columns)
        return out


def _numeric_dtype(dt) -> bool:
    try:
        return np.dtype(dt).kind in "biuf"
    except TypeError:  # pandas extension dtypes (Int64, Float64, ...)
        return getattr(dt, "kind", "O") in "biuf"


def _float_dtype(dt) -> np.dtype:
    dt = np.dtype(dt)
    return dt if dt in (np.float32, np.float64) else np.dtype(np.float64)


def _float_dtype_of(X) -> np.dtype:
    dtypes = [X.dtype] if type(X).__name__ == "Series" else list(X.dtypes)
    try:
        if dtypes and all(np.dtype(d) == np.float32 for d in dtypes):
            return np.dtype(np.float32)
    except TypeError:
        pass
    return np.dtype(np.float64)


# ----------------------------------------------------------------------------------------------
# scalers


class _BaseScaler(_ParamsMixin):
    _fitted_attr = "n_features_in_"

    def _check_fitted(self):
        if not hasattr(self, self._fitted_attr):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _set_input_info(self, inp: _Input):
        self.n_features_in_ = inp.values.shape[1]
        names = inp.feature_names
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_samples_seen_ = int(inp.values.shape[0])

    def _check_input(self, X, what="X") -> _Input:
        self._check_fitted()
        inp = _Input(X, what)
        n = inp.values.shape[1]
        if n != self.n_features_in_:
            raise ValueError(
                f"{what} has {n} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        fitted_names = getattr(self, "feature_names_in_", None)
        names = inp.feature_names
        if fitted_names is not None and names is not None and list(names) != list(fitted_names):
            raise ValueError(
                "The feature names should match those that were passed during fit: "
                f"fitted with {list(fitted_names)}, got {list(names)}"
            )
        return inp

    def fit_transform(self, X, y=None):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X, y).transform(X)


def _handle_zeros_in_scale(scale: np.ndarray, constant_mask: Optional[np.ndarray] = None):
    """scikit-learn's rule: a scale that is (numerically) zero becomes 1, so a constant column
    is mapped to a constant instead of dividing by zero."""
    scale = np.array(scale, dtype=np.float64)
    if constant_mask is None:
        constant_mask = scale < 10 * np.finfo(scale.dtype).eps
    scale[constant_mask] = 1.0
    return scale


class MinMaxScaler(_BaseScaler):
    """Scale each column to ``feature_range`` (default [0, 1]) by its training min and max.

    ``X_scaled = X * scale_ + min_`` with ``scale_ = (hi - lo) / (data_max_ - data_min_)`` and
    ``min_ = lo - data_min_ * scale_``. A constant column maps to ``lo``. Values outside the
    training range fall outside ``feature_range`` unless ``clip=True``. NaN is ignored by
    ``fit`` and kept by ``transform``.

    Fitted attributes: ``data_min_``, ``data_max_``, ``data_range_``, ``scale_``, ``min_``,
    ``n_features_in_``, ``n_samples_seen_`` and ``feature_names_in_`` (DataFrame input with
    string column names only).
    """

    def __init__(self, feature_range: Tuple[float, float] = (0, 1), *, copy: bool = True,
                 clip: bool = False):
        self.feature_range = feature_range
        self.copy = copy
        self.clip = clip

    def fit(self, X, y=None):
        """Compute the per-column min and max of ``X`` (1-D, 2-D, Series or DataFrame)."""
        try:
            lo, hi = (float(v) for v in self.feature_range)
        except (TypeError, ValueError):
            raise ValueError(
                f"feature_range must be a pair of numbers (min, max); got {self.feature_range!r}"
            ) from None
        if not lo < hi:
            raise ValueError(
                "Minimum of desired feature range must be smaller than maximum. "
                f"Got {tuple(self.feature_range)}."
            )
        if not np.isfinite(hi - lo):  # an infinite range (or one whose width overflows)
            raise ValueError(f"feature_range must be finite, with a finite width; got "
                             f"{tuple(self.feature_range)}")
        inp = _Input(X)
        values = inp.values
        all_nan = np.isnan(values).all(axis=0)
        if all_nan.any():
            raise ValueError(
                f"X has columns {np.flatnonzero(all_nan).tolist()} that are all NaN; "
                "a scale cannot be computed for them"
            )
        self.data_min_ = np.nanmin(values, axis=0).astype(np.float64)
        self.data_max_ = np.nanmax(values, axis=0).astype(np.float64)
        self.data_range_ = self.data_max_ - self.data_min_
        self.scale_ = (hi - lo) / _handle_zeros_in_scale(self.data_range_)
        self.min_ = lo - self.data_min_ * self.scale_
        self._set_input_info(inp)
        return self

    def transform(self, X):
        """Scale ``X`` with the fitted min and max; same form (1-D/2-D/pandas) as the input."""
        inp = self._check_input(X)
        out = inp.values * self.scale_.astype(inp.values.dtype) + self.min_.astype(inp.values.dtype)
        if self.clip:
            lo, hi = self.feature_range
            np.clip(out, lo, hi, out=out)
        return inp.wrap(out)

    def inverse_transform(self, X):
        """Undo ``transform``: back to the original units."""
        inp = self._check_input(X)
        dt = inp.values.dtype
        out = (inp.values - self.min_.astype(dt)) / self.scale_.astype(dt)
        return inp.wrap(out)


def _is_constant_feature(var, mean, n_samples):
    """scikit-learn's test for a variance that is only rounding error (Chan et al. bound)."""
    eps = np.finfo(np.float64).eps
    upper_bound = n_samples * eps * var + (n_samples * mean * eps) ** 2
    return var <= upper_bound


class StandardScaler(_BaseScaler):
    """Standardise each column: ``(X - mean_) / scale_`` with the population std (ddof=0).

    A constant column gets ``scale_ = 1`` (so it maps to 0). ``with_mean=False`` leaves the mean
    in (``mean_`` is None), ``with_std=False`` does not divide (``scale_`` and ``var_`` are
    None). NaN is ignored by ``fit`` and kept by ``transform``.

    Fitted attributes: ``mean_``, ``var_``, ``scale_``, ``n_features_in_``, ``n_samples_seen_``
    and ``feature_names_in_`` (DataFrame input with string column names only).
    """

    def __init__(self, *, copy: bool = True, with_mean: bool = True, with_std: bool = True):
        self.copy = copy
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X, y=None):
        """Compute the per-column mean and standard deviation of ``X``."""
        inp = _Input(X)
        values = inp.values.astype(np.float64, copy=False)
        counts = np.sum(~np.isnan(values), axis=0)
        if (counts == 0).any():
            raise ValueError(
                f"X has columns {np.flatnonzero(counts == 0).tolist()} that are all NaN; "
                "a mean cannot be computed for them"
            )
        mean = np.nanmean(values, axis=0)
        var = np.nanmean((values - mean) ** 2, axis=0)
        self.mean_ = mean if self.with_mean else None
        if self.with_std:
            self.var_ = var
            constant = _is_constant_feature(var, mean, counts)
            self.scale_ = _handle_zeros_in_scale(np.sqrt(var), constant)
        else:
            self.var_ = None
            self.scale_ = None
        self._set_input_info(inp)
        self.n_samples_seen_ = int(counts.min()) if counts.min() == counts.max() else counts
        return self

    def _mean(self, n):
        return self.mean_ if self.mean_ is not None else np.zeros(n)

    def _scale(self, n):
        return self.scale_ if self.scale_ is not None else np.ones(n)

    def transform(self, X):
        """Standardise ``X`` with the fitted mean and std; same form as the input."""
        inp = self._check_input(X)
        dt = inp.values.dtype
        n = self.n_features_in_
        out = (inp.values - self._mean(n).astype(dt)) / self._scale(n).astype(dt)
        return inp.wrap(out)

    def inverse_transform(self, X):
        """Undo ``transform``: back to the original units."""
        inp = self._check_input(X)
        dt = inp.values.dtype
        n = self.n_features_in_
        out = inp.values * self._scale(n).astype(dt) + self._mean(n).astype(dt)
        return inp.wrap(out)


# ----------------------------------------------------------------------------------------------
# target transforms: make a trending or seasonal series look stationary to the network


def check_lags(lags) -> Tuple[int, ...]:
    """``lags`` (an int or a sequence of ints >= 1) as a tuple; None -> ()."""
    if lags is None:
        return ()
    items = [lags] if isinstance(lags, (int, np.integer)) or isinstance(lags, bool) else lags
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"difference must be None, a lag (int) or a tuple of lags; "
                        f"got {lags!r}") from None
    if not items:
        raise ValueError("difference is an empty tuple; pass None for no differencing")
    return tuple(check_positive_int("difference lag", lag) for lag in items)


def difference(values: np.ndarray, lags: Sequence[int]) -> np.ndarray:
    """Differences along axis -2 (time), one lag after the other: ``x[t] - x[t - lag]``.

    The result is ``sum(lags)`` rows shorter than ``values`` (the first rows have nothing to
    subtract). Leading axes (a batch of series) are kept.
    """
    out = np.asarray(values, dtype=np.float64)
    for lag in lags:
        out = out[..., lag:, :] - out[..., :-lag, :]
    return out


def undifference(diffs: np.ndarray, history: np.ndarray, lags: Sequence[int]) -> np.ndarray:
    """Invert ``difference`` for the rows that follow ``history``: the levels whose
    differences (by ``lags``, in order) are ``diffs``.

    ``history``: (..., >= sum(lags), F), the values just before ``diffs``; ``diffs``:
    (..., steps, F), any number of steps (a multi-step forecast is undone step by step, each
    level feeding the next). Leading axes are a batch.
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    history = np.asarray(history, dtype=np.float64)
    if not lags:
        return diffs.copy()
    if history.shape[-2] < sum(lags):
        raise ValueError(f"undifference needs at least sum(lags)={sum(lags)} rows of history; "
                         f"got {history.shape[-2]}")
    # the history at each stage: levels, then differenced by lags[0], lags[:2], ...
    stages = [history]
    for lag in lags[:-1]:
        stages.append(stages[-1][..., lag:, :] - stages[-1][..., :-lag, :])
    out = diffs
    steps = diffs.shape[-2]
    for lag, past in zip(reversed(lags), reversed(stages)):
        level = np.concatenate([past[..., -lag:, :], np.empty_like(out)], axis=-2)
        for t in range(steps):  # level[t] = diff[t] + level[t - lag]; steps are few
            level[..., lag + t, :] = out[..., t, :] + level[..., t, :]
        out = level[..., lag:, :]
    return out


class LogTransformer(_ParamsMixin):
    """Natural log of a positive series (``fit`` / ``transform`` / ``inverse_transform``).

    Use it when a series grows or varies in proportion to its level (sales, passengers,
    prices): the log turns a multiplicative trend and seasonality into additive ones, which a
    difference then removes. Zero or negative values are an error naming their position.
    Same input forms as the scalers (1-D, 2-D, pandas in -> pandas out).
    """

    def fit(self, X, y=None):
        """Check ``X`` is positive; remember its width. Returns ``self``."""
        inp = _Input(X)
        check_positive_values(inp.values, "X", inp.index, inp.columns)
        self.n_features_in_ = inp.values.shape[1]
        return self

    def transform(self, X):
        """``log(X)``."""
        inp = self._check(X)
        check_positive_values(inp.values, "X", inp.index, inp.columns)
        return inp.wrap(np.log(inp.values))

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        """``exp(X)``."""
        inp = self._check(X)
        return inp.wrap(np.exp(inp.values))

    def _check(self, X) -> _Input:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError("This LogTransformer instance is not fitted yet. Call 'fit' "
                                 "with appropriate arguments before using this estimator.")
        inp = _Input(X)
        if inp.values.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {inp.values.shape[1]} features, but LogTransformer is "
                             f"expecting {self.n_features_in_} features as input")
        return inp


class Differencer(_ParamsMixin):
    """Differences of a series at one or more lags, and their inverse for the values that come
    next (``fit`` / ``transform`` / ``inverse_transform``).

    ``lags``: ``1`` removes a trend (``x[t] - x[t-1]``), the season length (``12`` for monthly
    data, ``7`` for daily with a weekly cycle) removes a seasonal pattern, ``(1, 12)`` both.

    * ``transform(X)``: the differences, ``sum(lags)`` rows shorter than ``X`` (pandas: the
      index of the rows that remain).
    * ``inverse_transform(D)``: the levels that continue the series given to ``fit`` (its
      last ``sum(lags)`` rows are kept), so a forecast of differences of any number of steps
      becomes a forecast of values; pass ``history=`` (at least ``sum(lags)`` rows) to
      continue another series instead, e.g. ``inverse_transform(transform(X),
      history=X[:sum(lags)])`` gives back ``X[sum(lags):]``.
    """

    def __init__(self, lags: Union[int, Sequence[int]] = 1):
        self.lags = lags

    def fit(self, X, y=None):
        """Remember the last ``sum(lags)`` rows of ``X`` (where ``inverse_transform`` starts)."""
        lags = check_lags(self.lags)
        inp = _Input(X)
        if inp.values.shape[0] <= sum(lags):
            raise ValueError(f"X has {inp.values.shape[0]} rows; differencing at lags {lags} "
                             f"needs more than {sum(lags)}")
        self.n_features_in_ = inp.values.shape[1]
        self.last_ = np.array(inp.values[-sum(lags):], dtype=np.float64)
        return self

    def transform(self, X):
        """The differences of ``X``: ``sum(lags)`` rows shorter."""
        lags = self._check_fitted()
        inp = self._input(X)
        if inp.values.shape[0] <= sum(lags):
            raise ValueError(f"X has {inp.values.shape[0]} rows; differencing at lags {lags} "
                             f"needs more than {sum(lags)}")
        out = difference(inp.values, lags)
        if inp.index is not None:
            inp.index = inp.index[sum(lags):]
        return inp.wrap(out)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def inverse_transform(self, X, history=None):
        """The levels whose differences are ``X``, continuing ``history`` (default: the end
        of the series given to ``fit``)."""
        lags = self._check_fitted()
        inp = self._input(X)
        if history is None:
            past = self.last_
        else:
            past = self._input(history, "history").values
        return inp.wrap(undifference(inp.values, past, lags))

    def _check_fitted(self) -> Tuple[int, ...]:
        if not hasattr(self, "last_"):
            raise NotFittedError("This Differencer instance is not fitted yet. Call 'fit' with "
                                 "appropriate arguments before using this estimator.")
        return check_lags(self.lags)

    def _input(self, X, what="X") -> _Input:
        inp = _Input(X, what)
        if inp.values.shape[1] != self.n_features_in_:
            raise ValueError(f"{what} has {inp.values.shape[1]} features, but Differencer is "
                             f"expecting {self.n_features_in_} features as input")
        return inp


def check_positive_values(values: np.ndarray, what="values", index=None, columns=None,
                          hint: str = "shift the series above zero first"):
    """Raise ValueError naming the first entries of a (N, F) array that are not > 0 (a log
    needs positive values)."""
    bad = ~(values > 0)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(
            f"a log needs positive values, but {what} has {len(rows)} value(s) <= 0 or NaN at "
            f"{_describe_positions(rows, cols, index, columns, values.shape[1])} (first: "
            f"{float(values[rows[0], cols[0]]):g}); {hint}"
        )


# ----------------------------------------------------------------------------------------------
# windows


TargetSpec = Union[None, int, str, Sequence[Union[int, str]]]


def _resolve_columns(target: TargetSpec, n_features: int, columns=None):
    """Turn ``target`` into ``(list of column positions, single)``.

    ``single`` is True when ``target`` names one column (an int or a label), or when it is None
    and there is one feature; a list, even of one column, is "several targets".
    """
    if target is None:
        return list(range(n_features)), n_features == 1
    single = not isinstance(target, (list, tuple, np.ndarray)) and type(target).__name__ != "Index"
    items = [target] if single else list(target)
    if not items:
        raise ValueError("target is an empty list; name at least one column")
    cols = list(columns) if columns is not None else None
    positions = []
    for item in items:
        if cols is not None and _hashable(item) and item in cols:
            positions.append(cols.index(item))
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            pos = int(item)
            if not -n_features <= pos < n_features:
                raise ValueError(
                    f"target column index {pos} is out of range for {n_features} feature(s)"
                )
            positions.append(pos % n_features)
        elif cols is not None:
            raise KeyError(f"target column {item!r} not found; columns are {cols}")
        else:
            raise KeyError(
                f"target {item!r} is a column name, but the values have no column names; "
                "pass a DataFrame or a column index"
            )
    if len(set(positions)) != len(positions):
        raise ValueError(f"target names a column more than once: {items}")
    return positions, single


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _describe_positions(rows, cols, index=None, columns=None, n_features=1, limit=5) -> str:
    parts = []
    for r, c in list(zip(rows, cols))[:limit]:
        where = f"row {r}" if index is None else f"{index[r]!s}"
        if n_features > 1:
            label = columns[c] if columns is not None else c
            where += f" (column {label!r})"
        parts.append(where)
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(parts) + more


def check_finite(values: np.ndarray, what="values", index=None, columns=None):
    """Raise ValueError naming the positions of NaN or infinite entries of a (N, F) array."""
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        n_nan = int(np.isnan(values).sum())
        kind = "NaN" if n_nan == len(rows) else "NaN or infinite values"
        raise ValueError(
            f"{what} contain {kind} at {len(rows)} position(s): "
            f"{_describe_positions(rows, cols, index, columns, values.shape[1])}"
        )


def make_windows(values, window: int, horizon: int = 1, target: TargetSpec = None,
                 stride: int = 1):
    """Cut a series into sliding (input window, next values) pairs for a GRU.

    Parameters
    ----------
    values : array-like (N,) or (N, F), pandas Series or DataFrame
        The series, oldest first. Integer input is converted to float64 (a copy); float32 and
        float64 arrays are not copied.
    window : int
        Time steps in each input window.
    horizon : int
        How many values after the window to predict (1 = the next step only).
    target : None, int, column name, or list of those
        The column(s) of ``values`` to predict. None predicts every column. A name needs a
        DataFrame. Inputs always include every column (multivariate inputs, chosen target).
    stride : int
        Step between the starts of consecutive windows.

    Returns
    -------
    X : ndarray (samples, window, F)
        ``X[i] = values[i*stride : i*stride + window]``; F = 1 for 1-D input.
    y : ndarray
        The ``horizon`` values after each window, shaped by this rule:

        * one target (``target`` is an int or a name, or None with a single feature):
          ``(samples,)`` when ``horizon == 1``, else ``(samples, horizon)``;
        * several targets (a list of columns, or None with F > 1):
          ``(samples, horizon, n_targets)`` always, even for ``horizon == 1``.

    ``samples = (N - window - horizon) // stride + 1``. Both arrays are read-only views of
    ``values`` (``np.shares_memory(X, values)`` is True for a float ndarray), except ``y`` when
    ``target`` lists non-adjacent columns (then a copy); copy them before writing into them.

    Raises
    ------
    ValueError
        if the series is shorter than ``window + horizon`` (naming both lengths), contains NaN
        or infinity (naming the positions), or the arguments are not positive integers.
    KeyError
        if a target column name is not found.
    """
    window, horizon, stride = (check_positive_int(name, val) for name, val in
                               (("window", window), ("horizon", horizon), ("stride", stride)))

    index = columns = None
    if _is_pandas(values):
        index = values.index
        if type(values).__name__ == "DataFrame":
            columns = values.columns
        arr = values.to_numpy(dtype=_float_dtype_of(values), na_value=np.nan)
    else:
        arr = np.asarray(values)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"values must be numeric; got an array of dtype {arr.dtype}")
        arr = arr.astype(_float_dtype(arr.dtype), copy=False)
    if arr.ndim not in (1, 2):
        raise ValueError(f"values must be 1-D (N,) or 2-D (N, features); got shape {arr.shape}")
    data = arr if arr.ndim == 2 else arr[:, None]
    n, n_features = data.shape
    if n_features == 0:
        raise ValueError("values have 0 features")
    positions, single = _resolve_columns(target, n_features, columns)

    if n < window + horizon:
        raise ValueError(
            f"series too short: {n} time steps, but window={window} + horizon={horizon} "
            f"needs at least {window + horizon}"
        )
    check_finite(data, "values", index, columns)

    samples = (n - window - horizon) // stride + 1
    # sliding_window_view over time gives (N - window + 1, F, window): move time to axis 1.
    X = sliding_window_view(data, window, axis=0)[: samples * stride : stride]
    X = X.transpose(0, 2, 1)

    first = window  # index of the first target time step
    if single:
        col = data[:, positions[0]]
        if horizon == 1:
            y = col[first : first + (samples - 1) * stride + 1 : stride]
        else:
            y = sliding_window_view(col[first:], horizon)[: samples * stride : stride]
    else:
        tgt = data[first:]
        if positions != list(range(n_features)):
            # A column subset with fancy indexing would copy; a contiguous run stays a view.
            lo = positions[0]
            if positions == list(range(lo, lo + len(positions))):
                tgt = tgt[:, lo : lo + len(positions)]
            else:
                tgt = tgt[:, positions]
        y = sliding_window_view(tgt, horizon, axis=0)[: samples * stride : stride]
        y = y.transpose(0, 2, 1)  # (samples, horizon, n_targets)
    return X, y
