"""Stateful inference one reading at a time: ``st = model.stream(); y_t = st.step(x_t)``.

Each GRU layer keeps its state between calls, so feeding a window reading by reading from a
fresh stream gives exactly ``model.predict(window)``; carrying on keeps the context of every
reading seen so far (as a Keras ``stateful=True`` layer would).

A step is one C++ call (``fastgru.inference``): the states live in C++ and are advanced in
place, the Dense head runs in the same call, the GIL is released. The stream runs the
inference snapshot the model had when ``stream()`` was called: later weight changes (fit,
set_weights) do not reach it, so its outputs stay consistent with its state; call
``stream()`` again for the new weights (and ``reset`` or carry ``state`` over). A model with
a layer C++ cannot run steps through its layers' ``call`` under the model's lock, and so
uses the current weights at every step.
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from . import _core
from ._validation import check_positive_int, kernel_array
from .layers import GRU

__all__ = ["Stream"]


def _check_state_fits(batch_size: int, grus) -> None:
    """A ValueError naming batch_size when the streams' states alone would not fit in this
    machine's memory (else the allocation fails with a bare std::bad_alloc)."""
    need = batch_size * sum(g.units * np.dtype(g.dtype).itemsize for g in grus)
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX: let the allocation decide
        return
    if need > have:
        raise ValueError(f"batch_size={batch_size} streams need at least {need / 2**30:.3g} GiB "
                         f"(their GRU states alone), more than this machine's "
                         f"{have / 2**30:.3g} GiB")


class Stream:
    """One-step-at-a-time view of a built ``Sequential`` model (see ``Sequential.stream``).

    ``batch_size`` independent streams advance together: ``step`` then takes one reading per
    stream, ``(batch_size, features)``.
    """

    def __init__(self, model, batch_size: int = 1):
        if not getattr(model, "built", False):
            raise RuntimeError("stream() needs a built model: fit it, predict once or set_weights first")
        batch_size = check_positive_int("batch_size", batch_size)
        if not isinstance(model.layers[0], GRU):
            raise ValueError("stream() needs a model whose first layer is a GRU")
        self._grus = [layer for layer in model.layers if isinstance(layer, GRU)]
        _check_state_fits(batch_size, self._grus)
        self.batch_size = int(batch_size)
        self.input_size = model.layers[0].input_size
        self.dtype = model.layers[0].dtype
        native = model.inference_snapshot().stream(self.batch_size)
        if native is None:  # a layer C++ cannot run: the layers' own call, step by step
            self._stream = _LayerStream(model, self.batch_size)
        else:
            self._stream = native
        # The C++ step itself (a builtin bound to the C++ stream), so that a step runs no
        # Python code at all.
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
            if s.dtype.kind not in "biuf":  # as step takes: casting complex would drop a part
                raise TypeError(f"state of GRU layer {g.name!r} must hold real numbers; got "
                                f"dtype {s.dtype}")
            if s.shape != (self.batch_size, g.units):
                raise ValueError(f"state of GRU layer {g.name!r} must have shape "
                                 f"({self.batch_size}, {g.units}); got {s.shape}")
            arrays.append(kernel_array(s, self.dtype))
        self._stream.set_state(arrays)

    @property
    def state(self) -> List[np.ndarray]:
        """The current state of each GRU layer, (batch_size, units) each (copies)."""
        return self._stream.get_state()

    @state.setter
    def state(self, states: List[np.ndarray]) -> None:
        self.reset(states)


class _LayerStream:
    """The C++ stream's interface over the layers' own ``call`` (models C++ cannot run). It
    runs the layers' current weights, not a snapshot, under the model's lock."""

    def __init__(self, model, batch_size: int):
        self._model = model
        self._layers = list(model.layers)
        self._grus = [layer for layer in self._layers if isinstance(layer, GRU)]
        self.batch_size = batch_size
        self._dtype = self._layers[0].dtype
        self._input_size = self._layers[0].input_size
        self.reset()

    def step(self, x_t, out=None):
        # the C++ stream's own rules (types, shape, NaN/inf): one definition for both paths
        a = _core.checked_stream_reading(x_t, self.batch_size, self._input_size,
                                         self._dtype == np.float64)
        flat = self.batch_size == 1 and np.ndim(x_t) < 2
        states, k = [], 0
        with self._model.reading():  # one weight version for the whole step
            for layer in self._layers:
                if isinstance(layer, GRU):
                    _, a = layer.packed().forward(a[:, None, :], self._states[k])
                    states.append(a)
                    k += 1
                else:
                    a = layer.call(a)
        y = a[0] if flat else a
        if out is not None:
            if not isinstance(out, np.ndarray) or out.dtype != self._dtype:
                raise TypeError(f"out must be an array of dtype {self._dtype}")  # as C++
            if out.shape != y.shape or not out.flags.writeable:
                raise ValueError(f"out must be a writeable array of shape {y.shape}")
            np.copyto(out, y)
            y = out
        self._states = states
        return y

    def reset(self) -> None:
        self._states = [np.zeros((self.batch_size, g.units), self._dtype) for g in self._grus]

    def get_state(self) -> List[np.ndarray]:
        return [s.copy() for s in self._states]

    def set_state(self, states) -> None:
        if not all(np.isfinite(s).all() for s in states):
            raise ValueError("state contains NaN or inf values")
        self._states = [np.array(s, dtype=self._dtype) for s in states]
