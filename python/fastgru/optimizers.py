"""Optimizers with Keras 3's exact update rules, vectorised over one flat parameter buffer.

``Sequential`` keeps every parameter in one contiguous array (the layers' weights are views
into it) and every gradient in another, so a step is one pass however many layers there are
(Adam: one fused C++ pass, rounded as the NumPy expressions below; SGD: NumPy). The optimizers also work on any single array::

    opt = Adam(learning_rate=0.01)
    opt.build(params)              # state shaped like params
    opt.step(params, grads)        # in place

Keras 3 Adam (``keras/src/optimizers/adam.py``), with t = iterations + 1::

    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m += (g - m) * (1 - beta_1)
    v += (g*g - v) * (1 - beta_2)
    var -= (m * alpha) / (sqrt(v) + epsilon)          # v -> max(v_hat, v) with amsgrad

Keras 3 SGD::

    momentum == 0:  var -= g * lr
    else:           m = m * momentum - g * lr
                    var += m                        (nesterov: var += m * momentum - g * lr)

Keras 3 RMSprop::

    v = rho * v + (1 - rho) * g*g
    (centered: a = rho * a + (1 - rho) * g;  denominator = v - a*a + epsilon)
    increment = lr * g / sqrt(v + epsilon)
    momentum == 0:  var -= increment
    else:           m = momentum * m + increment;  var -= m

Keras 3 AdamW: Adam, after ``var -= var * weight_decay * lr`` (decoupled decay, applied
before the Adam step of the same iteration, to every weight).

``clipnorm`` clips each weight's gradient to that L2 norm separately (Keras ``clipnorm``);
``global_clipnorm`` clips all gradients together by their joint norm. Arithmetic runs in the
parameters' dtype, as Keras casts everything to the variable dtype. State values (moments,
velocities) below the smallest normal number are stored as zero, as TensorFlow's CPU kernels
flush subnormals: see ``_flush_subnormal``.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._validation import check_bool

__all__ = ["Optimizer", "Adam", "AdamW", "SGD", "RMSprop", "get"]


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _flush_subnormal(state: np.ndarray) -> None:
    """Store the values of ``state`` below the smallest normal number as zero, in place.

    A moment or velocity that decays under zero gradients (a saturated unit's weights) would
    otherwise stick at the smallest subnormal (``m * 0.9`` rounds back to it), and every later
    step would pay the CPU's subnormal penalty on it (an Adam step 21-29x slower; see
    benchmarks/RESULTS.md). TensorFlow's CPU kernels flush subnormals too; the fused C++ Adam
    step (``adam.cpp``) flushes the same values.
    """
    if state.flags.c_contiguous and state.flags.aligned and state.dtype in _FLOAT_DTYPES:
        _core.flush_subnormal(state)  # one pass; the NumPy form below takes about four
    else:
        np.copyto(state, 0, where=np.abs(state) < np.finfo(state.dtype).tiny)


def _check_positive(name, value, allow_zero=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}; got {value!r}")
    return v


class Optimizer:
    """Base class: learning rate, gradient clipping, the iteration counter, flat state."""

    def __init__(self, learning_rate: float, clipnorm: Optional[float] = None,
                 global_clipnorm: Optional[float] = None):
        self.learning_rate = _check_positive("learning_rate", learning_rate)
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError("set at most one of clipnorm and global_clipnorm")
        self.clipnorm = None if clipnorm is None else _check_positive("clipnorm", clipnorm)
        self.global_clipnorm = (
            None if global_clipnorm is None else _check_positive("global_clipnorm", global_clipnorm)
        )
        self.iterations = 0
        self._size = None
        self._segments: Sequence[Tuple[int, int]] = ()

    def build(self, params: np.ndarray, segments: Optional[Sequence[Tuple[int, int]]] = None) -> None:
        """Allocate state for ``params`` (a flat array, or any array); reset the step counter.

        ``segments`` lists ``(start, stop)`` of each weight inside the flat buffer, for
        per-weight ``clipnorm`` (default: the whole buffer is one weight).
        """
        self.iterations = 0
        self._size = params.size
        self._dtype = params.dtype
        self._segments = list(segments) if segments is not None else [(0, params.size)]
        self._scratch_arrays: List[np.ndarray] = []
        self._build_state(params)

    def _build_state(self, params):
        pass

    def _scratch(self, params: np.ndarray, count: int) -> List[np.ndarray]:
        """``count`` arrays shaped like ``params`` for the NumPy update, made on first use
        (the fused Adam step needs none) and never pickled."""
        while len(self._scratch_arrays) < count:
            self._scratch_arrays.append(np.empty_like(params))
        return self._scratch_arrays[:count]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_scratch_arrays"] = []
        return state

    def __setstate__(self, state: dict) -> None:
        for old in ("_tmp", "_tmp2"):  # pickles made before _scratch
            state.pop(old, None)
        state.setdefault("_scratch_arrays", [])
        self.__dict__.update(state)

    @property
    def built(self) -> bool:
        return self._size is not None

    def built_for(self, params: np.ndarray) -> bool:
        """True when the state was built for arrays of this size and dtype."""
        return self._size == params.size and self._dtype == params.dtype

    def _clip(self, grads: np.ndarray) -> np.ndarray:
        if self.clipnorm is not None:
            c = self.clipnorm
            flat = grads.reshape(-1)
            for start, stop in self._segments:
                seg = flat[start:stop]
                norm = math.sqrt(float(np.dot(seg, seg)))
                if norm > c:
                    seg *= c / norm
        elif self.global_clipnorm is not None:
            c = self.global_clipnorm
            flat = grads.reshape(-1)
            norm = math.sqrt(float(np.dot(flat, flat)))
            if norm > c:
                grads *= c / norm
        return grads

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Update ``params`` in place from ``grads`` (clipped in place when clipping is on)."""
        if self._size is None:
            self.build(params)
        elif not self.built_for(params):
            # Rebuilding here would silently drop the moments and the step count.
            raise ValueError(
                f"params has {params.size} values of dtype {params.dtype}, but this optimizer's "
                f"state was built for {self._size} values of dtype {self._dtype}; call "
                "build(params) to start over with new state"
            )
        if self.clipnorm is not None or self.global_clipnorm is not None:
            grads = self._clip(grads)
        self._update(params, grads)
        self.iterations += 1

    def _update(self, params, grads):
        raise NotImplementedError

    def get_config(self) -> dict:
        config = {"learning_rate": self.learning_rate}
        if self.clipnorm is not None:
            config["clipnorm"] = self.clipnorm
        if self.global_clipnorm is not None:
            config["global_clipnorm"] = self.global_clipnorm
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Optimizer":
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Adam(Optimizer):
    """Adam, Keras 3 update rule (see the module docstring)."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, clipnorm: Optional[float] = None,
                 global_clipnorm: Optional[float] = None):
        super().__init__(learning_rate, clipnorm, global_clipnorm)
        for name, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= float(b) < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {b!r}")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = _check_positive("epsilon", epsilon, allow_zero=True)
        self.amsgrad = check_bool("amsgrad", amsgrad)

    def _build_state(self, params):
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)
        self.v_hat = np.zeros_like(params) if self.amsgrad else None

    def _update(self, params, grads):
        dt = params.dtype.type
        one = dt(1)
        t = dt(self.iterations + 1)
        alpha = dt(self.learning_rate) * np.sqrt(one - dt(self.beta_2) ** t) / (
            one - dt(self.beta_1) ** t
        )
        m, v = self.m, self.v
        if (grads.dtype == params.dtype and grads.shape == params.shape
                and grads.flags.c_contiguous and params.flags.c_contiguous):
            # the same operations in one pass, fused in C++ (identical rounding; a NumPy call
            # each costs microseconds at these sizes, a few per training batch)
            _core.adam_step(params, grads, m, v,
                            self.v_hat if self.amsgrad else None, float(alpha),
                            float(dt(1 - self.beta_1)), float(dt(1 - self.beta_2)),
                            float(dt(self.epsilon)))
            return
        tmp, tmp2 = self._scratch(params, 2)
        np.subtract(grads, m, out=tmp)
        tmp *= dt(1 - self.beta_1)
        m += tmp
        np.multiply(grads, grads, out=tmp)
        tmp -= v
        tmp *= dt(1 - self.beta_2)
        v += tmp
        _flush_subnormal(m)
        _flush_subnormal(v)
        if self.amsgrad:
            np.maximum(self.v_hat, v, out=self.v_hat)
            v = self.v_hat
        np.sqrt(v, out=tmp)
        tmp += dt(self.epsilon)
        np.multiply(m, alpha, out=tmp2)
        tmp2 /= tmp
        params -= tmp2

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      amsgrad=self.amsgrad)
        return config


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, Keras 3 rule."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 clipnorm: Optional[float] = None, global_clipnorm: Optional[float] = None):
        super().__init__(learning_rate, clipnorm, global_clipnorm)
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1]; got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = check_bool("nesterov", nesterov)

    def _build_state(self, params):
        self.m = np.zeros_like(params) if self.momentum != 0 else None

    def _update(self, params, grads):
        dt = params.dtype.type
        scratch = self._scratch(params, 2 if self.m is not None and self.nesterov else 1)
        tmp = scratch[0]
        np.multiply(grads, dt(self.learning_rate), out=tmp)  # g * lr
        if self.m is None:
            params -= tmp
            return
        m = self.m
        m *= dt(self.momentum)
        m -= tmp
        _flush_subnormal(m)
        if self.nesterov:
            buf = scratch[1]
            np.multiply(m, dt(self.momentum), out=buf)
            buf -= tmp
            params += buf
        else:
            params += m

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(momentum=self.momentum, nesterov=self.nesterov)
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay, Keras 3 rule (see the module docstring)."""

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, clipnorm: Optional[float] = None,
                 global_clipnorm: Optional[float] = None):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, clipnorm,
                         global_clipnorm)
        self.weight_decay = _check_positive("weight_decay", weight_decay, allow_zero=True)

    def _update(self, params, grads):
        dt = params.dtype.type
        (decay,) = self._scratch(params, 1)
        np.multiply(params, dt(self.weight_decay), out=decay)  # var * wd * lr, Keras' order
        decay *= dt(self.learning_rate)
        params -= decay
        super()._update(params, grads)

    def get_config(self) -> dict:
        config = super().get_config()
        config["weight_decay"] = self.weight_decay
        return config


class RMSprop(Optimizer):
    """RMSprop with optional momentum and centering, Keras 3 rule (see the module docstring)."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, clipnorm: Optional[float] = None,
                 global_clipnorm: Optional[float] = None):
        super().__init__(learning_rate, clipnorm, global_clipnorm)
        if not 0.0 <= float(rho) < 1.0:
            raise ValueError(f"rho must be in [0, 1); got {rho!r}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1]; got {momentum!r}")
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = _check_positive("epsilon", epsilon, allow_zero=True)
        self.centered = check_bool("centered", centered)

    def _build_state(self, params):
        self.velocity = np.zeros_like(params)
        self.m = np.zeros_like(params) if self.momentum > 0 else None
        self.average_grad = np.zeros_like(params) if self.centered else None

    def _update(self, params, grads):
        dt = params.dtype.type
        rho, one_minus_rho = dt(self.rho), dt(1 - self.rho)
        tmp, denominator = self._scratch(params, 2)
        v = self.velocity
        v *= rho
        np.multiply(grads, grads, out=tmp)
        tmp *= one_minus_rho
        v += tmp
        _flush_subnormal(v)
        if self.centered:
            a = self.average_grad
            a *= rho
            np.multiply(grads, one_minus_rho, out=tmp)
            a += tmp
            _flush_subnormal(a)
            np.multiply(a, a, out=tmp)
            np.subtract(v, tmp, out=denominator)
            denominator += dt(self.epsilon)
        else:
            np.add(v, dt(self.epsilon), out=denominator)
        np.sqrt(denominator, out=denominator)
        np.multiply(grads, dt(self.learning_rate), out=tmp)  # lr * g / sqrt(denominator)
        tmp /= denominator
        if self.m is None:
            params -= tmp
            return
        self.m *= dt(self.momentum)
        self.m += tmp
        _flush_subnormal(self.m)
        params -= self.m

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                      centered=self.centered)
        return config


_OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD, "rmsprop": RMSprop}


def get(identifier: Union[str, Optimizer]) -> Optimizer:
    """An optimizer by name (``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"``, Keras
    defaults) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    raise ValueError(
        f"unknown optimizer {identifier!r}; expected one of {sorted(_OPTIMIZERS)} or an Optimizer"
    )


def serialize(opt: Optimizer) -> dict:
    for name, cls in _OPTIMIZERS.items():
        if type(opt) is cls:
            return {"name": name, "config": opt.get_config()}
    raise ValueError(f"cannot serialise custom optimizer {opt!r}")


def deserialize(config: dict) -> Optimizer:
    return _OPTIMIZERS[config["name"]].from_config(config.get("config", {}))
