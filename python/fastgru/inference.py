"""Inference snapshots: one immutable view of a model's weights per weight version.

``Sequential`` publishes a new ``InferenceSnapshot`` whenever its weights change (set_weights,
each fit step, load, a layer's own set_weights or config change) by one attribute assignment;
readers (predict, streams) take the current snapshot once per call, so every call sees the
old weights or the new, never a mix, and never waits for a writer.

A snapshot holds read-only copies of the weights and each layer's spec
(``Layer.inference_spec``, see ``fastgru.specs``). When every layer has one, the first a GRU,
the C++ model (``_core.InferenceModelFloat32/64``: GRU weights packed for the active SIMD path,
Dense layers copied, buffers kept between calls) is built from the specs on first use; a
predict call is then one C++ call on the caller's array and a stream step one more. Otherwise
``runner`` is None and the model runs its layers' own ``call`` under its lock.
"""
from __future__ import annotations

import threading
from typing import Optional, Sequence, Tuple

import numpy as np

from . import _core
from .specs import GRUSpec, IdentitySpec, LayerSpec

__all__ = ["InferenceSnapshot", "STREAM_CLASSES"]

_MODEL_CLASSES = {
    np.dtype(np.float32): _core.InferenceModelFloat32,
    np.dtype(np.float64): _core.InferenceModelFloat64,
}
STREAM_CLASSES = {
    _core.InferenceModelFloat32: _core.StreamFloat32,
    _core.InferenceModelFloat64: _core.StreamFloat64,
}


def _native_specs(specs: Sequence[Optional[LayerSpec]]) -> Optional[Tuple[LayerSpec, ...]]:
    """The specs C++ runs (identities dropped), or None when some layer has no C++ form."""
    if any(s is None for s in specs):
        return None
    native = tuple(s for s in specs if not isinstance(s, IdentitySpec))
    if not native or not isinstance(native[0], GRUSpec):
        return None
    return native


class InferenceSnapshot:
    """The weights of one version of a model and, where C++ can run it, its C++ copy.

    ``version`` counts the model's publications; ``weights`` are read-only arrays, one tuple
    per layer in Keras order; ``specs`` the layers' specs (None entries for layers without a
    C++ form). Nothing in a snapshot changes after it is made, except that ``runner`` is built
    on first use (once, under a lock). Safe to share between threads.
    """

    def __init__(self, version: int, layers: Sequence, weights: Sequence[Sequence[np.ndarray]],
                 dtype):
        self.version = int(version)
        self.weights = tuple(tuple(ws) for ws in weights)
        self.specs = tuple(layer.inference_spec(list(ws)) for layer, ws in zip(layers, self.weights))
        self.dtype = np.dtype(dtype)
        self._native = _native_specs(self.specs)
        self._runner = None
        self._build_lock = threading.Lock()

    @property
    def has_native_path(self) -> bool:
        """True when C++ runs this model (every layer has a spec, the first a GRU)."""
        return self._native is not None

    @property
    def runner(self):
        """The ``_core.InferenceModelFloat32/64`` for these weights (built on first use), or
        None when the layers run in Python."""
        runner = self._runner
        if runner is None and self._native is not None:
            with self._build_lock:
                if self._runner is None:
                    self._runner = _MODEL_CLASSES[self.dtype](list(self._native))
                runner = self._runner
        return runner

    def stream(self, batch_size: int):
        """A C++ stream (``_core.StreamFloat32/64``) over this snapshot's weights, or None
        when the layers run in Python."""
        runner = self.runner
        return None if runner is None else STREAM_CLASSES[type(runner)](runner, batch_size)
