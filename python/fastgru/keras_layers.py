"""The Keras layers a GRU model is built with besides ``GRU`` and ``Dense``: ``Input``,
``Dropout`` and ``Bidirectional``, with Keras 3 semantics and weight order.

    m = Sequential([Input((100, 1)), Bidirectional(GRU(32)), Dropout(0.2), Dense(1)])

* ``Input(shape)`` is no layer: it gives the model its input shape (no samples axis), so the
  model builds at once when it is first used (summary, weights, predict), as Keras does.
* ``Dropout(rate)`` zeroes inputs with probability ``rate`` and scales the rest by
  ``1 / (1 - rate)`` in training only; at inference it is the identity (C++ skips it).
* ``Bidirectional(GRU(...), merge_mode)`` runs a forward GRU and a backward copy (the same
  config, its own weights) over the reversed sequence, both on the C++ kernels, and merges
  the two outputs (``concat``, ``sum``, ``ave``, ``mul``); with ``return_sequences`` the
  backward outputs are reversed back to time order first. Weights in Keras' order: the
  forward GRU's three arrays, then the backward GRU's. A model with one runs its layers' own
  ``call`` (each GRU still on the C++ kernels): the inference copy has no bidirectional form.
"""
from __future__ import annotations

import weakref
from typing import List, Optional, Sequence

import numpy as np

from .layers import LAYER_CLASSES, GRU, Layer, check_input_shape, check_rate, dropout_mask
from .specs import IdentitySpec

__all__ = ["Input", "Dropout", "Bidirectional"]


class Input:
    """Keras ``Input(shape)``: the input shape without the samples axis, e.g. ``(timesteps,
    features)``; put it first in a ``Sequential``."""

    def __init__(self, shape=None, batch_size: Optional[int] = None, dtype=None,
                 name: Optional[str] = None, batch_shape=None):
        if shape is None and batch_shape is None:
            raise ValueError("Input needs a shape, e.g. Input((timesteps, features))")
        if batch_shape is not None:
            batch_shape = tuple(batch_shape)
            shape, batch_size = batch_shape[1:], batch_shape[0]
        self.shape = (batch_size,) + check_input_shape(shape, "shape")
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.name = name

    def __repr__(self) -> str:
        return f"Input(shape={self.shape[1:]})"


class Dropout(Layer):
    """Keras ``Dropout(rate, noise_shape=None, seed=None)``: inverted dropout in training, the
    identity at inference. ``noise_shape`` (with None for the input's own size) shares one
    draw along axes of size 1, e.g. ``(None, 1, features)`` for one mask per sequence."""

    _transient = ("_mask",)

    def __init__(self, rate: float, noise_shape=None, seed: Optional[int] = None,
                 dtype="float32", name: Optional[str] = None, input_shape=None):
        super().__init__(name=name, dtype=dtype, seed=seed, input_shape=input_shape)
        self.rate = check_rate("rate", rate)
        self.noise_shape = (None if noise_shape is None else  # one entry per input axis
                            check_input_shape(noise_shape, "noise_shape", fixed_features=False))
        self._mask = None
        self._noise = None

    def weight_shapes(self, input_size: Optional[int] = None) -> List[tuple]:
        return []

    def build(self, input_shape, rng: Optional[np.random.Generator] = None) -> None:
        self.input_size = int(input_shape[-1])
        if self.noise_shape is not None and self.noise_shape[-1] not in (None, 1, self.input_size):
            raise ValueError(
                f"Dropout layer {self.name!r}: noise_shape {self.noise_shape} must have None, 1 "
                f"or the feature count {self.input_size} on its last axis"
            )
        self._noise = np.random.default_rng(self._rng(rng).integers(2**63))
        self._finish_build([])

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape)

    def inference_spec(self, weights):
        return IdentitySpec()

    def call(self, x: np.ndarray) -> np.ndarray:
        return x

    def forward_train(self, x: np.ndarray) -> np.ndarray:
        if self.rate == 0:
            self._mask = None
            return x
        if self._noise is None:
            self._noise = np.random.default_rng(self.seed)
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.ndim:
                raise ValueError(
                    f"Dropout layer {self.name!r}: noise_shape {self.noise_shape} must have one "
                    f"entry per input axis; the input has shape {x.shape}"
                )
            if any(n not in (None, 1, s) for n, s in zip(self.noise_shape, x.shape)):
                raise ValueError(  # before a mask of that shape is drawn
                    f"Dropout layer {self.name!r}: noise_shape {self.noise_shape} must have, on "
                    f"each axis, None, 1 or the input's size; the input has shape {x.shape}"
                )
            shape = tuple(s if n is None else int(n) for n, s in zip(self.noise_shape, x.shape))
        self._mask = dropout_mask(self._noise, shape, self.rate, self.dtype)
        return x * self._mask

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> Optional[np.ndarray]:
        mask, self._mask = self._mask, None
        if not need_dx:
            return None
        return dy if mask is None else dy * mask

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(rate=self.rate,
                      noise_shape=None if self.noise_shape is None else list(self.noise_shape))
        return config


_MERGE_MODES = ("concat", "sum", "ave", "mul")


class Bidirectional(Layer):
    """Keras ``Bidirectional(GRU(...), merge_mode="concat")`` (see the module docstring)."""

    sequence_input = True
    _transient = ("_tape",)

    def __init__(self, layer: GRU, merge_mode: str = "concat", name: Optional[str] = None,
                 input_shape=None):
        if not isinstance(layer, GRU):
            raise TypeError(f"Bidirectional wraps a fastgru GRU; got {type(layer).__name__}")
        if layer.built or layer.owner is not None:
            raise ValueError("Bidirectional needs a new GRU (not built, in no model)")
        if layer.return_state:
            raise ValueError("Bidirectional(GRU(return_state=True)) is not supported; "
                             "use return_state=False")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {_MERGE_MODES}; got {merge_mode!r}")
        if input_shape is None:
            input_shape = layer.declared_input_shape
        super().__init__(name=name, dtype=layer.dtype.name, seed=layer.seed, input_shape=input_shape)
        self.merge_mode = merge_mode
        config = layer.get_config()
        config.pop("input_shape", None)
        base = layer.name or "gru"
        layer.name = f"forward_{base}"
        config["name"] = f"backward_{base}"
        if config.get("seed") is not None:
            config["seed"] = config["seed"] + 1  # its own weights, still reproducible
        self.forward_layer = layer
        self.backward_layer = GRU.from_config(config)
        self._tape = None

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def units(self) -> int:
        """Output features: 2 * GRU units for ``concat``, else the GRU's units."""
        h = self.forward_layer.units
        return 2 * h if self.merge_mode == "concat" else h

    # -- weights: the two GRUs' own, forward first (Keras order) ------------------------
    def weight_shapes(self, input_size: Optional[int] = None) -> List[tuple]:
        return (self.forward_layer.weight_shapes(input_size)
                + self.backward_layer.weight_shapes(input_size))

    @property
    def weights(self) -> List[np.ndarray]:
        return self.forward_layer.weights + self.backward_layer.weights

    def get_weights(self) -> List[np.ndarray]:
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def _write_weights(self, arrays: Sequence[np.ndarray]) -> None:
        n = len(self.forward_layer.weight_shapes())
        self.forward_layer.set_weights(arrays[:n])
        self.backward_layer.set_weights(arrays[n:])

    def count_params(self) -> int:
        return self.forward_layer.count_params() + self.backward_layer.count_params()

    def bind(self, model, weight_views, grad_views) -> None:
        self.check_unowned_or(model)
        n = len(self.forward_layer.weight_shapes())
        self.forward_layer.bind(model, weight_views[:n], grad_views[:n])
        self.backward_layer.bind(model, weight_views[n:], grad_views[n:])
        self._owner_ref = weakref.ref(model)

    def weights_written(self, stepped: bool = False) -> None:
        self.forward_layer.weights_written(stepped)
        self.backward_layer.weights_written(stepped)

    def build(self, input_shape, rng: Optional[np.random.Generator] = None) -> None:
        rng = self._rng(rng)
        self.forward_layer.build(input_shape, rng=rng)
        self.backward_layer.build(input_shape, rng=rng)
        self.input_size = self.forward_layer.input_size
        self.built = True

    def compute_output_shape(self, input_shape) -> tuple:
        shape = self.forward_layer.compute_output_shape(input_shape)
        return tuple(shape[:-1]) + (self.units,)

    # -- computing -------------------------------------------------------------------
    @staticmethod
    def _reversed(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[:, ::-1])

    def _merge(self, yf: np.ndarray, yb: np.ndarray) -> np.ndarray:
        mode = self.merge_mode
        if mode == "concat":
            return np.concatenate([yf, yb], axis=-1)
        if mode == "sum":
            return yf + yb
        if mode == "ave":
            return (yf + yb) * self.dtype.type(0.5)
        return yf * yb

    def _outputs(self, x, run):
        yf = run(self.forward_layer, x)
        yb = run(self.backward_layer, self._reversed(x))
        if self.return_sequences:
            yb = self._reversed(yb)
        return yf, yb

    def call(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3:
            raise ValueError(f"Bidirectional layer {self.name!r} expects 3-D input (samples, "
                             f"timesteps, features); got shape {x.shape}")
        return self._merge(*self._outputs(x, lambda layer, a: layer.call(a)))

    def forward_train(self, x: np.ndarray) -> np.ndarray:
        yf, yb = self._outputs(x, lambda layer, a: layer.forward_train(a))
        self._tape = (yf, yb) if self.merge_mode == "mul" else None
        return self._merge(yf, yb)

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> Optional[np.ndarray]:
        mode = self.merge_mode
        if mode == "concat":
            h = self.forward_layer.units
            dyf, dyb = dy[..., :h], dy[..., h:]
        elif mode == "sum":
            dyf = dyb = dy
        elif mode == "ave":
            dyf = dyb = dy * self.dtype.type(0.5)
        else:
            yf, yb = self._tape
            dyf, dyb = dy * yb, dy * yf
        self._tape = None
        dyf = np.ascontiguousarray(dyf, dtype=self.dtype)
        dyb = self._reversed(dyb) if self.return_sequences else np.ascontiguousarray(dyb, dtype=self.dtype)
        dxf = self.forward_layer.backward(dyf, need_dx=need_dx)
        dxb = self.backward_layer.backward(dyb, need_dx=need_dx)
        if not need_dx:
            return None
        return dxf + dxb[:, ::-1]

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("dtype")
        config.pop("seed")
        layer_config = self.forward_layer.get_config()
        layer_config["name"] = layer_config["name"][len("forward_"):]
        config.update(layer={"class_name": "GRU", "config": layer_config},
                      merge_mode=self.merge_mode)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Bidirectional":
        config = dict(config)
        layer = GRU.from_config(config.pop("layer")["config"])
        return cls(layer, **config)


LAYER_CLASSES.update(Dropout=Dropout, Bidirectional=Bidirectional)
