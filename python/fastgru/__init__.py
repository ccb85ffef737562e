"""fastgru: fast GRU kernels (C++ SIMD + OpenMP) under a Keras-style forecasting API."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

from . import reference
from ._config import get_num_threads, set_num_threads, show_config
from .gru import GRUGradients, GRUTape, PackedGRU, gru_backward, gru_forward, gru_forward_train

try:
    __version__ = _version("fastgru")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+source"

__all__ = [
    "reference",
    "show_config", "set_num_threads", "get_num_threads",
    "PackedGRU", "GRUTape", "GRUGradients", "gru_forward", "gru_forward_train", "gru_backward",
]
