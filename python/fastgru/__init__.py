"""fastgru: fast GRU kernels (C++ SIMD + OpenMP) under a Keras-style forecasting API.

    import fastgru as fg
    model = fg.Sequential([fg.GRU(50), fg.Dense(1)])
    model.compile(optimizer=fg.Adam(1e-3), loss="mse")
    model.fit(X, y, epochs=10, batch_size=32)

See docs/ARCHITECTURE.md for the map of the package; ``fastgru.show_config()`` for the SIMD
path and threads in use.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

from . import _openmp  # first: libgomp reads its wait settings when _core loads it
from . import reference
from ._config import get_num_threads, set_num_threads, show_config
from .callbacks import Callback, EarlyStopping, History, LambdaCallback
from .datasets import load_airline_passengers, load_daily_temperatures
from .forecaster import BacktestResult, GRUForecaster, load_forecaster
from .many import ManyBacktestResult, backtest_many, forecast_many
from .gru import GRUGradients, GRUTape, PackedGRU, gru_backward, gru_forward, gru_forward_train
from .interop import from_keras, from_onnx, from_torch, keras_gru_weights, to_keras, to_onnx, \
    to_onnx_gru, to_torch
from .layers import GRU, Dense
from .keras_layers import Bidirectional, Dropout, Input
from .model import Sequential
from .saving import load_model
from .optimizers import SGD, Adam, AdamW, RMSprop
from . import metrics
from .preprocessing import Differencer, LogTransformer, MinMaxScaler, NotFittedError, StandardScaler, \
    make_windows

try:
    __version__ = _version("fastgru")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = [
    "reference",
    "show_config", "set_num_threads", "get_num_threads",
    "PackedGRU", "GRUTape", "GRUGradients", "gru_forward", "gru_forward_train", "gru_backward",
    "GRU", "Dense", "Input", "Dropout", "Bidirectional", "Sequential", "load_model", "Adam", "SGD", "AdamW", "RMSprop", "metrics",
    "Callback", "EarlyStopping", "History", "LambdaCallback",
    "MinMaxScaler", "StandardScaler", "NotFittedError", "make_windows",
    "LogTransformer", "Differencer", "load_airline_passengers",
    "GRUForecaster", "BacktestResult", "load_forecaster", "load_daily_temperatures",
    "from_torch", "to_torch", "from_keras", "keras_gru_weights", "to_onnx_gru",
    "to_keras", "to_onnx", "from_onnx",
    "forecast_many", "backtest_many", "ManyBacktestResult",
]


def __getattr__(name):  # fastgru.TorchGRURegressor: defined on first use, as it imports torch
    if name == "TorchGRURegressor":
        from .interop import TorchGRURegressor

        return TorchGRURegressor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
