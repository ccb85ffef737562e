"""Layers: ``GRU`` and ``Dense``, with Keras initialisers and the Keras weight layout.

Weight layout (what ``get_weights`` returns and ``set_weights`` takes, exactly as Keras 3):

    GRU    [kernel (I, 3H), recurrent_kernel (H, 3H), bias]   gates in the order z, r, h;
           bias (2, 3H) when reset_after=True (row 0 input bias, row 1 recurrent bias),
           (3H,) when reset_after=False
    Dense  [kernel (in, out), bias (out,)]

A layer is built lazily from the shape of its first input (only the feature axis matters).
Inside a ``Sequential`` model the weights become views into one flat parameter buffer (so the
optimizer updates every parameter in one pass). ``weights``, ``kernel``, ``bias`` ... are
read-only views: write with ``set_weights``, so the model publishes a new inference snapshot.

The contract with the model (see also ``fastgru.specs`` and ``fastgru.inference``):

* ``bind(model, weight_views, grad_views)``: the model takes the layer's weights into its flat
  buffers. A layer belongs to one model at a time (sharing is refused: one model's optimizer
  could not train a weight held in another's buffer).
* ``weights_written(stepped)``: the owner wrote new values into the weight arrays (under its
  lock); the layer refreshes what it derives from them (a GRU's packed kernels).
* ``inference_spec(weights)``: the layer as C++ runs it (a ``GRUSpec``/``DenseSpec``/
  ``IdentitySpec`` of the given weights), or None when only its ``call`` computes it.
* ``set_weights`` and config setters on a bound layer go through ``model.updating()``, which
  holds the model's lock and publishes one new snapshot.

Training interface used by ``Sequential`` (not part of the public contract):
``forward_train(x)`` keeps what ``backward(dy)`` needs; ``backward`` writes the weight
gradients into the layer's gradient arrays and returns dL/dx.
"""
from __future__ import annotations

import math
import threading
import weakref
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._validation import bias_shape, check_bool, check_positive_int, check_seed, kernel_array
from .gru import MaskedGRUTape, PackedGRU, gru_backward_masked, gru_forward_train_masked
from .specs import DenseSpec, GRUSpec, LayerSpec

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
def check_weight_arrays(weights, expected_shapes, owner: str, dtype) -> List[np.ndarray]:
    """The weights as arrays of ``dtype``, each checked against its Keras shape and for finite
    values after the cast (1e300 would become inf in float32), before any is copied."""
    arrays = []
    for i, (w, shape) in enumerate(zip(weights, expected_shapes)):
        w = np.asarray(w)
        if w.shape != shape:
            raise ValueError(f"{owner} weight {i} must have shape {shape}; got {w.shape}")
        if w.dtype.kind not in "fiu":
            raise TypeError(f"{owner} weight {i} must be numeric; got dtype {w.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):
            w = w.astype(dtype)
        if not np.isfinite(w).all():
            raise ValueError(f"{owner} weight {i} contains NaN or inf values (or values beyond "
                             f"the {np.dtype(dtype).name} range)")
        arrays.append(w)
    return arrays


def check_input_shape(shape, name: str, fixed_features: bool = True) -> Tuple[Optional[int], ...]:
    """Keras' ``shape``/``input_shape`` (no samples axis): positive ints, None for any length;
    the last axis (the features) fixed unless ``fixed_features=False`` (a ``noise_shape``)."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple such as (timesteps, features); got {shape!r}") from None
    if not dims:
        raise ValueError(f"{name} must have at least one axis (the features); got {shape!r}")
    out = []
    for d in dims:
        if d is None:
            out.append(None)
            continue
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d <= 0:
            raise ValueError(f"{name} must hold positive ints or None; got {shape!r}")
        out.append(int(d))
    if fixed_features and out[-1] is None:
        raise ValueError(f"{name} must fix the feature count (its last axis); got {shape!r}")
    return tuple(out)


def dropout_mask(rng: np.random.Generator, shape, rate: float, dtype) -> np.ndarray:
    """Keras' inverted dropout mask: 0 with probability ``rate``, else 1 / (1 - rate)."""
    dt = np.dtype(dtype)
    keep = rng.random(shape) >= rate
    return keep.astype(dt) * dt.type(1.0 / (1.0 - rate))


def check_rate(name: str, rate) -> float:
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number in [0, 1); got {rate!r}") from None
    if not 0.0 <= r < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {rate!r}")
    return r


def read_only(a: np.ndarray) -> np.ndarray:
    """A view of ``a`` that raises on writes."""
    view = a.view()
    view.flags.writeable = False
    return view


def _overrides(layer, base: type, methods: Sequence[str]) -> bool:
    """True when ``layer``'s class replaces one of ``base``'s ``methods`` (so C++, which
    computes ``base``'s maths, would not compute that layer)."""
    cls = type(layer)
    return any(getattr(cls, m) is not getattr(base, m) for m in methods)


class Layer:
    """Base class: a name, a dtype, weights in Keras order, lazy build."""

    #: takes (samples, timesteps, features): a model starting with it needs 3-D input
    sequence_input = False

    def __init__(self, name: Optional[str] = None, dtype="float32", seed: Optional[int] = None,
                 input_shape: Optional[Sequence[Optional[int]]] = None):
        self.name = name
        self.dtype = _check_dtype(dtype)
        self.seed = check_seed("seed", seed)
        # Keras' input_shape= (without the samples axis): the model builds from it
        self.declared_input_shape = None if input_shape is None else check_input_shape(input_shape, "input_shape")
        self.built = False
        self.input_size: Optional[int] = None
        self._weights: List[np.ndarray] = []
        self._grads: List[np.ndarray] = []
        self._owner_ref = None  # weakref to the model whose flat buffers hold the weights

    # Attributes that hold native objects or per-batch caches: not copied by pickle/deepcopy
    # (they are rebuilt on first use).
    _transient: Tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in self._transient:
            state[name] = None
        state["_owner_ref"] = None  # a copy belongs to no model until one binds it
        return state

    # Attributes that became properties (kept in the private names); pickles made before keep
    # them under the public ones.
    _renamed_state = {"activation": "_activation", "return_sequences": "_return_sequences",
                      "reset_after": "_reset_after"}

    def __setstate__(self, state: dict) -> None:
        state.setdefault("declared_input_shape", None)  # pickles made before input_shape=
        for old, new in self._renamed_state.items():
            if old in state and new not in state:
                state[new] = state.pop(old)
        self.__dict__.update(state)

    # -- weights -------------------------------------------------------------------------
    @property
    def weights(self) -> List[np.ndarray]:
        """The live weights in Keras order, as read-only views (write with set_weights)."""
        return [read_only(w) for w in self._weights]

    @property
    def owner(self):
        """The model this layer's weights belong to (``bind``), or None."""
        return self._owner_ref() if self._owner_ref is not None else None

    def inference_spec(self, weights: Sequence[np.ndarray]) -> Optional[LayerSpec]:
        """This layer as the C++ inference copy runs it, with ``weights`` (Keras order;
        read-only copies owned by a snapshot): a ``fastgru.specs`` spec, or None when C++
        cannot run it (the model then runs every layer's ``call``). Layers without a C++
        form keep the default."""
        return None

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
        arrays = check_weight_arrays(weights, expected, f"layer {self.name!r} ({type(self).__name__})",
                                     self.dtype)
        owner = self.owner
        if owner is None:
            self._write_weights(arrays)
        else:
            with owner.updating():  # serialised with fit; publishes one new snapshot
                self._write_weights(arrays)

    def _write_weights(self, arrays: Sequence[np.ndarray]) -> None:
        for dst, src in zip(self._weights, arrays):
            np.copyto(dst, src)
        self.weights_written()

    def count_params(self) -> int:
        if not self.built:
            raise RuntimeError(f"layer {self.name!r} is not built yet")
        return int(sum(w.size for w in self._weights))

    def weights_written(self, stepped: bool = False) -> None:
        """New values were written into the weight arrays (by ``set_weights``, or by the owning
        model under its lock: ``stepped`` for an optimizer step). Layers that derive something
        from the weights refresh it here."""

    def _config_changed(self) -> None:
        """Something the inference copy holds other than the weights changed (an activation,
        return_sequences): the owning model publishes a new snapshot."""
        owner = self.owner
        if owner is not None:
            with owner.updating():
                pass

    def bind(self, model, weight_views: Sequence[np.ndarray], grad_views: Sequence[np.ndarray]) -> None:
        """Adopt views of ``model``'s flat buffers: copy the current values in, then use the
        views. Raises ValueError when another model already holds this layer."""
        self.check_unowned_or(model)
        for dst, src in zip(weight_views, self._weights):
            np.copyto(dst, src)
        self._weights = list(weight_views)
        self._grads = list(grad_views)
        self._owner_ref = weakref.ref(model)
        self.weights_written()

    def check_unowned_or(self, model) -> None:
        """ValueError unless this layer belongs to no model or to ``model``."""
        owner = self.owner
        if owner is not None and owner is not model:
            raise ValueError(
                f"layer {self.name!r} already belongs to model {owner.name!r}; a layer cannot be "
                "shared between models (its weights live in that model's buffer, which only that "
                "model trains). Make a new layer: type(layer).from_config(layer.get_config()) "
                "and set_weights(layer.get_weights())"
            )

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
        self.weights_written()

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
        return self.call(kernel_array(x, self.dtype))

    def call(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        config = {"name": self.name, "dtype": self.dtype.name, "seed": self.seed}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Layer":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------- GRU
_PACK_LOCK = threading.Lock()


class GRU(Layer):
    """Gated recurrent unit over ``(batch, timesteps, features)``, Keras semantics.

    Output ``(batch, units)`` (the last state), or ``(batch, timesteps, units)`` with
    ``return_sequences=True`` (to feed another GRU). Runs on the C++ kernels through
    ``fastgru.gru.PackedGRU``; the packed weights are cached, rebuilt when weights are set,
    and repacked in place after each optimizer step in ``fit``.
    """

    _transient = ("_packed", "_tape", "_input_mask")
    sequence_input = True

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
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_state: bool = False,
        stateful: bool = False,
        input_shape: Optional[Sequence[Optional[int]]] = None,
    ):
        super().__init__(name=name, dtype=dtype, seed=seed, input_shape=input_shape)
        self.units = check_positive_int("units", units)
        if stateful:
            raise ValueError(
                "GRU(stateful=True) is not supported: fastgru keeps the state between calls in a "
                "stream instead; use model.stream() (st.step(x_t), st.state, st.reset())"
            )
        self.dropout = check_rate("dropout", dropout)
        self.recurrent_dropout = check_rate("recurrent_dropout", recurrent_dropout)
        self.return_state = check_bool("return_state", return_state)
        # not the setters: nothing to rebuild yet
        self._return_sequences = check_bool("return_sequences", return_sequences)
        self._reset_after = check_bool("reset_after", reset_after)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        for init in (kernel_initializer, recurrent_initializer, bias_initializer):
            get_initializer(init)  # fail early on a bad name
        self._packed: Optional[PackedGRU] = None
        self._tape = None

    def __setstate__(self, state: dict) -> None:
        for key, default in (("dropout", 0.0), ("recurrent_dropout", 0.0), ("return_state", False),
                             ("_noise", None), ("_input_mask", None)):
            state.setdefault(key, default)  # pickles made before these options
        super().__setstate__(state)

    @property
    def return_sequences(self) -> bool:
        return self._return_sequences

    @return_sequences.setter
    def return_sequences(self, value: bool) -> None:
        self._return_sequences = check_bool("return_sequences", value)
        self._config_changed()

    @property
    def reset_after(self) -> bool:
        return self._reset_after

    @reset_after.setter
    def reset_after(self, value: bool) -> None:
        value = check_bool("reset_after", value)
        if self.built and value != self._reset_after:
            raise ValueError(
                f"GRU layer {self.name!r}: reset_after cannot change once the layer is built "
                "(it changes the bias shape and what the weights mean); make a new layer"
            )
        self._reset_after = value

    @property
    def kernel(self) -> np.ndarray:
        return read_only(self._weights[0])

    @property
    def recurrent_kernel(self) -> np.ndarray:
        return read_only(self._weights[1])

    @property
    def bias(self) -> np.ndarray:
        return read_only(self._weights[2])

    def inference_spec(self, weights: Sequence[np.ndarray]) -> Optional[GRUSpec]:
        if _overrides(self, GRU, ("call",)):
            return None
        kernel, recurrent_kernel, bias = weights
        return GRUSpec(kernel, recurrent_kernel, bias, reset_after=self.reset_after,
                       return_sequences=self.return_sequences)

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
        if self.dropout > 0 or self.recurrent_dropout > 0:  # only then: others initialise as before
            self._noise = np.random.default_rng(rng.integers(2**63))
        self._finish_build([kernel, recurrent, bias])

    def compute_output_shape(self, input_shape) -> tuple:
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def weights_written(self, stepped: bool = False) -> None:
        """After an optimizer step (under the model's lock) repack into the cached buffers,
        cheaper than a new ``PackedGRU`` after every batch; after set_weights drop the cache,
        so a thread still running the old ``PackedGRU`` finishes on the old weights."""
        packed = self._packed
        if stepped and packed is not None:
            packed.update_prepared(*self._weights)
        else:
            self._packed = None

    def packed(self) -> PackedGRU:
        """The weights packed for the kernels (cached until the weights change)."""
        packed = self._packed
        if packed is None:
            with _PACK_LOCK:  # one PackedGRU even when threads ask at once
                packed = self._packed
                if packed is None:
                    packed = self._packed = PackedGRU(
                        self._weights[0], self._weights[1], self._weights[2], self.reset_after,
                        self.dtype
                    )
        return packed

    def _check_x(self, x: np.ndarray) -> None:
        if x.ndim != 3:
            raise ValueError(
                f"GRU layer {self.name!r} expects 3-D input (samples, timesteps, features); "
                f"got shape {x.shape}"
            )
        self._check_input_size(x)

    def __call__(self, x):
        """Inference forward pass; with ``return_state=True`` a list ``[output, last_state]``
        as Keras returns (a model's layers pass one output: call such a GRU directly)."""
        out = super().__call__(x)
        if not self.return_state:
            return out
        if self.return_sequences:
            return [out, np.ascontiguousarray(out[:, -1, :])]
        return [out, out.copy()]

    def call(self, x: np.ndarray) -> np.ndarray:
        self._check_x(x)
        out, h_last = self.packed().forward(x)
        return out if self.return_sequences else h_last

    def forward_train(self, x: np.ndarray) -> np.ndarray:
        """Training forward. With ``dropout``, one input mask per sequence (samples x features),
        the same at every step, as Keras 3 draws it (inference never drops). With
        ``recurrent_dropout`` Keras 3 switches to its implementation=1: three input masks and
        three recurrent masks, one per gate z, r, h (``fastgru.gru.gru_forward_train_masked``)."""
        self._input_mask = None
        if (self.dropout > 0 or self.recurrent_dropout > 0) and getattr(self, "_noise", None) is None:
            self._noise = np.random.default_rng(self.seed)
        if self.recurrent_dropout > 0:
            return self._forward_train_gate_masks(x)
        if self.dropout > 0:
            mask = dropout_mask(self._noise, (x.shape[0], x.shape[2]), self.dropout, self.dtype)
            self._input_mask = mask
            x = x * mask[:, None, :]
        out, h_last, self._tape = self.packed().forward_train(x, outputs=self.return_sequences)
        return out if self.return_sequences else h_last

    def _forward_train_gate_masks(self, x: np.ndarray) -> np.ndarray:
        self._check_x(x)
        batch, units = x.shape[0], self.units
        if self.dropout > 0:
            input_masks = dropout_mask(self._noise, (3, batch, x.shape[2]), self.dropout, self.dtype)
        else:
            input_masks = None
        recurrent_masks = dropout_mask(self._noise, (3, batch, units), self.recurrent_dropout,
                                       self.dtype)
        kernel, recurrent, bias = self._weights
        out, h_last, self._tape = gru_forward_train_masked(
            x, kernel, recurrent, bias, input_masks, recurrent_masks, reset_after=self.reset_after
        )
        return out if self.return_sequences else h_last

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> Optional[np.ndarray]:
        tape, self._tape = self._tape, None
        if tape is None:
            raise RuntimeError(f"GRU layer {self.name!r}: backward without forward_train")
        d_out, d_h_last = (dy, None) if self.return_sequences else (None, dy)
        if isinstance(tape, MaskedGRUTape):  # recurrent_dropout: dx already carries the masks
            g = gru_backward_masked(tape, d_out, d_h_last, need_dx=need_dx)
            for grad, value in zip(self._grads, g[2:]):
                np.copyto(grad, value)
            return g.dx
        # The tape's own PackedGRU: the layer's cache may have been replaced since.
        if self.return_sequences:
            g = tape.packed.backward(tape, d_out=dy, need_dx=need_dx)
        else:
            g = tape.packed.backward(tape, d_h_last=dy, need_dx=need_dx)
        gk, grk, gb = self._grads
        np.copyto(gk, g.dkernel)
        np.copyto(grk, g.drecurrent_kernel)
        np.copyto(gb, g.dbias)
        mask, self._input_mask = self._input_mask, None
        dx = g.dx
        if mask is not None and dx is not None:
            dx *= mask[:, None, :]  # x * mask entered the GRU
        return dx

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            units=self.units,
            return_sequences=self.return_sequences,
            reset_after=self.reset_after,
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            return_state=self.return_state,
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


def _tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z, out=z)


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0, out=z)


# Dense's activations, by Keras name: the NumPy forms (training and the Python path; each may
# work in place on z). The C++ inference copy has the same set (cpp/inference.cpp,
# _core.activation_names()); tests/test_layers.py checks that the names and values agree.
ACTIVATION_FUNCTIONS: dict = {"linear": lambda z: z, "sigmoid": _sigmoid, "softmax": _softmax,
                              "tanh": _tanh, "relu": _relu}
ACTIVATIONS = tuple(ACTIVATION_FUNCTIONS)


def _activation_name(value: Optional[str]) -> str:
    act = "linear" if value is None else value
    if not isinstance(act, str) or act.lower() not in ACTIVATION_FUNCTIONS:
        raise ValueError(f"unknown activation {value!r}; expected None or one of {ACTIVATIONS}")
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
        input_shape: Optional[Sequence[Optional[int]]] = None,
    ):
        super().__init__(name=name, dtype=dtype, seed=seed, input_shape=input_shape)
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
        return read_only(self._weights[0])

    @property
    def bias(self) -> np.ndarray:
        return read_only(self._weights[1])

    def inference_spec(self, weights: Sequence[np.ndarray]) -> Optional[DenseSpec]:
        if _overrides(self, Dense, ("call", "affine", "apply_activation")):
            return None
        kernel, bias = weights
        return DenseSpec(kernel, bias, activation=self.activation)

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

    def apply_activation(self, z: np.ndarray) -> np.ndarray:
        """The activation applied to pre-activations ``z`` (may work in place on ``z``)."""
        return ACTIVATION_FUNCTIONS[self.activation](z)

    def call(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"Dense layer {self.name!r} expects input of rank >= 2; got shape {x.shape}")
        self._check_input_size(x)
        return self.apply_activation(self.affine(x))

    def affine(self, x: np.ndarray) -> np.ndarray:
        """The pre-activation ``x @ kernel + bias`` (the logits a fused loss takes)."""
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
        z = self.affine(x)
        y = z if logits else self.apply_activation(z)
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
