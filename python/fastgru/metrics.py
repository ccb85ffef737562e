"""Metrics with Keras 3's definitions: what ``compile(metrics=[...])`` reports during ``fit``
and ``evaluate``, and the plain ``rmse``/``mae``/``mape`` scores the forecaster uses.

A ``Metric`` has a per-sample value (``per_sample(pred, y, sparse)``, one value per sample or
per element) that the model sums and counts over an epoch, and ``result(mean)`` that turns the
epoch's mean into the reported number: the identity for most metrics, ``sqrt`` for the root
mean squared error, which Keras also takes of the epoch's mean, not per batch.

    m.compile(loss="mse", metrics=["mae", "rmse", fastgru.metrics.RootMeanSquaredError()])

Names follow Keras: ``"mae"`` logs as ``mae``, ``RootMeanSquaredError()`` as
``root_mean_squared_error``; ``"accuracy"`` resolves to binary, sparse categorical or
categorical accuracy from the loss and the output size, as Keras does.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Union

import numpy as np

from .losses import EPSILON  # one Keras backend epsilon for losses and metrics

__all__ = [
    "Metric", "MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError",
    "MeanAbsolutePercentageError", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "get", "rmse", "mae", "mape",
]


class Metric:
    """A metric reported by ``fit``/``evaluate``: a name, a per-sample value and the result."""

    name = "metric"

    def __init__(self, name: Optional[str] = None):
        if name is not None:
            self.name = str(name)

    def per_sample(self, pred: np.ndarray, y: np.ndarray, sparse: bool) -> np.ndarray:
        raise NotImplementedError

    def result(self, mean: float) -> float:
        """The reported value from the sample-weighted mean of ``per_sample`` over the epoch."""
        return mean

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class MeanAbsoluteError(Metric):
    name = "mean_absolute_error"

    def per_sample(self, pred, y, sparse):
        return np.abs(pred - y).mean(axis=-1)


class MeanSquaredError(Metric):
    name = "mean_squared_error"

    def per_sample(self, pred, y, sparse):
        d = pred - y
        return (d * d).mean(axis=-1)


class RootMeanSquaredError(MeanSquaredError):
    """Keras ``RootMeanSquaredError``: sqrt of the mean squared error over the whole epoch."""

    name = "root_mean_squared_error"

    def result(self, mean):
        return float(np.sqrt(mean))


class MeanAbsolutePercentageError(Metric):
    name = "mean_absolute_percentage_error"

    def per_sample(self, pred, y, sparse):
        return 100.0 * (np.abs(y - pred) / np.maximum(np.abs(y), EPSILON)).mean(axis=-1)


class BinaryAccuracy(Metric):
    name = "binary_accuracy"

    def per_sample(self, pred, y, sparse):
        return ((pred > 0.5) == (y > 0.5)).mean(axis=-1)


class SparseCategoricalAccuracy(Metric):
    name = "sparse_categorical_accuracy"

    def per_sample(self, pred, y, sparse):
        return pred.argmax(axis=-1) == y


class CategoricalAccuracy(Metric):
    name = "categorical_accuracy"

    def per_sample(self, pred, y, sparse):
        return pred.argmax(axis=-1) == y.argmax(axis=-1)


_BY_NAME: Dict[str, Callable[[], Metric]] = {
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "rmse": RootMeanSquaredError, "root_mean_squared_error": RootMeanSquaredError,
    "mape": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "binary_accuracy": BinaryAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
}
_ACCURACY = ("accuracy", "acc")


def check(identifier: Union[str, Metric]) -> None:
    """Raise if ``identifier`` names no metric (at ``compile``, before the model is built)."""
    if isinstance(identifier, Metric):
        return
    if not isinstance(identifier, str):
        raise TypeError(f"metrics are names or fastgru.metrics.Metric instances; got {identifier!r}")
    if identifier.lower() not in _ACCURACY and identifier.lower() not in _BY_NAME:
        raise ValueError(
            f"unknown metric {identifier!r}; expected 'accuracy', one of {sorted(_BY_NAME)} "
            "or a fastgru.metrics.Metric"
        )


def get(identifier: Union[str, Metric], sparse_loss: bool = False, out_units: int = 1) -> Metric:
    """A metric by Keras name or instance. ``"accuracy"`` is binary for one output, sparse
    categorical after a sparse loss, else categorical (Keras' resolution)."""
    check(identifier)
    if isinstance(identifier, Metric):
        return identifier
    key = identifier.lower()
    if key in _ACCURACY:
        if out_units == 1:
            metric = BinaryAccuracy()
        elif sparse_loss:
            metric = SparseCategoricalAccuracy()
        else:
            metric = CategoricalAccuracy()
    else:
        metric = _BY_NAME[key]()
    metric.name = identifier  # logged under the name the user gave, as Keras does
    return metric


def log_name(identifier: Union[str, Metric]) -> str:
    """The key a metric's value has in ``History`` and ``evaluate(return_dict=True)``."""
    return identifier.name if isinstance(identifier, Metric) else identifier


def serialize(identifiers: List[Union[str, Metric]]) -> List[str]:
    """Metric names for a saved model (built-in metrics only)."""
    out = []
    for m in identifiers:
        if isinstance(m, Metric):
            if type(m) not in _BY_NAME.values():
                raise ValueError(f"cannot save custom metric {m!r}; use a built-in metric")
            m = type(m).name
        out.append(m)
    return out


# -- plain scores on two arrays (the forecaster's score and backtests) ---------------------
def rmse(actual, forecast) -> float:
    """Root mean squared error over all values."""
    d = np.asarray(actual, dtype=np.float64) - np.asarray(forecast, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d)))


def mae(actual, forecast) -> float:
    """Mean absolute error over all values."""
    return float(np.mean(np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(forecast, dtype=np.float64))))


def mape(actual, forecast) -> float:
    """Mean absolute percentage error (Keras' definition, in percent) over all values."""
    a = np.asarray(actual, dtype=np.float64)
    return float(100.0 * np.mean(np.abs(a - np.asarray(forecast, dtype=np.float64)) / np.maximum(np.abs(a), EPSILON)))
