"""Layers: ``GRU`` and ``Dense``, with Keras initialisers and the Keras weight layout.

Weight layout (what ``get_weights`` returns and ``set_weights`` takes, exactly as Keras 3):

    GRU    [kernel (I, 3H), recurrent_kernel (H, 3H), bias]   gates in the order z, r, h;
           bias (2, 3H) when reset_after=True (row 0 input bias, row 1 recurrent bias),
           (3H,) when reset_after=False
    Dense  [kernel (in, out), bias (out,)]

A layer is built lazily from the shape of its first input (only the feature axis matters).
Inside a ``Sequential`` model the weights become views into one flat parameter buffer (so the
optimizer updates every parameter in one pass); call
``set_weights`` rather than writing into the arrays, so a GRU knows to repack its kernels.

Training interface used by ``Sequential`` (not part of the public contract):
``forward_train(x)`` keeps what ``backward(dy)`` needs; ``backward`` writes the weight
gradients into the layer's gradient arrays and returns dL/dx.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._validation import bias_shape, check_positive_int
from .gru import PackedGRU

__all__ = ["Layer", "GRU", "Dense", "get_initializer", "glorot_uniform", "orthogonal"]


# --------------------------------------------------------------------------- initialisers
def glorot_uniform(shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Keras ``GlorotUniform``: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6.0 / max(1.0, fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(shape, rng: np.random.Generator, dtype=np.float32, gain: float = 1.0) -> np.ndarray:
    """Keras ``Orthogonal``: QR of a normal matrix, signs fixed by diag(R), transposed if wide.

    For a GRU recurrent kernel (H, 3H) the rows are orthonormal, as in Keras.
    """
    if len(shape) < 2:
        raise ValueError(f"orthogonal initializer needs a shape of rank >= 2; got {shape}")
    rows = int(np.prod(shape[:-1]))
    cols = int(shape[-1])
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)


def zeros(shape, rng=None, dtype=np.float32) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def ones(shape, rng=None, dtype=np.float32) -> np.ndarray:
    return np.ones(shape, dtype=dtype)


def _fans(shape):
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


_INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "orthogonal": orthogonal,
    "zeros": zeros,
    "ones": ones,
}

Initializer = Union[str, Callable]


def get_initializer(identifier: Initializer) -> Callable:
    """An initialiser by Keras name, or a callable ``f(shape, rng, dtype) -> array``."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _INITIALIZERS:
        return _INITIALIZERS[identifier.lower()]
    raise ValueError(
        f"unknown initializer {identifier!r}; expected one of {sorted(_INITIALIZERS)} "
        "or a callable f(shape, rng, dtype)"
    )


def _init_name(identifier) -> str:
    if isinstance(identifier, str):
        return identifier
    raise ValueError("a layer with a callable initializer cannot be serialised; use a name")


def _check_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dt}")
    return dt


# --------------------------------------------------------------------------- base layer
def check_weight_arrays(weights, expected_shapes, owner: str) -> List[np.ndarray]:
    """The weights as arrays, each checked against its Keras shape (before any is copied)."""
    arrays = []
    for i, (w, shape) in enumerate(zip(weights, expected_shapes)):
        w = np.asarray(w)
        if w.shape != shape:
            raise ValueError(f"{owner} weight {i} must have shape {shape}; got {w.shape}")
        if w.dtype.kind not in "fiu":
            raise TypeError(f"{owner} weight {i} must be numeric; got dtype {w.dtype}")
        arrays.append(w)
    return arrays


class Layer:
    """Base class: a name, a dtype, weights in Keras order, lazy build."""

    def __init__(self, name: Optional[str] = None, dtype="float32", seed: Optional[int] = None):
        self.name = name
        self.dtype = _check_dtype(dtype)
        self.seed = seed
        self.built = False
        self.input_size: Optional[int] = None
        self._weights: List[np.ndarray] = []
        self._grads: List[np.ndarray] = []
        self._version = 0  # bumped on every weight write; models key their caches on it

    # Attributes that hold native objects or per-batch caches: not copied by pickle/deepcopy
    # (they are rebuilt on first use).
    _transient: Tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in self._transient:
            state[name] = None
        return state

    # Attributes that became properties (kept in the private names); pickles made before keep
    # them under the public ones.
    _renamed_state = {"activation": "_activation", "return_sequences": "_return_sequences",
                      "reset_after": "_reset_after"}

    def __setstate__(self, state: dict) -> None:
        for old, new in self._renamed_state.items():
            if old in state and new not in state:
                state[new] = state.pop(old)
        self.__dict__.update(state)

    # -- weights -------------------------------------------------------------------------
    @property
    def weights(self) -> List[np.ndarray]:
        """The live weight arrays in Keras order (do not write into them; use set_weights)."""
        return list(self._weights)

    def weight_shapes(self, input_size: Optional[int] = None) -> List[tuple]:
        """The Keras shapes of the weights, for ``input_size`` input features (default: the
        built layer's); a file's arrays are checked against them before the layer is built."""
        raise NotImplementedError

    def get_weights(self) -> List[np.ndarray]:
        """Copies of the weights in Keras order and shapes."""
        return [w.copy() for w in self._weights]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load weights in Keras order and shapes (builds the layer if needed)."""
        weights = list(weights)
        if not self.built:
            if not weights or np.ndim(weights[0]) < 1:
                raise ValueError(f"layer {self.name!r}: cannot infer the input size from {weights!r}")
            self.build((None, np.shape(weights[0])[0]))
        expected = self.weight_shapes()
        if len(weights) != len(expected):
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) expects {len(expected)} weight "
                f"arrays with shapes {expected}; got {len(weights)}"
            )
        arrays = check_weight_arrays(weights, expected, f"layer {self.name!r} ({type(self).__name__})")
        for dst, src in zip(self._weights, arrays):
            np.copyto(dst, src, casting="unsafe")
        self._weights_changed()

    def count_params(self) -> int:
        if not self.built:
            raise RuntimeError(f"layer {self.name!r} is not built yet")
        return int(sum(w.size for w in self._weights))

    # Counts weight writes of every layer (optimizer steps included): a model whose C++ copy
    # was made at the current count needs no look at each layer's _version.
    _writes_anywhere = 0

    def _weights_changed(self) -> None:
        """Called whenever the weights were written (optimizer step, set_weights)."""
        self._config_changed()

    def _weights_stepped(self) -> None:
        """The optimizer rewrote the weights in place (views of the model's flat buffer)."""
        self._config_changed()

    def _config_changed(self) -> None:
        """Called when anything a model's C++ copy of this layer holds has changed (weights,
        an activation, return_sequences): the next predict or stream rebuilds it."""
        self._version += 1
        Layer._writes_anywhere += 1

    def _bind(self, weight_views: Sequence[np.ndarray], grad_views: Sequence[np.ndarray]) -> None:
        """Adopt views of a model's flat buffers: copy current values in, then use the views."""
        for dst, src in zip(weight_views, self._weights):
            np.copyto(dst, src)
        self._weights = list(weight_views)
        self._grads = list(grad_views)
        self._weights_changed()

    def _rng(self, rng: Optional[np.random.Generator]) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng(self.seed)
        return rng if rng is not None else np.random.default_rng()

    def build(self, input_shape, rng: Optional[np.random.Generator] = None) -> None:
        raise NotImplementedError

    def _finish_build(self, weights: List[np.ndarray]) -> None:
        self._weights = [np.ascontiguousarray(w, dtype=self.dtype) for w in weights]
        self._grads = [np.zeros_like(w) for w in self._weights]
        self.built = True
        self._weights_changed()

    def _check_input_size(self, x: np.ndarray) -> None:
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"layer {self.name!r} ({type(self).__name__}) was built for {self.input_size} "
                f"input features; got input of shape {x.shape} with {x.shape[-1]} features"
            )

    def __call__(self, x) -> np.ndarray:
        """Inference forward pass (builds the layer from ``x`` on first call)."""
        x = np.asarray(x)
        if not self.built:
            self.build(x.shape)
        return self.call(np.ascontiguousarray(x, dtype=self.dtype))

    def call(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.name, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------- GRU
class GRU(Layer):
    """Gated recurrent unit over ``(batch, timesteps, features)``, Keras semantics.

    Output ``(batch, units)`` (the last state), or ``(batch, timesteps, units)`` with
    ``return_sequences=True`` (to feed another GRU). Runs on the C++ kernels through
    ``fastgru.gru.PackedGRU``; the packed weights are cached, rebuilt when weights are set,
    and repacked in place after each optimizer step in ``fit``.
    """

    _transient = ("_packed", "_tape")

    def __init__(
        self,
        units: int,
        return_sequences: bool = False,
        reset_after: bool = True,
        kernel_initializer: Initializer = "glorot_uniform",
        recurrent_initializer: Initializer = "orthogonal",
        bias_initializer: Initializer = "zeros",
        seed: Optional[int] = None,
        dtype="float32",
        name: Optional[str] = None,
    ):
        super().__init__(name=name, dtype=dtype, seed=seed)
        self.units = check_positive_int("units", units)
        self._return_sequences = bool(return_sequences)  # not the setter: nothing to rebuild yet
        self._reset_after = bool(reset_after)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        for init in (kernel_initializer, recurrent_initializer, bias_initializer):
            get_initializer(init)  # fail early on a bad name
        self._packed: Optional[PackedGRU] = None
        self._tape = None

    @property
    def return_sequences(self) -> bool:
        return self._return_sequences

    @return_sequences.setter
    def return_sequences(self, value: bool) -> None:
        self._return_sequences = bool(value)
        self._config_changed()

    @property
    def reset_after(self) -> bool:
        return self._reset_after

    @reset_after.setter
    def reset_after(self, value: bool) -> None:
        if self.built and bool(value) != self._reset_after:
            raise ValueError(
                f"GRU layer {self.name!r}: reset_after cannot change once the layer is built "
                "(it changes the bias shape and what the weights mean); make a new layer"
            )
        self._reset_after = bool(value)

    @property
    def kernel(self) -> np.ndarray:
        return self._weights[0]

    @property
    def recurrent_kernel(self) -> np.ndarray:
        return self._weights[1]

    @property
    def bias(self) -> np.ndarray:
        return self._weights[2]

    def weight_shapes(self, input_size: Optional[int] = None) -> List[tuple]:
        h = self.units
        i = self.input_size if input_size is None else input_size
        return [(i, 3 * h), (h, 3 * h), bias_shape(h, self.reset_after)]

    def build(self, input_shape, rng: Optional[np.random.Generator] = None) -> None:
        if len(input_shape) != 3 and not (len(input_shape) == 2 and input_shape[0] is None):
            raise ValueError(
                f"GRU layer {self.name!r} expects 3-D input (samples, timesteps, features); "
                f"got input shape {tuple(input_shape)}"
            )
        self.input_size = int(input_shape[-1])
        if self.input_size <= 0:
            raise ValueError(f"GRU layer {self.name!r}: input features must be > 0")
        rng = self._rng(rng)
        k_shape, rk_shape, b_shape = self.weight_shapes()
        dt = self.dtype
        kernel = get_initializer(self.kernel_initializer)(k_shape, rng, dtype=dt)
        recurrent = get_initializer(self.recurrent_initializer)(rk_shape, rng, dtype=dt)
        bias = get_initializer(self.bias_initializer)(b_shape, rng, dtype=dt)
        self._finish_build([kernel, recurrent, bias])

    def compute_output_shape(self, input_shape) -> tuple:
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def _weights_changed(self) -> None:
        super()._weights_changed()
        self._packed = None

    def _weights_stepped(self) -> None:
        """The optimizer rewrote the weights in place: repack them into the cached buffers
        (cheaper than a new ``PackedGRU`` after every batch)."""
        self._config_changed()
        if self._packed is not None:
            self._packed.update_prepared(*self._weights)

    def packed(self) -> PackedGRU:
        """The weights packed for the kernels (cached until the weights change)."""
        if self._packed is None:
            self._packed = PackedGRU(
                self._weights[0], self._weights[1], self._weights[2], self.reset_after, self.dtype
            )
        return self._packed

    def _check_x(self, x: np.ndarray) -> None:
        if x.ndim != 3:
            raise ValueError(
                f"GRU layer {self.name!r} expects 3-D input (samples, timesteps, features); "
                f"got shape {x.shape}"
            )
        self._check_input_size(x)

    def call(self, x: np.ndarray) -> np.ndarray:
        self._check_x(x)
        out, h_last = self.packed().forward(x)
        return out if self.return_sequences else h_last

    def forward_train(self, x: np.ndarray) -> np.ndarray:
        out, h_last, self._tape = self.packed().forward_train(x)
        return out if self.return_sequences else h_last

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> Optional[np.ndarray]:
        tape, self._tape = self._tape, None
        if self.return_sequences:
            g = self._packed.backward(tape, d_out=dy, need_dx=need_dx)
        else:
            g = self._packed.backward(tape, d_h_last=dy, need_dx=need_dx)
        gk, grk, gb = self._grads
        np.copyto(gk, g.dkernel)
        np.copyto(grk, g.drecurrent_kernel)
        np.copyto(gb, g.dbias)
        return g.dx

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            return_sequences=self.return_sequences,
            reset_after=self.reset_after,
            kernel_initializer=_init_name(self.kernel_initializer),
            recurrent_initializer=_init_name(self.recurrent_initializer),
            bias_initializer=_init_name(self.bias_initializer),
        )
        return config


# --------------------------------------------------------------------------- Dense
def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function (no warnings for large |z|)."""
    e = np.exp(-np.abs(z))
    s = 1.0 / (1.0 + e)
    return np.where(z >= 0, s, e * s).astype(z.dtype, copy=False)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


_ACTIVATIONS = ("linear", "sigmoid", "softmax", "tanh", "relu")


def _activation_name(value: Optional[str]) -> str:
    act = "linear" if value is None else value
    if not isinstance(act, str) or act.lower() not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {value!r}; expected None or one of {_ACTIVATIONS}")
    return act.lower()


class Dense(Layer):
    """Fully connected layer ``activation(x @ kernel + bias)`` on the last axis (Keras)."""

    _transient = ("_x", "_y")

    def __init__(
        self,
        units: int,
        activation: Optional[str] = None,
        kernel_initializer: Initializer = "glorot_uniform",
        bias_initializer: Initializer = "zeros",
        seed: Optional[int] = None,
        dtype="float32",
        name: Optional[str] = None,
    ):
        super().__init__(name=name, dtype=dtype, seed=seed)
        self.units = check_positive_int("units", units)
        self._activation = _activation_name(activation)  # not the setter: nothing to rebuild yet
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        get_initializer(kernel_initializer)
        get_initializer(bias_initializer)
        self._x = None
        self._y = None
        self._logits = False

    @property
    def activation(self) -> str:
        return self._activation

    @activation.setter
    def activation(self, value: Optional[str]) -> None:
        self._activation = _activation_name(value)
        self._config_changed()

    @property
    def kernel(self) -> np.ndarray:
        return self._weights[0]

    @property
    def bias(self) -> np.ndarray:
        return self._weights[1]

    def weight_shapes(self, input_size: Optional[int] = None) -> List[tuple]:
        i = self.input_size if input_size is None else input_size
        return [(i, self.units), (self.units,)]

    def build(self, input_shape, rng: Optional[np.random.Generator] = None) -> None:
        if len(input_shape) < 2:
            raise ValueError(
                f"Dense layer {self.name!r} expects input of rank >= 2; got shape {tuple(input_shape)}"
            )
        self.input_size = int(input_shape[-1])
        rng = self._rng(rng)
        k_shape, b_shape = self.weight_shapes()
        kernel = get_initializer(self.kernel_initializer)(k_shape, rng, dtype=self.dtype)
        bias = get_initializer(self.bias_initializer)(b_shape, rng, dtype=self.dtype)
        self._finish_build([kernel, bias])

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape[:-1]) + (self.units,)

    def _activate(self, z: np.ndarray) -> np.ndarray:
        a = self.activation
        if a == "linear":
            return z
        if a == "sigmoid":
            return _sigmoid(z)
        if a == "softmax":
            return _softmax(z)
        if a == "tanh":
            return np.tanh(z, out=z)
        return np.maximum(z, 0, out=z)  # relu

    def call(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"Dense layer {self.name!r} expects input of rank >= 2; got shape {x.shape}")
        self._check_input_size(x)
        return self._activate(self._affine(x))

    def _affine(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 2:
            z = x @ self._weights[0]
        else:
            z = (x.reshape(-1, x.shape[-1]) @ self._weights[0]).reshape(x.shape[:-1] + (self.units,))
        z += self._weights[1]
        return z

    def forward_train(self, x: np.ndarray, logits: bool = False) -> np.ndarray:
        """Training forward; with ``logits=True`` return the pre-activation (fused losses)."""
        self._x = x
        self._logits = logits
        z = self._affine(x)
        y = z if logits else self._activate(z)
        self._y = y
        return y

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> Optional[np.ndarray]:
        x, y = self._x, self._y
        self._x = self._y = None
        a = "linear" if self._logits else self.activation
        if a == "sigmoid":
            dz = dy * y * (1.0 - y)
        elif a == "tanh":
            dz = dy * (1.0 - y * y)
        elif a == "relu":
            dz = dy * (y > 0)
        elif a == "softmax":
            dz = y * (dy - (dy * y).sum(axis=-1, keepdims=True))
        else:
            dz = dy
        if dz.dtype != self.dtype:
            dz = dz.astype(self.dtype)
        x2 = x.reshape(-1, x.shape[-1])
        dz2 = dz.reshape(-1, self.units)
        gk, gb = self._grads
        np.matmul(x2.T, dz2, out=gk)
        np.sum(dz2, axis=0, out=gb)
        if not need_dx:
            return None
        return (dz2 @ self._weights[0].T).reshape(x.shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=self.activation,
            kernel_initializer=_init_name(self.kernel_initializer),
            bias_initializer=_init_name(self.bias_initializer),
        )
        return config


LAYER_CLASSES = {"GRU": GRU, "Dense": Dense}
