"""``mode="global"``: one GRU trained on the windows of every series (as Darts' global models).

Each series is scaled by its own scaler (fitted on that series' training rows), cut into
windows, and the windows of all series train one ``GRU(units) -> Dense(1)``. Forecasts are
recursive, one step at a time, for all series in one batch. With ``log`` and ``difference``
(as ``GRUForecaster``'s) each series is logged and differenced before scaling and every
forecast integrated back, so trends carry on past the training range. A series too short
for one window
plus a target, or with NaN / infinite values or bad times, is reported as an error and left out
of training; the others are fitted.

Many short series are where this pays: a series of 60 steps gives a local model 60 - window
examples, the global model gets those of every series.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from .._validation import check_bool, check_positive_int, check_seed
from ..forecaster import GRUForecaster
from ..layers import GRU, Dense
from ..model import Sequential
from ..optimizers import Adam
from ..preprocessing import (MinMaxScaler, StandardScaler, check_lags, difference, make_windows,
                             undifference)
from ..timeindex import check_index, future_index, infer_step
from .frames import SeriesData
from .tasks import BatchResult

__all__ = ["GLOBAL_DEFAULTS", "check_global_params", "resolve_test_size", "forecast_global",
           "backtest_global"]

# The GRUForecaster settings a global model understands, with GRUForecaster's defaults.
GLOBAL_DEFAULTS = {name: value for name, value in GRUForecaster().get_params().items()
                   if name in ("window", "units", "epochs", "batch_size", "learning_rate",
                               "scaler", "seed", "shuffle", "loss", "reset_after", "verbose",
                               "log", "difference")}
_SCALERS = {"minmax": MinMaxScaler, "standard": StandardScaler}


def check_global_params(params: dict) -> dict:
    """``params`` with defaults filled in; ValueError naming a setting a global model lacks."""
    unknown = sorted(set(params) - set(GLOBAL_DEFAULTS))
    if unknown:
        raise ValueError(f"mode='global' does not take {unknown}; it takes "
                         f"{sorted(GLOBAL_DEFAULTS)} (use mode='local' for the others)")
    out = {**GLOBAL_DEFAULTS, **params}
    for name in ("window", "units", "epochs", "batch_size"):
        out[name] = check_positive_int(name, out[name])
    for name in ("shuffle", "reset_after", "log"):
        out[name] = check_bool(name, out[name])
    check_seed("seed", out["seed"])
    lags = out["difference"]  # () once checked: this runs again inside each task
    out["difference"] = () if isinstance(lags, tuple) and not lags else check_lags(lags)
    if out["scaler"] is not None and out["scaler"] not in _SCALERS:
        raise ValueError(f"scaler must be 'minmax', 'standard' or None in mode='global'; "
                         f"got {out['scaler']!r}")
    return out


def resolve_test_size(test_size, n_rows: int) -> int:
    """An int test size as is; a fraction in (0, 1) of ``n_rows``, at least 1 (as
    ``GRUForecaster.backtest``)."""
    if isinstance(test_size, float):
        return max(1, int(round(n_rows * test_size)))
    return int(test_size)


def _problem(s: SeriesData, min_rows: int, params: dict):
    """Why ``s`` cannot be used (a sentence), or None. ``min_rows`` counts the window and
    the rows after it; differencing costs ``sum(difference)`` more."""
    n, window, shift = len(s.values), params["window"], sum(params["difference"])
    min_rows += shift
    if n < min_rows:
        lags = f" and difference={params['difference']}" if shift else ""
        return (f"too short: {n} rows, but window={window}{lags} needs at least {min_rows} "
                "(and many more to learn anything)")
    bad = int((~np.isfinite(s.values)).sum())
    if bad:
        return (f"{bad} of {n} values are NaN or infinite (all of them)" if bad == n else
                f"{bad} of {n} values are NaN or infinite; fill them first")
    if params["log"] and np.any(s.values <= 0):
        return "log=True needs positive values; this series has values <= 0"
    try:
        check_index(s.times, "the series")
    except ValueError as exc:
        return str(exc)
    return None


def _scaler(params):
    name = params["scaler"]
    return _SCALERS[name]() if name is not None else None


def _levels(values, params) -> np.ndarray:
    """The series in the units the model's differences are taken in: logged with ``log``."""
    values = np.asarray(values, dtype=np.float64)
    return np.log(values) if params["log"] else values


def _modelled(values, params) -> np.ndarray:
    """What the network sees before scaling: the (logged) series, differenced by the lags
    (``sum(lags)`` rows shorter)."""
    return difference(_levels(values, params)[:, None], params["difference"])[:, 0]


def _integrated(diffs, history, params) -> np.ndarray:
    """Levels in the series' units from modelled values ``diffs`` (batch, steps) that follow
    the series' actual rows ``history`` (batch, >= sum(lags)), each level feeding the next."""
    levels = undifference(np.asarray(diffs)[..., None], _levels(history, params)[..., None],
                          params["difference"])[..., 0]
    return np.exp(levels) if params["log"] else levels


def _train(train: Sequence[np.ndarray], params: dict):
    """Fit one scaler per series and one model on the windows of all: (model, scalers).
    ``train``: each series as the network sees it before scaling (``_modelled``)."""
    window = params["window"]
    scalers, xs, ys = [], [], []
    for values in train:
        scaler = _scaler(params)
        scaled = scaler.fit_transform(values) if scaler is not None else values
        X, y = make_windows(np.asarray(scaled, dtype=np.float64), window)
        scalers.append(scaler)
        xs.append(X)
        ys.append(y)
    model = Sequential([GRU(params["units"], reset_after=params["reset_after"]), Dense(1)])
    model.compile(optimizer=Adam(learning_rate=params["learning_rate"]), loss=params["loss"])
    model.fit(np.concatenate(xs), np.concatenate(ys), epochs=params["epochs"],
              batch_size=params["batch_size"], shuffle=params["shuffle"],
              verbose=params["verbose"], seed=params["seed"])
    return model, scalers


def _scale(scaler, values):
    return np.asarray(scaler.transform(values) if scaler is not None else values, dtype=np.float64)


def _unscale(scaler, values):
    return np.asarray(scaler.inverse_transform(values) if scaler is not None else values,
                      dtype=np.float64)


def _predict(model, X, params):
    return np.asarray(model.predict(X, batch_size=max(256, params["batch_size"])),
                      dtype=np.float64)[:, 0]


def forecast_global(series: Sequence[SeriesData], horizon: int, params: dict) -> BatchResult:
    """Train one model on all usable series and forecast ``horizon`` steps of each."""
    params = check_global_params(params)
    window, shift = params["window"], sum(params["difference"])
    usable: List[SeriesData] = []
    errors = []
    for s in series:
        problem = _problem(s, window + 1, params)
        if problem is None:
            usable.append(s)
        else:
            errors.append((s.code, problem))
    if not usable:
        return BatchResult([], errors)
    modelled = [_modelled(s.values, params) for s in usable]
    model, scalers = _train(modelled, params)
    context = np.stack([_scale(sc, m[-window:]) for sc, m in zip(scalers, modelled)])
    context = context[:, :, None]
    steps = []
    for _ in range(horizon):  # recursive: each forecast becomes the newest input
        nxt = _predict(model, context, params)
        steps.append(nxt)
        context = np.concatenate([context[:, 1:], nxt[:, None, None]], axis=1)
    scaled = np.stack(steps, axis=1)  # (series, horizon)
    rows = []
    for i, (s, sc) in enumerate(zip(usable, scalers)):
        times = future_index(s.times[-1], infer_step(s.times), horizon)
        history = s.values[len(s.values) - shift:]
        rows.append((s.code, times, _integrated(_unscale(sc, scaled[i]), history, params)))
    return BatchResult(rows, errors)


def backtest_global(series: Sequence[SeriesData], test_size, params: dict) -> BatchResult:
    """Hold out each series' last ``test_size`` rows, train one model on the rest of all of
    them, forecast each held-out row one step ahead from the actual rows before it. Rows
    ``(code, times of the tail, actual, forecast, persistence)`` as ``backtest_local``."""
    params = check_global_params(params)
    window, shift = params["window"], sum(params["difference"])
    usable, sizes, errors = [], [], []
    for s in series:
        size = resolve_test_size(test_size, len(s.values))
        problem = _problem(s, window + 1 + size, params)
        if problem is None:
            usable.append(s)
            sizes.append(size)
        else:
            errors.append((s.code, problem.replace("needs at least", f"and test_size={size} "
                                                   "need at least")))
    if not usable:
        return BatchResult([], errors)
    # differencing a series' first rows gives the first rows of its differences
    modelled = [_modelled(s.values, params) for s in usable]
    model, scalers = _train([m[:-k] for m, k in zip(modelled, sizes)], params)
    tails = []
    for m, sc, k in zip(modelled, scalers, sizes):
        X, _ = make_windows(_scale(sc, m), window)
        tails.append(X[len(X) - k:])
    scaled = _predict(model, np.concatenate(tails), params)
    rows, start = [], 0
    for s, sc, k in zip(usable, scalers, sizes):
        diffs = _unscale(sc, scaled[start:start + k])
        start += k
        n = len(s.values)
        # each held-out row from the actual rows before it: history (k, shift), one step each
        history = np.stack([s.values[t - shift:t] for t in range(n - k, n)]) if shift else \
            np.empty((k, 0))
        forecast = _integrated(diffs[:, None], history, params)[:, 0]
        rows.append((s.code, s.times[n - k:], s.values[n - k:], forecast,
                     s.values[n - k - 1:n - 1]))
    return BatchResult(rows, errors)
