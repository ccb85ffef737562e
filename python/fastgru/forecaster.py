"""``GRUForecaster``: the whole forecasting recipe as one scikit-learn style estimator.

The recipe it packages (the usual Keras one)::

    scale to [0, 1] -> sliding windows of `window` steps -> Sequential([GRU(units), Dense(...)])
    -> Adam + MSE -> fit -> predict from the last `window` values -> inverse-transform

``fit`` takes a pandas Series or DataFrame with a ``DatetimeIndex`` (or a NumPy array) and
checks it (NaN, duplicate or unsorted dates, too few rows, missing target column), and
``predict(steps)`` returns a Series/DataFrame indexed by the dates that come next, in the
original units.

Multi-step forecasts, two strategies:

* ``strategy="recursive"`` (default): the network predicts one step; longer forecasts feed each
  prediction back as the newest input. That needs every input column predicted, so a model
  whose inputs include columns it does not predict (e.g. temperature *and* humidity in,
  temperature out) can only forecast 1 step recursively.
* ``strategy="direct"``: the network predicts ``horizon`` steps at once (``Dense(horizon *
  n_targets)``); ``predict(steps)`` takes the first ``steps <= horizon`` of them. Works for any
  inputs. Longer forecasts chain blocks of ``horizon`` when every input column is a target.

``target``: None predicts every column (one column: a Series comes back; several: a
DataFrame); a column name or index predicts that column from all of them; a list predicts those.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ._validation import check_positive_int
from .callbacks import EarlyStopping, History
from .layers import GRU, Dense
from .model import Sequential
from .optimizers import Adam
from .saving import open_npz, read_weights, save_npz_atomically
from .preprocessing import (
    MinMaxScaler,
    NotFittedError,
    StandardScaler,
    _is_pandas,
    _ParamsMixin,
    _resolve_columns,
    check_finite,
    make_windows,
)

__all__ = ["GRUForecaster", "BacktestResult", "load_forecaster"]

_FORMAT = "fastgru.GRUForecaster/1"
_STRATEGIES = ("recursive", "direct")
_FILLNA = (None, "ffill", "interpolate")
_METRICS = ("rmse", "mae")


def _pd():
    import pandas as pd

    return pd


def _rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _mae(a, b) -> float:
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))


_METRIC_FNS = {"rmse": _rmse, "mae": _mae}


@dataclass
class BacktestResult:
    """One-step-ahead forecasts over a held-out tail, against the actual values and against
    the persistence forecast ("next value = last value").

    ``predictions`` is a DataFrame indexed like the tail with columns ``actual``, ``forecast``
    and ``persistence`` (one target), or those three over a second column level of target names
    (several targets). The metrics are in the original units, over all targets together.
    """

    predictions: Any
    rmse: float
    mae: float
    persistence_rmse: float
    persistence_mae: float
    n_steps: int
    targets: List[Any] = field(default_factory=list)

    @property
    def skill(self) -> float:
        """1 - rmse / persistence_rmse: > 0 when the model beats persistence."""
        if self.persistence_rmse == 0:
            return float("nan")
        return 1.0 - self.rmse / self.persistence_rmse

    def __str__(self) -> str:
        return (
            f"one-step-ahead over {self.n_steps} steps: RMSE {self.rmse:.4g} "
            f"(persistence {self.persistence_rmse:.4g}), MAE {self.mae:.4g} "
            f"(persistence {self.persistence_mae:.4g}), skill {self.skill:+.1%}"
        )


class _Prepared:
    """Checked input: raw float64 values (N, F), the index (pandas or None) and column labels."""

    __slots__ = ("values", "index", "columns", "pandas")

    def __init__(self, values, index, columns, pandas):
        self.values = values
        self.index = index
        self.columns = columns
        self.pandas = pandas


class GRUForecaster(_ParamsMixin):
    """A GRU time-series forecaster with scaling, windowing and date handling built in.

    Parameters
    ----------
    window : int
        Past time steps the network sees for each forecast.
    horizon : int
        Steps ahead to forecast by default; with ``strategy="direct"`` also the number of steps
        the network outputs at once.
    units : int
        GRU units.
    epochs, batch_size, learning_rate : training settings (Adam, mean squared error).
    scaler : "minmax" (to [0, 1]), "standard", None, or a scaler object with fit / transform /
        inverse_transform (cloned from its ``get_params``).
    target : None, a column name or index, or a list of them: what to predict (see module doc).
    strategy : "recursive" or "direct" (see module doc).
    validation_split : fraction of the training windows (the last ones) held out for
        ``val_loss``.
    early_stopping : None, an int patience, a dict of ``EarlyStopping`` arguments, or an
        ``EarlyStopping`` object. Monitors ``val_loss`` when there is validation data, else
        ``loss``, and restores the best weights.
    seed : int or None: seeds the weight initialisation and the shuffling.
    verbose : 0 silent, 1 progress, 2 one line per epoch (as Keras ``fit``).
    fillna : None (NaN is an error), "ffill" (carry the last value forward, then back-fill the
        start) or "interpolate" (linear in time).
    shuffle : shuffle the training windows each epoch.
    loss : a loss name understood by ``Sequential.compile`` ("mse", "mae", "huber").
    reset_after : the GRU variant (True: Keras 2+/PyTorch/cuDNN; False: the 2014 GRU).

    Attributes after ``fit``: ``model_`` (the ``Sequential``), ``history_``, ``scaler_``,
    ``n_features_in_``, ``feature_names_in_``, ``target_names_``, ``freq_``.
    """

    def __init__(self, window: int = 100, horizon: int = 1, units: int = 50, epochs: int = 10,
                 batch_size: int = 32, learning_rate: float = 1e-3,
                 scaler: Union[str, None, Any] = "minmax", target=None,
                 strategy: str = "recursive", validation_split: float = 0.0,
                 early_stopping=None, seed: Optional[int] = None, verbose: int = 0,
                 fillna: Optional[str] = None, shuffle: bool = True, loss: str = "mse",
                 reset_after: bool = True):
        self.window = window
        self.horizon = horizon
        self.units = units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.scaler = scaler
        self.target = target
        self.strategy = strategy
        self.validation_split = validation_split
        self.early_stopping = early_stopping
        self.seed = seed
        self.verbose = verbose
        self.fillna = fillna
        self.shuffle = shuffle
        self.loss = loss
        self.reset_after = reset_after

    # ------------------------------------------------------------------------------ checks

    def _check_params(self):
        check_positive_int("window", self.window)
        check_positive_int("horizon", self.horizon)
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}; got {self.strategy!r}")
        if self.fillna not in _FILLNA:
            raise ValueError(f"fillna must be one of {_FILLNA}; got {self.fillna!r}")
        if not (isinstance(self.validation_split, (int, float))
                and 0.0 <= self.validation_split < 1.0):
            raise ValueError(
                f"validation_split must be a fraction in [0, 1); got {self.validation_split!r}"
            )

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "This GRUForecaster instance is not fitted yet. Call 'fit' with a series "
                "before 'predict', 'score', 'update' or 'save'."
            )

    def _make_scaler(self):
        if self.scaler is None:
            return None
        if isinstance(self.scaler, str):
            name = self.scaler.lower()
            if name == "minmax":
                return MinMaxScaler()
            if name == "standard":
                return StandardScaler()
            raise ValueError(f"scaler must be 'minmax', 'standard', None or a scaler object; "
                             f"got {self.scaler!r}")
        for method in ("fit", "transform", "inverse_transform"):
            if not hasattr(self.scaler, method):
                raise TypeError(f"scaler object {self.scaler!r} has no {method}() method")
        params = self.scaler.get_params() if hasattr(self.scaler, "get_params") else {}
        try:
            return type(self.scaler)(**params)
        except TypeError:
            return self.scaler

    def _prepare(self, data, what="data") -> _Prepared:
        """Validate and convert input to float64 (N, F); apply ``fillna``."""
        pd = _pd()
        if _is_pandas(data):
            frame = data.to_frame() if isinstance(data, pd.Series) else data
            if isinstance(data, pd.Series) and data.name is None:
                frame.columns = [0]
            if frame.shape[1] == 0:
                raise ValueError(f"{what} has no columns")
            bad = [c for c, dt in frame.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)
                   or pd.api.types.is_bool_dtype(dt)]
            if bad:
                hint = ""
                if any(pd.api.types.is_datetime64_any_dtype(frame[c]) for c in bad) or any(
                        str(c).lower() in ("date", "time", "datetime", "timestamp") for c in bad):
                    hint = " (set the date column as the index: df.set_index('Date'))"
                raise ValueError(f"{what} has non-numeric columns {bad}{hint}")
            index = frame.index
            self._check_index(index, what)
            if frame.isna().to_numpy().any():
                frame = self._fill(frame, what)
            values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
            return _Prepared(values, index, list(frame.columns), True)
        arr = np.asarray(data)
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"{what} must be numeric; got an array of dtype {arr.dtype}")
        if arr.ndim not in (1, 2):
            raise ValueError(f"{what} must be 1-D (one series) or 2-D (time, features); "
                             f"got shape {arr.shape}")
        arr = arr.astype(np.float64).reshape(arr.shape[0], -1)
        if arr.shape[1] == 0 or arr.shape[0] == 0:
            raise ValueError(f"{what} is empty (shape {arr.shape})")
        if np.isnan(arr).any() and self.fillna is not None:
            filled = self._fill(pd.DataFrame(arr), what)
            arr = filled.to_numpy(dtype=np.float64)
        return _Prepared(arr, None, None, False)

    @staticmethod
    def _check_index(index, what):
        pd = _pd()
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

    def _fill(self, frame, what):
        pd = _pd()
        values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
        if self.fillna is None:
            try:
                check_finite(values, what, frame.index if isinstance(frame.index, pd.DatetimeIndex)
                             else None, list(frame.columns))
            except ValueError as exc:
                raise ValueError(f"{exc}; pass fillna='ffill' or fillna='interpolate' to fill "
                                 "them") from None
        if frame.isna().all().any():
            raise ValueError(f"{what} has columns that are entirely NaN: "
                             f"{list(frame.columns[frame.isna().all()])}")
        frame = frame.astype(np.float64)
        if self.fillna == "ffill":
            return frame.ffill().bfill()
        method = "time" if isinstance(frame.index, pd.DatetimeIndex) else "linear"
        return frame.interpolate(method=method, limit_direction="both")

    # ------------------------------------------------------------------------------ index

    @staticmethod
    def _infer_step(index):
        """The index step as ``("offset", DateOffset)``, ``("timedelta", Timedelta)``,
        ``("number", step)`` or ``None`` for arrays."""
        pd = _pd()
        if index is None:
            return None
        if isinstance(index, pd.DatetimeIndex):
            freq = index.freq
            if freq is None and len(index) >= 3:
                # freq="infer" is pd.infer_freq returning an offset on every pandas version
                try:
                    freq = pd.DatetimeIndex(index, freq="infer").freq
                except (TypeError, ValueError):
                    freq = None
            if freq is not None:
                return ("offset", freq)
            if len(index) >= 2:
                return ("timedelta", pd.Timedelta((index[1:] - index[:-1]).median()))
            return ("timedelta", pd.Timedelta(days=1))
        if len(index) >= 2:
            step = np.median(np.diff(index.to_numpy()))
            if pd.api.types.is_integer_dtype(index.dtype) and float(step).is_integer():
                step = int(step)
            return ("number", step)
        return ("number", 1)

    @staticmethod
    def _future_index(last, step, n, name=None):
        pd = _pd()
        kind, value = step
        if kind == "offset":
            return pd.date_range(start=last + value, periods=n, freq=value, name=name)
        if kind == "timedelta":
            return pd.DatetimeIndex([last + value * k for k in range(1, n + 1)], name=name)
        if isinstance(value, int) and isinstance(last, (int, np.integer)):
            return pd.RangeIndex(int(last) + value, int(last) + value * (n + 1), value, name=name)
        return pd.Index([last + value * k for k in range(1, n + 1)], name=name)

    # ------------------------------------------------------------------------------ fit

    def fit(self, data, y=None):
        """Fit the scaler and the network on ``data``; return ``self``.

        ``data``: a Series or DataFrame (DatetimeIndex or numeric index) or an array
        (N,) / (N, F), oldest first. ``y`` is ignored (scikit-learn signature).
        """
        self._check_params()
        prep = self._prepare(data)
        n, n_features = prep.values.shape
        positions, single = _resolve_columns(self.target, n_features, prep.columns)
        out_steps = self.horizon if self.strategy == "direct" else 1
        if n < self.window + out_steps:
            raise ValueError(
                f"data too short: {n} rows, but window={self.window} + "
                f"{'horizon' if self.strategy == 'direct' else 'one step'}={out_steps} needs at "
                f"least {self.window + out_steps} (and many more to learn anything)"
            )
        check_finite(prep.values, "data",
                     prep.index if prep.pandas and _is_datetime_index(prep.index) else None,
                     prep.columns)

        scaler = self._make_scaler()
        scaled = scaler.fit_transform(prep.values) if scaler is not None else prep.values
        scaled = np.asarray(scaled, dtype=np.float64)
        X, yw = make_windows(scaled, self.window, horizon=out_steps, target=positions)
        yw = yw.reshape(len(yw), out_steps * len(positions))

        model = self._make_model(out_steps * len(positions))
        callbacks = self._callbacks()
        history = model.fit(
            X, yw, epochs=int(self.epochs), batch_size=int(self.batch_size),
            shuffle=bool(self.shuffle), validation_split=float(self.validation_split),
            callbacks=callbacks, verbose=self.verbose, seed=self.seed,
        )

        self.model_ = model
        self.history_ = history
        self.scaler_ = scaler
        self.n_features_in_ = n_features
        self.feature_names_in_ = list(prep.columns) if prep.columns is not None else None
        self.target_names_ = (
            [prep.columns[p] for p in positions] if prep.columns is not None else list(positions)
        )
        self._positions = list(positions)
        self._single = bool(single)
        self._out_steps = out_steps
        self._pandas = prep.pandas
        self.freq_ = self._infer_step(prep.index)
        self._index_name = prep.index.name if prep.pandas else None
        self._last_index = prep.index[-1] if prep.pandas else n - 1
        self._context = prep.values[-self.window:].copy()
        return self

    def _make_model(self, outputs: int) -> Sequential:
        """GRU(units) -> Dense(outputs), compiled: what fit trains and load fills."""
        model = Sequential([GRU(int(self.units), reset_after=bool(self.reset_after)),
                            Dense(outputs)])
        model.compile(optimizer=Adam(learning_rate=self.learning_rate), loss=self.loss)
        return model

    def _callbacks(self):
        if self.early_stopping is None or self.early_stopping is False:
            return None
        monitor = "val_loss" if self.validation_split else "loss"
        if isinstance(self.early_stopping, EarlyStopping):
            return [self.early_stopping]
        if self.early_stopping is True:
            kwargs = {"patience": 3}
        elif isinstance(self.early_stopping, (int, np.integer)):
            kwargs = {"patience": int(self.early_stopping)}
        elif isinstance(self.early_stopping, dict):
            kwargs = dict(self.early_stopping)
        else:
            raise ValueError("early_stopping must be None, an int patience, a dict of "
                             f"EarlyStopping arguments or an EarlyStopping; got {self.early_stopping!r}")
        kwargs.setdefault("monitor", monitor)
        kwargs.setdefault("restore_best_weights", True)
        return [EarlyStopping(**kwargs)]

    # ------------------------------------------------------------------------------ predict

    @property
    def can_recurse(self) -> bool:
        """True when every input column is also predicted, so forecasts can be fed back."""
        self._check_fitted()
        return sorted(self._positions) == list(range(self.n_features_in_))

    def _align(self, data, what="data", min_rows=None) -> _Prepared:
        """Prepare new data and check it matches the columns seen in ``fit``."""
        prep = self._prepare(data, what)
        if prep.columns is not None and self.feature_names_in_ is not None and not all(
                isinstance(c, (int, np.integer)) for c in self.feature_names_in_):
            missing = [c for c in self.feature_names_in_ if c not in prep.columns]
            if missing:
                if prep.values.shape[1] == len(self.feature_names_in_) == 1:
                    pass  # a single series under another name is fine
                else:
                    raise ValueError(
                        f"{what} is missing the columns {missing} seen in fit "
                        f"(it has {prep.columns}); the model needs {self.feature_names_in_}"
                    )
            else:
                order = [prep.columns.index(c) for c in self.feature_names_in_]
                prep.values = prep.values[:, order]
                prep.columns = list(self.feature_names_in_)
        if prep.values.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{what} has {prep.values.shape[1]} feature(s), but the forecaster was fitted "
                f"with {self.n_features_in_}"
            )
        if min_rows is not None and len(prep.values) < min_rows:
            raise ValueError(f"{what} too short: {len(prep.values)} rows, but at least "
                             f"{min_rows} are needed (window={self.window})")
        check_finite(prep.values, what,
                     prep.index if prep.pandas and _is_datetime_index(prep.index) else None,
                     prep.columns)
        return prep

    def _scale(self, values):
        if self.scaler_ is None:
            return np.asarray(values, dtype=np.float64)
        return np.asarray(self.scaler_.transform(values), dtype=np.float64)

    def _unscale_targets(self, values):
        if self.scaler_ is None:
            return values
        if hasattr(self.scaler_, "_inverse_transform_columns"):
            return self.scaler_._inverse_transform_columns(values, self._positions)
        full = np.zeros((len(values), self.n_features_in_))
        full[:, self._positions] = values
        return np.asarray(self.scaler_.inverse_transform(full))[:, self._positions]

    def _predict_scaled(self, X):
        out = np.asarray(self.model_.predict(X, batch_size=max(int(self.batch_size), 256),
                                             verbose=0), dtype=np.float64)
        return out.reshape(len(X), self._out_steps, len(self._positions))

    def predict(self, steps: Optional[int] = None, data=None):
        """Forecast the ``steps`` values after the end of the series (default ``horizon``).

        Without ``data`` the forecast starts after the series given to ``fit`` (or the last
        ``update``); with ``data`` (same columns as in fit, at least ``window`` rows) it starts
        after the end of ``data``, using its last ``window`` rows. Returns a Series (one target)
        or DataFrame (several) whose index continues the dates at the inferred frequency (the
        median spacing if none can be inferred), in the original units; an ndarray (steps,) or
        (steps, n_targets) when the series it starts from is an array.
        """
        self._check_fitted()
        steps = self.horizon if steps is None else check_positive_int("steps", steps)
        if data is None:
            context, last, freq, pandas = (self._context, self._last_index, self.freq_,
                                           self._pandas)
            name = self._index_name
        else:
            prep = self._align(data, min_rows=self.window)
            context = prep.values[-self.window:]
            pandas = prep.pandas
            last = prep.index[-1] if pandas else None
            freq = self._infer_step(prep.index) if pandas else None
            name = prep.index.name if pandas else None
        if steps > self._out_steps and not self.can_recurse:
            raise ValueError(
                f"cannot forecast {steps} steps: the model predicts {self.target_names_} from "
                f"{self.n_features_in_} input features, so it cannot feed its own forecasts "
                f"back beyond {self._out_steps} step(s). Refit with strategy='direct' and "
                f"horizon>={steps}, or with every input column as a target (target=None)"
            )

        buf = self._scale(context)
        blocks, produced = [], 0
        while produced < steps:
            out = self._predict_scaled(buf[None, -self.window:])[0]  # (out_steps, n_targets)
            take = min(self._out_steps, steps - produced)
            blocks.append(out[:take])
            produced += take
            if produced < steps:  # feed the forecast back as the newest rows
                rows = np.empty((take, self.n_features_in_))
                rows[:, self._positions] = out[:take]
                buf = np.concatenate([buf, rows])[-self.window:]
        values = self._unscale_targets(np.concatenate(blocks))
        return self._wrap(values, last, freq, pandas, name)

    def _wrap(self, values, last, freq, pandas, name):
        if not pandas:
            return values[:, 0] if self._single else values
        pd = _pd()
        index = self._future_index(last, freq, len(values), name)
        if self._single:
            return pd.Series(values[:, 0], index=index, name=self.target_names_[0])
        return pd.DataFrame(values, index=index, columns=list(self.target_names_))

    def update(self, data):
        """Append new observations (real-time use): later ``predict()`` calls start after them.

        ``data``: rows with the same columns as in ``fit`` (any number; only the last
        ``window`` are kept). No refitting. Returns ``self``.
        """
        self._check_fitted()
        prep = self._align(data, "update data")
        if self._pandas and prep.pandas and _is_datetime_index(prep.index) and \
                isinstance(self._last_index, _pd().Timestamp) and prep.index[0] <= self._last_index:
            raise ValueError(f"update data starts at {prep.index[0]}, not after the last date "
                             f"seen ({self._last_index})")
        self._context = np.concatenate([self._context, prep.values])[-self.window:]
        if prep.pandas:
            self._last_index = prep.index[-1]
        elif self._pandas:  # rows without an index: they come at the fitted frequency
            self._last_index = self._future_index(self._last_index, self.freq_,
                                                  len(prep.values))[-1]
        else:
            self._last_index = self._last_index + len(prep.values)
        return self

    # ------------------------------------------------------------------------------ evaluate

    def _one_step(self, data, test_size=None):
        """One-step-ahead forecasts for the rows of ``data`` that have ``window`` rows before
        them (the last ``test_size`` of those when given); each uses the actual past."""
        prep = self._align(data, min_rows=self.window + 1)
        n = len(prep.values)
        available = n - self.window
        if test_size is None:
            test_size = available
        test_size = check_positive_int("test_size", test_size)
        if test_size > available:
            raise ValueError(
                f"test_size={test_size} needs {self.window + test_size} rows (window="
                f"{self.window} before the first tested row); data has {n}"
            )
        scaled = self._scale(prep.values)
        X, _ = make_windows(scaled, self.window, horizon=1, target=self._positions)
        X = X[len(X) - test_size:]
        forecast = self._unscale_targets(self._predict_scaled(X)[:, 0, :])
        actual = prep.values[n - test_size:][:, self._positions]
        persistence = prep.values[n - test_size - 1:n - 1][:, self._positions]
        index = prep.index[n - test_size:] if prep.pandas else None
        return actual, forecast, persistence, index

    def score(self, data, metric: str = "rmse", test_size: Optional[int] = None) -> float:
        """The one-step-ahead error on ``data`` in the original units (lower is better).

        Each of the last ``test_size`` rows of ``data`` (default: every row after the first
        ``window``) is forecast from the ``window`` actual rows before it. Pass the held-out
        tail *with* the ``window`` rows before it. ``metric``: "rmse" or "mae".
        """
        self._check_fitted()
        if metric not in _METRIC_FNS:
            raise ValueError(f"metric must be one of {_METRICS}; got {metric!r}")
        actual, forecast, _, _ = self._one_step(data, test_size)
        return _METRIC_FNS[metric](actual, forecast)

    def backtest(self, data, test_size: Union[int, float] = 0.1, refit: bool = True) -> BacktestResult:
        """Hold out the last ``test_size`` rows (an int, or a fraction of the rows), fit on the
        rest (unless ``refit=False``: use the fitted model), and forecast each held-out row one
        step ahead from the actual values before it. Returns a ``BacktestResult`` with the
        forecasts, the actual values, the persistence forecast and RMSE/MAE of both.
        """
        n = len(data)
        if isinstance(test_size, float) and not isinstance(test_size, bool):
            if not 0.0 < test_size < 1.0:
                raise ValueError(f"a fractional test_size must be in (0, 1); got {test_size}")
            test_size = max(1, int(round(n * test_size)))
        test_size = check_positive_int("test_size", test_size)
        if test_size >= n:
            raise ValueError(f"test_size={test_size} leaves no rows to train on (data has {n})")
        if refit:
            train = data.iloc[:n - test_size] if _is_pandas(data) else np.asarray(data)[:n - test_size]
            self.fit(train)
        else:
            self._check_fitted()
        actual, forecast, persistence, index = self._one_step(data, test_size)
        pd = _pd()
        if self._single:
            frame = pd.DataFrame({"actual": actual[:, 0], "forecast": forecast[:, 0],
                                  "persistence": persistence[:, 0]}, index=index)
        else:
            cols = pd.MultiIndex.from_product([["actual", "forecast", "persistence"],
                                               list(self.target_names_)])
            frame = pd.DataFrame(np.concatenate([actual, forecast, persistence], axis=1),
                                 index=index, columns=cols)
        return BacktestResult(
            predictions=frame, rmse=_rmse(actual, forecast), mae=_mae(actual, forecast),
            persistence_rmse=_rmse(actual, persistence), persistence_mae=_mae(actual, persistence),
            n_steps=test_size, targets=list(self.target_names_),
        )

    # ------------------------------------------------------------------------------ save/load

    def save(self, path) -> None:
        """Save the fitted forecaster (settings, scaler, weights, last window) to one file.

        The format is a NumPy ``.npz`` archive without pickles; read it with
        ``GRUForecaster.load(path)`` or ``fastgru.load_forecaster(path)``.
        """
        self._check_fitted()
        params = self.get_params()
        if not isinstance(params["scaler"], (str, type(None))):
            params["scaler"] = type(params["scaler"]).__name__
        if not isinstance(params["early_stopping"], (int, dict, bool, type(None))):
            params["early_stopping"] = None
        params["target"] = _jsonable(params["target"])
        meta = {
            "format": _FORMAT,
            "params": params,
            "n_features_in": self.n_features_in_,
            "feature_names_in": _jsonable(self.feature_names_in_),
            "target_names": _jsonable(self.target_names_),
            "positions": self._positions,
            "single": self._single,
            "out_steps": self._out_steps,
            "pandas": self._pandas,
            "index_name": _jsonable(self._index_name),
            "last_index": _encode_index_value(self._last_index),
            "freq": _encode_step(self.freq_),
            "scaler": _scaler_state(self.scaler_),
            "history": {k: [float(v) for v in vs]
                        for k, vs in getattr(self.history_, "history", {}).items()},
        }
        arrays = {"meta": np.array(json.dumps(meta)), "context": self._context}
        for i, w in enumerate(self.model_.get_weights()):
            arrays[f"weight_{i}"] = np.asarray(w)
        for key, value in _scaler_arrays(self.scaler_).items():
            arrays[f"scaler_{key}"] = value
        save_npz_atomically(path, arrays)

    @classmethod
    def load(cls, path) -> "GRUForecaster":
        """Load a forecaster written by ``save``; it predicts without refitting.

        A damaged, truncated or foreign file (or one that is not a regular file) raises
        ValueError naming it, before anything large is allocated (``fastgru.saving``).
        """
        with open_npz(path, "saved GRUForecaster") as archive:
            if "meta" not in archive:
                raise ValueError("no metadata")
            meta = archive.read_json("meta")
            if meta.get("format") != _FORMAT:
                raise ValueError(f"format {meta.get('format')!r}; expected {_FORMAT!r}")
            params = meta["params"]
            if params["scaler"] not in (None, "minmax", "standard"):
                params["scaler"] = meta["scaler"]["kind"] if meta["scaler"] else None
            self = cls(**params)
            self._check_params()  # what fit would have refused
            n_features = check_positive_int("n_features_in", meta["n_features_in"])
            n_targets = len(meta["positions"])
            model = self._make_model(int(meta["out_steps"]) * n_targets)
            # the layers are not built yet: the file's arrays are checked against their shapes
            model.set_weights(read_weights(archive, model.layers))
            self.model_ = model
            self.history_ = History()
            self.history_.history = meta.get("history", {})
            scaler_state = meta["scaler"]
            scaler_arrays = {}
            for name in archive.files:
                if name.startswith("scaler_"):
                    scaler_arrays[name[len("scaler_"):]] = archive.read(
                        name, shape=(int(scaler_state["n_features_in"]),))
            self.scaler_ = _scaler_from_state(scaler_state, scaler_arrays)
            self.n_features_in_ = n_features
            self.feature_names_in_ = meta["feature_names_in"]
            self.target_names_ = meta["target_names"]
            self._positions = [int(p) for p in meta["positions"]]
            if not all(0 <= p < n_features for p in self._positions):
                raise ValueError(f"target positions {self._positions} out of range")
            if not isinstance(self.target_names_, list) or len(self.target_names_) != n_targets:
                raise ValueError(f"target_names {self.target_names_!r} for {n_targets} targets")
            if self.feature_names_in_ is not None and (
                    not isinstance(self.feature_names_in_, list)
                    or len(self.feature_names_in_) != n_features):
                raise ValueError(f"feature_names_in {self.feature_names_in_!r} for {n_features} "
                                 "features")
            self._single = bool(meta["single"])
            self._out_steps = int(meta["out_steps"])
            self._pandas = bool(meta["pandas"])
            self._index_name = meta["index_name"]
            self._last_index = _decode_index_value(meta["last_index"])
            self.freq_ = _decode_step(meta["freq"])
            self._context = np.asarray(archive.read("context", shape=(int(self.window), n_features)),
                                       dtype=np.float64)
            # settings that each look fine but do not fit together: found now, not at predict
            # (a forecaster that needs known-future values cannot forecast without them)
            if not getattr(self, "future_covariates", None):
                self.predict(1)
        return self


def load_forecaster(path) -> GRUForecaster:
    """Load a ``GRUForecaster`` saved with ``save``."""
    return GRUForecaster.load(path)


# ---------------------------------------------------------------------------------- helpers


def _is_datetime_index(index) -> bool:
    return isinstance(index, _pd().DatetimeIndex)


def _jsonable(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _encode_index_value(value):
    pd = _pd()
    if isinstance(value, pd.Timestamp):
        return {"timestamp": value.isoformat()}
    if isinstance(value, (np.integer, int)):
        return {"int": int(value)}
    return {"float": float(value)}


def _decode_index_value(enc):
    pd = _pd()
    if "timestamp" in enc:
        return pd.Timestamp(enc["timestamp"])
    if "int" in enc:
        return enc["int"]
    return enc["float"]


def _encode_step(step):
    if step is None:
        return None
    kind, value = step
    if kind == "offset":
        return {"offset": value.freqstr}
    if kind == "timedelta":
        return {"timedelta": value.isoformat()}
    return {"number": value.item() if isinstance(value, np.generic) else value}


def _decode_step(enc):
    pd = _pd()
    if enc is None:
        return None
    if "offset" in enc:
        return ("offset", pd.tseries.frequencies.to_offset(enc["offset"]))
    if "timedelta" in enc:
        return ("timedelta", pd.Timedelta(enc["timedelta"]))
    return ("number", enc["number"])


_SCALER_ARRAYS = ("data_min_", "data_max_", "data_range_", "scale_", "min_", "mean_", "var_")


def _scaler_state(scaler):
    if scaler is None:
        return None
    if isinstance(scaler, MinMaxScaler):
        kind = "minmax"
        params = {"feature_range": list(scaler.feature_range), "clip": bool(scaler.clip)}
    elif isinstance(scaler, StandardScaler):
        kind = "standard"
        params = {"with_mean": bool(scaler.with_mean), "with_std": bool(scaler.with_std)}
    else:
        raise TypeError(f"cannot save a forecaster with a custom scaler ({type(scaler).__name__})")
    return {"kind": kind, "params": params, "n_features_in": int(scaler.n_features_in_)}


def _scaler_arrays(scaler):
    if scaler is None:
        return {}
    return {name: np.asarray(getattr(scaler, name)) for name in _SCALER_ARRAYS
            if getattr(scaler, name, None) is not None}


def _scaler_from_state(state, arrays):
    if state is None:
        return None
    if state["kind"] == "minmax":
        params = dict(state["params"])
        params["feature_range"] = tuple(params["feature_range"])
        scaler = MinMaxScaler(**params)
    else:
        scaler = StandardScaler(**state["params"])
        scaler.mean_ = scaler.var_ = scaler.scale_ = None
    for name, value in arrays.items():
        setattr(scaler, name, np.asarray(value, dtype=np.float64))
    scaler.n_features_in_ = int(state["n_features_in"])
    return scaler

