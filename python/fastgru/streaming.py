"""Stateful inference one reading at a time: ``st = model.stream(); y_t = st.step(x_t)``.

Each GRU layer keeps its state between calls, so feeding a window reading by reading from a
fresh stream gives exactly ``model.predict(window)``; carrying on keeps the context of every
reading seen so far (as a Keras ``stateful=True`` layer would).
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from .layers import GRU

__all__ = ["Stream"]


class Stream:
    """One-step-at-a-time view of a built ``Sequential`` model (see ``Sequential.stream``)."""

    def __init__(self, model, batch_size: int = 1):
        if not getattr(model, "built", False):
            raise RuntimeError("stream() needs a built model: fit it, predict once or set_weights first")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        self._layers = list(model.layers)
        if not isinstance(self._layers[0], GRU):
            raise ValueError("stream() needs a model whose first layer is a GRU")
        self._gru_ids = [i for i, layer in enumerate(self._layers) if isinstance(layer, GRU)]
        self.batch_size = batch_size
        self.input_size = self._layers[0].input_size
        self.dtype = self._layers[0].dtype
        self._states: List[np.ndarray] = []
        self.reset()

    def reset(self, states: Optional[List[np.ndarray]] = None) -> None:
        """Zero every GRU state, or set them (one (batch, units) array per GRU layer)."""
        grus = [self._layers[i] for i in self._gru_ids]
        if states is None:
            self._states = [np.zeros((self.batch_size, g.units), g.dtype) for g in grus]
            return
        if len(states) != len(grus):
            raise ValueError(f"states must hold {len(grus)} arrays, one per GRU layer; got {len(states)}")
        new = []
        for g, s in zip(grus, states):
            s = np.asarray(s, dtype=g.dtype)
            if s.shape != (self.batch_size, g.units):
                raise ValueError(f"state of GRU layer {g.name!r} must have shape "
                                 f"({self.batch_size}, {g.units}); got {s.shape}")
            new.append(np.ascontiguousarray(s))
        self._states = new

    @property
    def state(self) -> List[np.ndarray]:
        """The current state of each GRU layer, (batch, units) each (copies)."""
        return [s.copy() for s in self._states]

    def step(self, x_t) -> np.ndarray:
        """Feed one reading: ``(features,)`` or ``(batch, features)``; return the model output."""
        x = np.asarray(x_t, dtype=self.dtype)
        single = x.ndim == 1
        if x.shape != ((self.input_size,) if single else (self.batch_size, self.input_size)):
            raise ValueError(
                f"x_t must have shape (features,) = ({self.input_size},) or (batch, features) = "
                f"({self.batch_size}, {self.input_size}); got {np.shape(x_t)}"
            )
        if single and self.batch_size != 1:
            raise ValueError(f"x_t of shape ({self.input_size},) needs a stream of batch_size 1; "
                             f"this one has batch_size {self.batch_size}")
        # Checked once here; the GRU calls below skip PackedGRU's own Python checks.
        x = np.ascontiguousarray(x.reshape(self.batch_size, self.input_size))
        k = 0
        for layer in self._layers:
            if isinstance(layer, GRU):
                _, h = layer.packed().forward_prepared(x[:, None, :], self._states[k])
                self._states[k] = h
                x = h
                k += 1
            else:
                x = layer.call(x)
        return x[0] if single else x
