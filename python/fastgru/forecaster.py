"""``GRUForecaster``: the whole forecasting recipe as one scikit-learn style estimator.

The recipe it packages (the usual Keras one), with the steps a real series needs::

    [log] -> [difference at lags] -> scale -> sliding windows of `window` steps
    -> Sequential([GRU(units), Dense(...)]) -> Adam + MSE -> fit
    -> predict from the last `window` values -> unscale -> undo the differences -> [exp]

``fit`` takes a pandas Series or DataFrame with a ``DatetimeIndex`` (or a NumPy array) and
checks it (NaN, duplicate or unsorted dates, too few rows, missing target column), and
``predict(steps)`` returns a Series/DataFrame indexed by the dates that come next, in the
original units.

Target transforms (``log=True``, ``difference=12`` or ``(1, 12)``) act on the target columns
before scaling and are undone for every forecast, multi-step included: a GRU on min-max scaled
values cannot forecast past the range it was trained on, so a trending series needs them.

Columns: the targets, *past covariates* (other columns, known only up to now) and *future
covariates* (``future_covariates=[...]``: known in advance, such as holidays or planned
prices; ``predict`` takes their future values in ``future=``). ``calendar=["month"]`` adds
calendar covariates computed from the dates. The row the network sees for time ``t`` holds
the targets and past covariates of ``t`` and the known covariates of ``t + 1``, the step it
forecasts.

Multi-step forecasts, two strategies:

* ``strategy="recursive"`` (default): the network predicts one step; longer forecasts feed each
  prediction back as the newest input. That needs every input column predicted or known in
  advance, so a model with past covariates can only forecast 1 step recursively.
* ``strategy="direct"``: the network predicts ``horizon`` steps at once (``Dense(horizon *
  n_targets)``); ``predict(steps)`` takes the first ``steps <= horizon`` of them. Works with
  past covariates. Longer forecasts chain blocks of ``horizon`` when there are none.

Prediction intervals (``predict(steps, level=(80, 95))``) are split conformal, per step ahead:
see ``fastgru.intervals`` for the method and why.

``target``: None predicts every column that is not a future covariate (one: a Series comes
back; several: a DataFrame); a column name or index predicts that column from all of them; a
list predicts those.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import timeindex
from . import metrics as metrics_mod
from ._validation import check_bool, check_positive_int, check_seed, is_real_number_dtype
from .callbacks import EarlyStopping, History
from .intervals import check_levels, conformal_radius, interval_columns
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
    check_lags,
    check_positive_values,
    difference,
    make_windows,
    undifference,
)

__all__ = ["GRUForecaster", "BacktestResult", "load_forecaster"]

_FORMAT = "fastgru.GRUForecaster/2"
_READABLE_FORMATS = ("fastgru.GRUForecaster/1", _FORMAT)
_STRATEGIES = ("recursive", "direct")
_FILLNA = (None, "ffill", "interpolate")
_METRICS = ("rmse", "mae")
# calibration_size="auto": a fifth of the rows, at most this many (each calibrated origin
# costs one batched forecast of as many steps), and only when at least this many remain
_AUTO_CALIBRATION_MAX = 100
_AUTO_CALIBRATION_MIN = 8
_MIN_TRAINING_WINDOWS = 8
# Rows per predict call when forecasting many origins (backtests, calibration): at least this
# many, whatever the training batch size, so small training batches do not mean many calls.
_MIN_PREDICT_BATCH = 256


_METRIC_FNS = {"rmse": metrics_mod.rmse, "mae": metrics_mod.mae}


@dataclass
class BacktestResult:
    """One-step-ahead forecasts over a held-out tail, against the actual values and against
    the persistence forecast ("next value = last value").

    ``predictions`` is a DataFrame indexed like the tail with columns ``actual``, ``forecast``
    and ``persistence`` (one target), plus ``lo_80``, ``hi_80``, ... for each interval level
    asked for, or those over a second column level of target names (several targets). The
    metrics are in the original units, over all targets together. ``coverage`` maps each
    level to the fraction of actual values inside its interval. ``forecaster`` is the one that
    made the forecasts: a clone fitted on the rows before the tail (``refit=True``) or the
    forecaster itself (``refit=False``).
    """

    predictions: Any
    rmse: float
    mae: float
    persistence_rmse: float
    persistence_mae: float
    n_steps: int
    targets: List[Any] = field(default_factory=list)
    levels: Tuple[float, ...] = ()
    coverage: Dict[float, float] = field(default_factory=dict)
    forecaster: Any = None

    @property
    def skill(self) -> float:
        """1 - rmse / persistence_rmse: > 0 when the model beats persistence."""
        if self.persistence_rmse == 0:
            return float("nan")
        return 1.0 - self.rmse / self.persistence_rmse

    def __str__(self) -> str:
        text = (
            f"one-step-ahead over {self.n_steps} steps: RMSE {self.rmse:.4g} "
            f"(persistence {self.persistence_rmse:.4g}), MAE {self.mae:.4g} "
            f"(persistence {self.persistence_mae:.4g}), skill {self.skill:+.1%}"
        )
        for level, covered in self.coverage.items():
            text += f"; {level:g}% interval coverage {covered:.1%}"
        return text


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
    log : bool
        Model the log of the targets (positive series only; anything <= 0 is an error). For
        series whose trend or season grows with their level. Intervals then are multiplicative.
    difference : None, a lag, or a tuple of lags
        Model the differences of the (logged) targets: ``1`` for a trend, the season length
        (``12`` monthly, ``7`` daily) for a seasonal pattern, ``(1, 12)`` for both. Costs the
        first ``sum(lags)`` rows; every forecast is integrated back to levels.
    future_covariates : None or a list of column names (or indices)
        Columns known in advance (holidays, workday flags, planned prices). They are inputs,
        never targets; ``predict`` needs their values for the forecast steps in ``future=``.
        Needs ``strategy="recursive"``.
    calendar : None or a list from "hour", "day_of_week", "month", "day_of_year"
        Calendar covariates from the DatetimeIndex (a sine/cosine pair each), known for any
        future date. Needs a DatetimeIndex and ``strategy="recursive"``.
    calibration_size : "auto", an int, a fraction in (0, 1), or None
        Rows at the end held out to calibrate prediction intervals: ``fit`` also fits a copy on
        the rows before them and records its errors from each origin in that tail, at each step
        ahead (see ``fastgru.intervals``). "auto": a fifth of the rows, at most 100, when the
        series is long enough (else no intervals). None: no intervals, one fit.

    Attributes after ``fit``: ``model_`` (the ``Sequential``), ``history_``, ``scaler_``,
    ``n_features_in_``, ``feature_names_in_``, ``target_names_``, ``freq_``,
    ``interval_errors_`` ((steps, origins, targets) absolute calibration errors, in log units
    with ``log=True``; None without calibration).
    """

    def __init__(self, window: int = 100, horizon: int = 1, units: int = 50, epochs: int = 10,
                 batch_size: int = 32, learning_rate: float = 1e-3,
                 scaler: Union[str, None, Any] = "minmax", target=None,
                 strategy: str = "recursive", validation_split: float = 0.0,
                 early_stopping=None, seed: Optional[int] = None, verbose: int = 0,
                 fillna: Optional[str] = None, shuffle: bool = True, loss: str = "mse",
                 reset_after: bool = True, log: bool = False, difference=None,
                 future_covariates=None, calendar=None, calibration_size="auto"):
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
        self.log = log
        self.difference = difference
        self.future_covariates = future_covariates
        self.calendar = calendar
        self.calibration_size = calibration_size

    # ------------------------------------------------------------------------------ checks

    def _check_params(self):
        check_positive_int("window", self.window)
        check_positive_int("horizon", self.horizon)
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        check_seed("seed", self.seed)
        check_bool("reset_after", self.reset_after)
        check_bool("shuffle", self.shuffle)
        if self.strategy not in _STRATEGIES:
            raise ValueError(f"strategy must be one of {_STRATEGIES}; got {self.strategy!r}")
        if self.fillna not in _FILLNA:
            raise ValueError(f"fillna must be one of {_FILLNA}; got {self.fillna!r}")
        if not (isinstance(self.validation_split, (int, float))
                and 0.0 <= self.validation_split < 1.0):
            raise ValueError(
                f"validation_split must be a fraction in [0, 1); got {self.validation_split!r}"
            )
        check_bool("log", self.log)
        check_lags(self.difference)
        calendar = timeindex.check_calendar(self.calendar)
        if self.future_covariates is not None and (
                isinstance(self.future_covariates, str)
                or not isinstance(self.future_covariates, (list, tuple))):
            raise TypeError("future_covariates must be None or a list of column names; got "
                            f"{self.future_covariates!r}")
        if (self.future_covariates or calendar) and self.strategy != "recursive":
            raise ValueError("future_covariates and calendar need strategy='recursive' (each "
                             "step's known covariates feed the step that forecasts it)")
        c = self.calibration_size
        if not (c is None or c == "auto" or (isinstance(c, float) and 0.0 < c < 1.0)
                or (isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 1)):
            raise ValueError("calibration_size must be 'auto', a positive int, a fraction in "
                             f"(0, 1) or None; got {c!r}")

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
        import pandas as pd

        if _is_pandas(data):
            frame = data.to_frame() if isinstance(data, pd.Series) else data
            if isinstance(data, pd.Series) and data.name is None:
                frame.columns = [0]
            if frame.shape[1] == 0:
                raise ValueError(f"{what} has no columns")
            bad = [c for c, dt in frame.dtypes.items() if not is_real_number_dtype(dt)]
            if bad:
                hint = ""
                if any(pd.api.types.is_datetime64_any_dtype(frame[c]) for c in bad) or any(
                        str(c).lower() in ("date", "time", "datetime", "timestamp") for c in bad):
                    hint = " (set the date column as the index: df.set_index('Date'))"
                raise ValueError(f"{what} has columns that are not real numbers: {bad}{hint}")
            index = frame.index
            timeindex.check_index(index, what)
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

    def _fill(self, frame, what):
        import pandas as pd

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

    # ------------------------------------------------------------------------------ fit

    def fit(self, data, y=None):
        """Fit the transforms, the scaler and the network on ``data``; return ``self``.

        ``data``: a Series or DataFrame (DatetimeIndex or numeric index) or an array
        (N,) / (N, F), oldest first, holding the target(s) *and* any covariates; ``target``
        says which columns to forecast. ``fit(X, y)`` with a separate ``y`` raises TypeError
        (put ``y`` in the frame and name it in ``target``): a forecaster reads the target's
        own past, so it cannot treat it apart from the inputs as a regressor does.

        With interval calibration (``calibration_size``), a copy is also fitted on the rows
        before the calibration tail and its errors there are kept in ``interval_errors_``.
        """
        if y is not None:
            raise TypeError(
                "GRUForecaster.fit(X, y) is not supported: pass one frame holding the target "
                "and its covariates, and name the target, e.g. "
                "GRUForecaster(target='y').fit(X.assign(y=y))"
            )
        self._check_params()
        before = dict(self.__dict__)
        try:
            return self._fit(data)
        except BaseException:  # a failed (re)fit leaves the forecaster as it was
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, data):
        prep = self._prepare(data)
        self._set_layout(prep)
        n = len(prep.values)
        needed = self.window + self._shift + self._out_steps
        if n < needed:
            raise ValueError(
                f"data too short: {n} rows, but window={self.window}"
                f"{f' + sum of difference lags={self._shift}' if self._shift else ''} + "
                f"{'horizon' if self.strategy == 'direct' else 'one step'}={self._out_steps} "
                f"needs at least {needed} (and many more to learn anything)"
            )
        index = prep.index if prep.pandas and timeindex.is_datetime_index(prep.index) else None
        check_finite(prep.values, "data", index, prep.columns)
        if self.log:
            check_positive_values(prep.values[:, self._positions], "the target", index,
                                  self.target_names_, hint="shift it above zero or use log=False")

        inputs, scaler = self._training_inputs(prep.values, prep.index)
        nt = len(self._positions)
        X, yw = make_windows(inputs, self.window, horizon=self._out_steps,
                             target=list(range(nt)))
        yw = yw.reshape(len(yw), self._out_steps * nt)
        model = self._make_model(self._out_steps * nt)
        history = model.fit(
            X, yw, epochs=int(self.epochs), batch_size=int(self.batch_size),
            shuffle=bool(self.shuffle), validation_split=float(self.validation_split),
            callbacks=self._callbacks(), verbose=self.verbose, seed=self.seed,
        )
        self.model_ = model
        self.history_ = history
        self.scaler_ = scaler
        self.freq_ = timeindex.infer_step(prep.index)
        self._index_name = prep.index.name if prep.pandas else None
        self._last_index = prep.index[-1] if prep.pandas else n - 1
        keep = self.window + self._shift
        self._context = prep.values[-keep:].copy()
        self._context_known = self._known_rows(prep.values, prep.index)[-keep:].copy()
        self.interval_errors_ = self._calibrate(data, prep)
        return self

    def _set_layout(self, prep: _Prepared) -> None:
        """Which columns are targets, past covariates and future covariates; the transforms."""
        n_features = prep.values.shape[1]
        future: List[int] = []
        if self.future_covariates:
            future, _ = _resolve_columns(list(self.future_covariates), n_features, prep.columns)
        if self.target is None:
            positions = [i for i in range(n_features) if i not in future]
            if not positions:
                raise ValueError("every column is a future covariate; nothing left to forecast")
            single = len(positions) == 1
        else:
            positions, single = _resolve_columns(self.target, n_features, prep.columns)
        both = [p for p in positions if p in future]
        if both:
            names = [prep.columns[p] if prep.columns is not None else p for p in both]
            raise ValueError(f"columns {names} are both targets and future_covariates")
        calendar = timeindex.check_calendar(self.calendar)
        if calendar and not (prep.pandas and timeindex.is_datetime_index(prep.index)):
            raise ValueError("calendar features need data with a DatetimeIndex")
        label = (lambda p: prep.columns[p]) if prep.columns is not None else (lambda p: p)
        self.n_features_in_ = n_features
        self.feature_names_in_ = list(prep.columns) if prep.columns is not None else None
        self.target_names_ = [label(p) for p in positions]
        self._positions = list(positions)
        self._past_positions = [i for i in range(n_features)
                                if i not in positions and i not in future]
        self._future_positions = list(future)
        self._calendar = list(calendar)
        self._lags = list(check_lags(self.difference))
        self._shift = sum(self._lags)
        self._single = bool(single)
        self._out_steps = self.horizon if self.strategy == "direct" else 1
        self._pandas = prep.pandas

    def _known_rows(self, values, index) -> np.ndarray:
        """(N, K): the future covariates and calendar features of each row (known in advance)."""
        known = values[:, self._future_positions]
        if self._calendar:
            known = np.concatenate([known, timeindex.calendar_features(index, self._calendar)],
                                   axis=1)
        return np.asarray(known, dtype=np.float64)

    def _target_levels(self, values):
        """The targets as the network models them before differencing: logged if ``log``."""
        return np.log(values) if self.log else np.asarray(values, dtype=np.float64)

    def _training_inputs(self, values, index):
        """The scaled network inputs, one row per time after the first ``sum(lags)``: the
        transformed targets, the past covariates, then the known covariates of the *next* row
        (the last row's are unknown and never used as an input, only as a target)."""
        targets = difference(self._target_levels(values[:, self._positions]), self._lags)
        past = values[self._shift:, self._past_positions]
        known = self._known_rows(values, index)[self._shift:]
        unshifted = np.concatenate([targets, past, known], axis=1)
        scaler = self._make_scaler()
        scaled = unshifted if scaler is None else scaler.fit_transform(unshifted)
        scaled = np.array(scaled, dtype=np.float64)
        k = known.shape[1]
        if k:
            scaled[:-1, -k:] = scaled[1:, -k:]
            scaled[-1, -k:] = 0.0
        return scaled, scaler

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

    # ------------------------------------------------------------------------------ intervals

    def _calibration_rows(self, n: int) -> Optional[int]:
        """How many final rows calibrate the intervals (None: no calibration)."""
        c = self.calibration_size
        if c is None:
            return None
        minimum_head = self.window + self._shift + self._out_steps + _MIN_TRAINING_WINDOWS
        if c == "auto":
            rows = min(_AUTO_CALIBRATION_MAX, n // 5)
            return rows if rows >= _AUTO_CALIBRATION_MIN and n - rows >= minimum_head else None
        rows = max(1, int(round(n * c))) if isinstance(c, float) else int(c)
        if n - rows < minimum_head:
            raise ValueError(
                f"calibration_size={c!r} leaves {n - rows} rows to fit the calibration copy on; "
                f"it needs at least {minimum_head} (window + differencing + "
                f"{_MIN_TRAINING_WINDOWS} windows). Use a smaller calibration_size or None"
            )
        return rows

    def _calibrate(self, data, prep: _Prepared) -> Optional[np.ndarray]:
        """Fit a copy on all but the last rows and return its absolute errors from every
        origin in that tail: (steps, origins, targets), NaN past the end of the data."""
        n = len(prep.values)
        rows = self._calibration_rows(n)
        if rows is None:
            return None
        head = data.iloc[:n - rows] if _is_pandas(data) else np.asarray(data)[:n - rows]
        copy = type(self)(**{**self.get_params(), "calibration_size": None, "verbose": 0})
        copy.fit(head)
        steps = rows if copy.can_recurse else copy._out_steps
        origins = np.arange(n - rows, n)
        forecast = copy._forecast_from(prep.values, prep.index, origins, steps)
        actual = np.full_like(forecast, np.nan)
        for h in range(steps):  # the actual value h steps after each origin, where there is one
            inside = origins + h < n
            actual[inside, h] = prep.values[origins[inside] + h][:, self._positions]
        errors = np.abs(self._target_levels(actual) - self._target_levels(forecast))
        return errors.transpose(1, 0, 2)  # (steps, origins, targets)

    def _interval_bounds(self, forecast, levels, steps_ahead=None):
        """``{column: (rows, targets) array}`` of interval bounds around ``forecast``
        (rows, targets), from the calibration errors at each row's step ahead
        (``steps_ahead``, 1-based; default: row k is step k + 1)."""
        if self.interval_errors_ is None:
            raise ValueError(
                "no prediction intervals: this forecaster was fitted without interval "
                "calibration (calibration_size=None, or a series too short for 'auto', which "
                "holds out a fifth of the rows, at least 8, and needs the window, the "
                "differencing lags, the horizon and 8 more rows before them). Set "
                "calibration_size= a number of final rows to calibrate on "
                "(GRUForecaster(calibration_size=N)) and fit again (backtest fits its own copy "
                "with the same settings)"
            )
        if steps_ahead is None:
            steps_ahead = np.arange(1, len(forecast) + 1)
        steps = int(steps_ahead.max())
        if steps > len(self.interval_errors_):
            raise ValueError(
                f"intervals are calibrated for up to {len(self.interval_errors_)} steps ahead; "
                f"{steps} were asked for. Refit with a larger calibration_size"
            )
        radius = conformal_radius(self.interval_errors_[:steps], levels)[:, steps_ahead - 1]
        center = self._target_levels(forecast)
        bounds = {}
        names = interval_columns(levels)
        for k in range(len(levels)):
            lo, hi = center - radius[k], center + radius[k]
            if self.log:
                lo, hi = np.exp(lo), np.exp(hi)
            bounds[names[2 * k]], bounds[names[2 * k + 1]] = lo, hi
        return bounds

    # ------------------------------------------------------------------------------ predict

    @property
    def can_recurse(self) -> bool:
        """True when every input is predicted or known in advance, so forecasts can be fed
        back (no past covariates)."""
        self._check_fitted()
        return not self._past_positions

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
                             f"{min_rows} are needed (window={self.window}"
                             f"{f', differencing {self._shift}' if self._shift else ''})")
        index = prep.index if prep.pandas and timeindex.is_datetime_index(prep.index) else None
        check_finite(prep.values, what, index, prep.columns)
        if self.log:
            check_positive_values(prep.values[:, self._positions], f"the target in {what}",
                                  index, self.target_names_, hint="the model was fitted with log=True")
        if self._calendar and not (prep.pandas and timeindex.is_datetime_index(prep.index)):
            raise ValueError(f"{what} needs a DatetimeIndex: the model uses calendar features")
        return prep

    def _scale(self, inputs):
        """Scale (..., F_in) network inputs."""
        if self.scaler_ is None:
            return np.asarray(inputs, dtype=np.float64)
        flat = inputs.reshape(-1, inputs.shape[-1])
        return np.asarray(self.scaler_.transform(flat), dtype=np.float64).reshape(inputs.shape)

    def _unscale_targets(self, values):
        """(..., n_targets) scaled network outputs -> transformed target units."""
        if self.scaler_ is None:
            return values
        nt = len(self._positions)
        flat = values.reshape(-1, nt)
        full = np.zeros((len(flat), self.scaler_.n_features_in_))
        full[:, :nt] = flat
        out = np.asarray(self.scaler_.inverse_transform(full), dtype=np.float64)[:, :nt]
        return out.reshape(values.shape)

    def _predict_scaled(self, X):
        out = np.asarray(self.model_.predict(X, batch_size=max(int(self.batch_size), _MIN_PREDICT_BATCH),
                                             verbose=0), dtype=np.float64)
        return out.reshape(len(X), self._out_steps, len(self._positions))

    def _forecast(self, raw, known, steps: int) -> np.ndarray:
        """Forecast ``steps`` values after each of a batch of histories.

        ``raw``: (B, window + sum(lags), F) past rows in the original units; ``known``:
        (B, window + sum(lags) + steps, K) the known covariates of those rows and of the steps
        to forecast. Returns (B, steps, n_targets) in the original units. Each block of
        network outputs is unscaled, integrated back to levels (``undifference``, every step
        feeding the next) and fed back as the newest rows.
        """
        w, shift = self.window, self._shift
        history = self._target_levels(raw[:, :, self._positions])
        start = history.shape[1]
        # the history then the forecasts, filled in place (appending per step was quadratic)
        levels = np.empty((history.shape[0], start + steps, history.shape[2]), history.dtype)
        levels[:, :start] = history
        past = raw[:, -w:, self._past_positions]
        end = start
        while end < start + steps:
            targets = difference(levels[:, end - w - shift:end], self._lags)
            inputs = np.concatenate([targets, past, known[:, end - w + 1:end + 1]], axis=2)
            out = self._predict_scaled(self._scale(inputs))
            take = min(self._out_steps, start + steps - end)
            step_values = self._unscale_targets(out[:, :take])
            levels[:, end:end + take] = undifference(step_values, levels[:, end - shift:end],
                                                     self._lags)
            end += take
        forecast = levels[:, start:]
        return np.exp(forecast) if self.log else forecast

    def _forecast_from(self, values, index, origins, steps: int) -> np.ndarray:
        """Forecasts of ``steps`` values starting at each row ``origins[b]`` of ``values``
        (N, F), each from the actual rows before it. Known covariates past the end of the
        data repeat the last row's; the forecasts that would use them are past the end too."""
        span = self.window + self._shift
        known = self._known_rows(values, index)
        pad = int(max(origins.max() + steps - len(values), 0))
        if pad:
            known = np.concatenate([known, np.repeat(known[-1:], pad, axis=0)])
        raw = sliding_window_view(values, span, axis=0).transpose(0, 2, 1)[origins - span]
        known = sliding_window_view(known, span + steps, axis=0).transpose(0, 2, 1)
        return self._forecast(raw, known[origins - span], steps)

    def predict(self, steps: Optional[int] = None, data=None, level=None, future=None):
        """Forecast the ``steps`` values after the end of the series (default ``horizon``).

        Without ``data`` the forecast starts after the series given to ``fit`` (or the last
        ``update``); with ``data`` (same columns as in fit, at least ``window`` rows, plus
        ``sum(lags)`` with ``difference``) it starts after the end of ``data``. Returns a
        Series (one target) or DataFrame (several) whose index continues the dates at the
        inferred frequency (with gaps: the calendar step of month, quarter or year starts or
        ends or of business days, else the median spacing), in the original units; an
        ndarray (steps,) or (steps, n_targets) when the series is an array.

        ``level``: interval levels in percent, e.g. ``(80, 95)``: a DataFrame comes back with
        columns ``forecast``, ``lo_80``, ``hi_80``, ``lo_95``, ``hi_95`` (several targets:
        those over a second column level of target names).

        ``future``: the values of the ``future_covariates`` for the forecast steps: a
        DataFrame with those columns and at least ``steps`` rows (dated like the forecast when
        both have a DatetimeIndex), or an array (steps, n_future_covariates).
        """
        self._check_fitted()
        steps = self.horizon if steps is None else check_positive_int("steps", steps)
        levels = check_levels(level)
        if data is None:
            context, context_known = self._context, self._context_known
            last, freq, pandas, name = self._last_index, self.freq_, self._pandas, self._index_name
        else:
            span = self.window + self._shift
            prep = self._align(data, min_rows=span)
            context = prep.values[-span:]
            context_known = self._known_rows(prep.values, prep.index)[-span:]
            pandas = prep.pandas
            last = prep.index[-1] if pandas else len(prep.values) - 1
            freq = timeindex.infer_step(prep.index) if pandas else None
            name = prep.index.name if pandas else None
        if steps > self._out_steps and not self.can_recurse:
            raise ValueError(
                f"cannot forecast {steps} steps: the model predicts {self.target_names_} with "
                f"past covariates {[self._label(p) for p in self._past_positions]} among its "
                f"inputs, so it cannot feed its own forecasts back beyond {self._out_steps} "
                f"step(s). Refit with strategy='direct' and horizon>={steps}, with those "
                "columns as targets, or as future_covariates if they are known in advance"
            )
        index = timeindex.future_index(last, freq, steps, name) if pandas else None
        known_next = self._future_known(future, steps, index)
        known = np.concatenate([context_known, known_next])
        values = self._forecast(context[None], known[None], steps)[0]
        bounds = self._interval_bounds(values, levels) if levels else None
        return self._wrap(values, index, pandas, bounds)

    def _label(self, position):
        names = self.feature_names_in_
        return names[position] if names is not None else position

    def _future_known(self, future, steps: int, index) -> np.ndarray:
        """(steps, K): the known covariates of the forecast steps, from ``future`` and the
        forecast dates."""
        names = [self._label(p) for p in self._future_positions]
        if not names:
            if future is not None:
                raise ValueError("future= is for future_covariates, and this forecaster has "
                                 "none (fit with future_covariates=[...])")
            values = np.empty((steps, 0))
        elif future is None:
            raise ValueError(
                f"this forecaster uses the future covariates {names}: pass their values for the "
                f"{steps} forecast step(s), e.g. predict({steps}, future=frame) with a frame of "
                f"those columns"
            )
        elif _is_pandas(future):
            frame = future.to_frame() if type(future).__name__ == "Series" else future
            missing = [c for c in names if c not in frame.columns]
            if missing:
                raise ValueError(f"future is missing the columns {missing}; it has "
                                 f"{list(frame.columns)}")
            if len(frame) < steps:
                raise ValueError(f"future has {len(frame)} row(s); {steps} forecast step(s) "
                                 "need one each")
            if index is not None and timeindex.is_datetime_index(frame.index) and \
                    timeindex.is_datetime_index(index) and not frame.index[:steps].equals(index):
                raise ValueError(
                    f"future's dates {frame.index[0]} .. {frame.index[steps - 1]} are not the "
                    f"forecast's {index[0]} .. {index[-1]}"
                )
            values = frame[names].iloc[:steps].to_numpy(dtype=np.float64)
        else:
            values = np.asarray(future, dtype=np.float64).reshape(len(future), -1)
            if values.shape[0] < steps or values.shape[1] != len(names):
                raise ValueError(f"future must be (steps, {len(names)}) for the covariates "
                                 f"{names}; got shape {values.shape}")
            values = values[:steps]
        check_finite(values, "future")
        if self._calendar:
            values = np.concatenate(
                [values, timeindex.calendar_features(index, self._calendar)], axis=1)
        return values

    def _wrap(self, values, index, pandas, bounds=None):
        """Forecast values (steps, n_targets) [+ interval bounds] -> what predict returns."""
        if bounds is None and not pandas:
            return values[:, 0] if self._single else values
        import pandas as pd

        if bounds is None:
            if self._single:
                return pd.Series(values[:, 0], index=index, name=self.target_names_[0])
            return pd.DataFrame(values, index=index, columns=list(self.target_names_))
        columns = {"forecast": values, **bounds}
        if self._single:
            return pd.DataFrame({k: v[:, 0] for k, v in columns.items()}, index=index)
        labels = pd.MultiIndex.from_product([list(columns), list(self.target_names_)])
        return pd.DataFrame(np.concatenate(list(columns.values()), axis=1), index=index,
                            columns=labels)

    def update(self, data):
        """Append new observations (real-time use): later ``predict()`` calls start after them.

        ``data``: rows with the same columns as in ``fit`` (any number; only the last
        ``window + sum(lags)`` are kept). No refitting. Returns ``self``.
        """
        import pandas as pd

        self._check_fitted()
        prep = self._align(data, "update data")
        if self._pandas and prep.pandas and timeindex.is_datetime_index(prep.index) and \
                isinstance(self._last_index, pd.Timestamp) and prep.index[0] <= self._last_index:
            raise ValueError(f"update data starts at {prep.index[0]}, not after the last date "
                             f"seen ({self._last_index})")
        if prep.pandas:
            index = prep.index
        elif self._pandas:  # rows without an index: they come at the fitted frequency
            index = timeindex.future_index(self._last_index, self.freq_, len(prep.values))
        else:
            index = None
        if self._calendar and not timeindex.is_datetime_index(index):
            raise ValueError("update data needs dates: the model uses calendar features")
        keep = self.window + self._shift
        self._context = np.concatenate([self._context, prep.values])[-keep:]
        self._context_known = np.concatenate(
            [self._context_known, self._known_rows(prep.values, index)])[-keep:]
        self._last_index = index[-1] if index is not None else self._last_index + len(prep.values)
        return self

    # ------------------------------------------------------------------------------ evaluate

    def _one_step(self, data, test_size=None):
        """One-step-ahead forecasts for the rows of ``data`` that have ``window`` (+ the
        differencing lags) rows before them (the last ``test_size`` of those when given);
        each uses the actual past."""
        span = self.window + self._shift
        prep = self._align(data, min_rows=span + 1)
        n = len(prep.values)
        available = n - span
        if test_size is None:
            test_size = available
        test_size = check_positive_int("test_size", test_size)
        if test_size > available:
            raise ValueError(
                f"test_size={test_size} needs {span + test_size} rows (window={self.window}"
                f"{f' + differencing {self._shift}' if self._shift else ''} before the first "
                f"tested row); data has {n}"
            )
        origins = np.arange(n - test_size, n)
        forecast = self._forecast_from(prep.values, prep.index, origins, 1)[:, 0, :]
        actual = prep.values[n - test_size:][:, self._positions]
        persistence = prep.values[n - test_size - 1:n - 1][:, self._positions]
        index = prep.index[n - test_size:] if prep.pandas else None
        return actual, forecast, persistence, index

    def score(self, data, metric: str = "rmse", test_size: Optional[int] = None) -> float:
        """The one-step-ahead error on ``data`` in the original units (lower is better).

        Each of the last ``test_size`` rows of ``data`` (default: every row after the first
        ``window + sum(lags)``) is forecast from the actual rows before it. Pass the held-out
        tail *with* the ``window + sum(lags)`` rows before it. ``metric``: "rmse" or "mae".
        """
        self._check_fitted()
        if metric not in _METRIC_FNS:
            raise ValueError(f"metric must be one of {_METRICS}; got {metric!r}")
        actual, forecast, _, _ = self._one_step(data, test_size)
        return _METRIC_FNS[metric](actual, forecast)

    def backtest(self, data, test_size: Union[int, float] = 0.1, refit: bool = True,
                 level=None) -> BacktestResult:
        """Hold out the last ``test_size`` rows (an int, or a fraction of the rows) and
        forecast each one step ahead from the actual values before it.

        Never changes this forecaster. ``refit=True`` (default) fits a clone (same parameters)
        on the rows before the tail; ``refit=False`` uses this fitted forecaster as it is.
        ``level``: interval levels in percent, e.g. ``(80,)``: the predictions get ``lo_80``
        and ``hi_80`` columns and ``coverage`` the fraction of actual values inside. Without
        ``level`` the clone skips interval calibration (one fit instead of two). Returns a
        ``BacktestResult`` (forecasts, actual values, persistence, RMSE/MAE of both, the
        forecaster used).
        """
        levels = check_levels(level)
        n = len(data)
        if isinstance(test_size, float) and not isinstance(test_size, bool):
            if not 0.0 < test_size < 1.0:
                raise ValueError(f"a fractional test_size must be in (0, 1); got {test_size}")
            test_size = max(1, int(round(n * test_size)))
        test_size = check_positive_int("test_size", test_size)
        if test_size >= n:
            raise ValueError(f"test_size={test_size} leaves no rows to train on (data has {n})")
        if refit:
            params = self.get_params()
            if not levels:
                params["calibration_size"] = None
            train = data.iloc[:n - test_size] if _is_pandas(data) else np.asarray(data)[:n - test_size]
            forecaster = type(self)(**params).fit(train)
        else:
            self._check_fitted()
            forecaster = self
        actual, forecast, persistence, index = forecaster._one_step(data, test_size)
        columns = {"actual": actual, "forecast": forecast, "persistence": persistence}
        coverage = {}
        if levels:
            # each tested row is one step ahead of its origin: the step-1 interval for all
            columns.update(forecaster._interval_bounds(
                forecast, levels, steps_ahead=np.ones(len(forecast), dtype=int)))
            for lv, name in zip(levels, interval_columns(levels)[::2]):
                lo, hi = columns[name], columns["hi" + name[2:]]
                coverage[lv] = float(np.mean((actual >= lo) & (actual <= hi)))
        import pandas as pd

        if forecaster._single:
            frame = pd.DataFrame({k: v[:, 0] for k, v in columns.items()}, index=index)
        else:
            cols = pd.MultiIndex.from_product([list(columns), list(forecaster.target_names_)])
            frame = pd.DataFrame(np.concatenate(list(columns.values()), axis=1),
                                 index=index, columns=cols)
        return BacktestResult(
            predictions=frame, rmse=metrics_mod.rmse(actual, forecast),
            mae=metrics_mod.mae(actual, forecast),
            persistence_rmse=metrics_mod.rmse(actual, persistence),
            persistence_mae=metrics_mod.mae(actual, persistence),
            n_steps=test_size, targets=list(forecaster.target_names_), levels=levels,
            coverage=coverage, forecaster=forecaster,
        )

    # ------------------------------------------------------------------------------ save/load

    def save(self, path) -> None:
        """Save the fitted forecaster (settings, transforms, scaler, weights, last window,
        calibration errors) to one file.

        The format is a NumPy ``.npz`` archive without pickles; read it with
        ``GRUForecaster.load(path)`` or ``fastgru.load_forecaster(path)``.
        """
        self._check_fitted()
        params = self.get_params()
        if not isinstance(params["scaler"], (str, type(None))):
            params["scaler"] = type(params["scaler"]).__name__
        if not isinstance(params["early_stopping"], (int, dict, bool, type(None))):
            params["early_stopping"] = None
        for name in ("target", "difference", "future_covariates", "calendar"):
            params[name] = _jsonable(params[name])
        params["log"] = bool(params["log"])
        if isinstance(params["calibration_size"], np.integer):
            params["calibration_size"] = int(params["calibration_size"])
        meta = {
            "format": _FORMAT,
            "params": params,
            "n_features_in": self.n_features_in_,
            "feature_names_in": _jsonable(self.feature_names_in_),
            "target_names": _jsonable(self.target_names_),
            "positions": self._positions,
            "past_positions": self._past_positions,
            "future_positions": self._future_positions,
            "single": self._single,
            "out_steps": self._out_steps,
            "pandas": self._pandas,
            "index_name": _jsonable(self._index_name),
            "last_index": timeindex.encode_index_value(self._last_index),
            "freq": timeindex.encode_step(self.freq_),
            "scaler": _scaler_state(self.scaler_),
            "history": {k: [float(v) for v in vs]
                        for k, vs in getattr(self.history_, "history", {}).items()},
        }
        arrays = {"meta": np.array(json.dumps(meta)), "context": self._context,
                  "context_known": self._context_known}
        if self.interval_errors_ is not None:
            arrays["interval_errors"] = self.interval_errors_
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
            if meta.get("format") not in _READABLE_FORMATS:
                raise ValueError(f"format {meta.get('format')!r}; expected {_FORMAT!r}")
            params = meta["params"]
            if params["scaler"] not in (None, "minmax", "standard"):
                params["scaler"] = meta["scaler"]["kind"] if meta["scaler"] else None
            if isinstance(params.get("difference"), list):
                params["difference"] = tuple(params["difference"])
            if meta["format"] == "fastgru.GRUForecaster/1":  # before transforms and intervals
                params.setdefault("calibration_size", None)
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
            self._future_positions = [int(p) for p in meta.get("future_positions", [])]
            self._past_positions = [int(p) for p in meta.get("past_positions", [
                i for i in range(n_features) if i not in self._positions])]
            if not all(0 <= p < n_features for p in self._future_positions + self._past_positions):
                raise ValueError("covariate positions out of range")
            self._calendar = list(timeindex.check_calendar(self.calendar))
            self._lags = list(check_lags(self.difference))
            self._shift = sum(self._lags)
            self._single = bool(meta["single"])
            self._out_steps = int(meta["out_steps"])
            self._pandas = bool(meta["pandas"])
            self._index_name = meta["index_name"]
            self._last_index = timeindex.decode_index_value(meta["last_index"])
            self.freq_ = timeindex.decode_step(meta["freq"])
            context = archive.read("context")
            if context.ndim != 2 or context.shape[1] != n_features or len(context) < int(self.window):
                raise ValueError(f"context has shape {context.shape}; expected "
                                 f"(>= {int(self.window)}, {n_features})")
            self._context = np.asarray(context, dtype=np.float64)
            if "context_known" in archive:
                known = archive.read("context_known")
                if known.ndim != 2 or len(known) != len(context):
                    raise ValueError(f"context_known has shape {known.shape}; expected "
                                     f"({len(context)}, k)")
            else:
                known = np.empty((len(context), 0))
            self._context_known = np.asarray(known, dtype=np.float64)
            errors = archive.read("interval_errors") if "interval_errors" in archive else None
            if errors is not None:
                errors = np.asarray(errors, dtype=np.float64)
                if errors.ndim != 3 or errors.shape[2] != n_targets or 0 in errors.shape[:2]:
                    raise ValueError(f"interval_errors has shape {errors.shape}; expected "
                                     f"(steps, origins, {n_targets})")
                if np.any(errors < 0) or np.any(np.isinf(errors)):
                    raise ValueError("interval_errors holds negative or infinite values; "
                                     "calibration errors are absolute values (NaN: not measured)")
            self.interval_errors_ = errors
            # settings that each look fine but do not fit together: found now, not at predict
            # (a forecaster that needs known-future values cannot forecast without them)
            if not self.future_covariates:
                self.predict(1)
        return self


def load_forecaster(path) -> GRUForecaster:
    """Load a ``GRUForecaster`` saved with ``save``."""
    return GRUForecaster.load(path)


# ---------------------------------------------------------------------------------- helpers


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

