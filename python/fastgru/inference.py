"""The C++ inference model behind ``Sequential.predict`` and ``Sequential.stream``.

A model that starts with a GRU is handed to C++ once (``build_inference_model``): GRU weights
packed for the active SIMD path, Dense layers copied, buffers kept between calls. A predict
call is then one C++ call on the caller's array, and a stream step one more. The model is a
snapshot: ``Sequential`` rebuilds it when its weights change; a stream keeps the weights it
was made with.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from . import _core
from .layers import GRU, Dense, Layer

__all__ = ["build_inference_model", "has_inference_path"]

_MODEL_CLASSES = {
    np.dtype(np.float32): _core.InferenceModelFloat32,
    np.dtype(np.float64): _core.InferenceModelFloat64,
}
STREAM_CLASSES = {
    _core.InferenceModelFloat32: _core.StreamFloat32,
    _core.InferenceModelFloat64: _core.StreamFloat64,
}


def has_inference_path(layers: Sequence[Layer]) -> bool:
    """True when C++ can run these layers: a GRU first, then only GRU and Dense layers (not
    subclasses, whose ``call`` may differ); other models run their layers' ``call``."""
    return (bool(layers) and type(layers[0]) is GRU
            and all(type(layer) in (GRU, Dense) for layer in layers))


def build_inference_model(layers: Sequence[Layer]):
    """A ``_core.InferenceModelFloat32/64`` for built layers (the first one a GRU)."""
    specs = []
    for layer in layers:
        if isinstance(layer, GRU):
            specs.append(("gru", *layer._weights, layer.reset_after, layer.return_sequences))
        elif isinstance(layer, Dense):
            specs.append(("dense", *layer._weights, layer.activation))
        else:
            raise TypeError(f"no inference path for layer type {type(layer).__name__}")
    return _MODEL_CLASSES[layers[0].dtype](specs)
