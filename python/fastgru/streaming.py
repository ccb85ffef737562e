"""Stateful inference one reading at a time: ``st = model.stream(); y_t = st.step(x_t)``.

Each GRU layer keeps its state between calls, so feeding a window reading by reading from a
fresh stream gives exactly ``model.predict(window)``; carrying on keeps the context of every
reading seen so far (as a Keras ``stateful=True`` layer would).

A step is one C++ call (``fastgru.inference``): the states live in C++ and are advanced in
place, the Dense head runs in the same call, the GIL is released. The stream runs the
weights the model had when ``stream()`` was called; call it again after further training.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from .inference import STREAM_CLASSES
from .layers import GRU

__all__ = ["Stream"]


class Stream:
    """One-step-at-a-time view of a built ``Sequential`` model (see ``Sequential.stream``).

    ``batch_size`` independent streams advance together: ``step`` then takes one reading per
    stream, ``(batch_size, features)``.
    """

    def __init__(self, model, batch_size: int = 1):
        if not getattr(model, "built", False):
            raise RuntimeError("stream() needs a built model: fit it, predict once or set_weights first")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        if not isinstance(model.layers[0], GRU):
            raise ValueError("stream() needs a model whose first layer is a GRU")
        self._grus = [layer for layer in model.layers if isinstance(layer, GRU)]
        self.batch_size = int(batch_size)
        self.input_size = model.layers[0].input_size
        self.dtype = model.layers[0].dtype
        runner = model._inference_model()
        self._stream = STREAM_CLASSES[type(runner)](runner, self.batch_size)
        # The bound C++ method itself, so that a step runs no Python code at all.
        self.step = self._stream.step

    def step(self, x_t, out: Optional[np.ndarray] = None) -> np.ndarray:  # replaced per instance
        """Feed one reading, ``(features,)`` (a stream of one; a bare number if features == 1)
        or ``(batch_size, features)``; return the model output, ``(outputs,)`` or
        ``(batch_size, outputs)``. With ``out`` (that shape, the model's dtype) the output is
        written there and nothing is allocated. Raises ValueError for a wrong shape or a NaN/inf
        reading (which would poison the state)."""
        return self._stream.step(x_t, out)

    def reset(self, states: Optional[List[np.ndarray]] = None) -> None:
        """Zero every GRU state, or set them (one (batch_size, units) array per GRU layer)."""
        if states is None:
            self._stream.reset()
            return
        states = list(states)
        if len(states) != len(self._grus):
            raise ValueError(
                f"states must hold {len(self._grus)} arrays, one per GRU layer; got {len(states)}"
            )
        arrays = []
        for g, s in zip(self._grus, states):
            s = np.asarray(s)
            if s.shape != (self.batch_size, g.units):
                raise ValueError(f"state of GRU layer {g.name!r} must have shape "
                                 f"({self.batch_size}, {g.units}); got {s.shape}")
            arrays.append(np.ascontiguousarray(s, dtype=self.dtype))
        self._stream.set_state(arrays)

    @property
    def state(self) -> List[np.ndarray]:
        """The current state of each GRU layer, (batch_size, units) each (copies)."""
        return self._stream.get_state()

    @state.setter
    def state(self, states: List[np.ndarray]) -> None:
        self.reset(states)
