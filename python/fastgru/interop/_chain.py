"""The model every whole-model converter goes through: a chain of GRU and Dense specs.

``from_torch`` / ``from_keras`` / ``from_onnx`` read a framework's model into a chain and
``build_sequential`` turns it into a ``fastgru.Sequential``; ``to_torch`` / ``to_keras`` /
``to_onnx`` read a fastgru model with ``chain_of``. The rules the converters share live here:
which activations exist, how a bare activation becomes a layer, when a GRU returns sequences.

Weights are in fastgru/Keras layout (see ``_layout``); a Dense is ``activation(x @ kernel + bias)``
on the last axis, so one after a sequence-returning GRU acts on every time step.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import List, Optional, Sequence, Union

import numpy as np

from .._validation import check_bool
from ..layers import ACTIVATIONS
from ..specs import DenseSpec, GRUSpec, IdentitySpec
from ._layout import check_keras_weights



Spec = Union[GRUSpec, DenseSpec]


def dense_spec(kernel, bias=None, activation: str = "linear") -> DenseSpec:
    """A checked ``DenseSpec``; a missing bias is zeros."""
    kernel = np.asarray(kernel)
    if kernel.ndim != 2:
        raise ValueError(f"a Dense kernel must be 2-D (inputs, units); got shape {kernel.shape}")
    bias = np.zeros(kernel.shape[1], kernel.dtype) if bias is None else np.asarray(bias)
    if bias.shape != (kernel.shape[1],):
        raise ValueError(f"a Dense bias must have shape ({kernel.shape[1]},); got {bias.shape}")
    return DenseSpec(kernel, bias, check_activation(activation))


def check_activation(activation: str) -> str:
    """``activation`` if a fastgru Dense layer has it, else NotImplementedError naming it."""
    if activation not in ACTIVATIONS:
        raise NotImplementedError(
            f"activation {activation!r} is not supported; fastgru Dense layers have {ACTIVATIONS}"
        )
    return activation


def require_stock_computation(obj, methods: Sequence[str], what: str, package: str = "",
                              base: Optional[type] = None) -> None:
    """Refuse ``obj`` when its class overrides how its framework class computes (``forward``,
    ``call``, ...): its weights converted would give a model that computes something else.

    ``base`` is that framework class; by default the first class in ``obj``'s MRO that comes
    from the ``package`` (``"torch"``, ``"keras"``), so a subclass that only adds methods or
    attributes still converts.
    """
    cls = type(obj)
    if base is None:
        base = next((c for c in cls.__mro__ if c.__module__.split(".")[0] == package), object)
    changed = [m for m in methods if getattr(cls, m, None) is not getattr(base, m, None)]
    if changed:
        raise NotImplementedError(
            f"{what} is a {cls.__module__}.{cls.__qualname__}, a subclass of "
            f"{base.__module__}.{base.__qualname__} that overrides {', '.join(changed)}: fastgru "
            f"would compute what {base.__qualname__} computes, not what this class does"
        )


def last_features(chain: Sequence[Spec]) -> int:
    if not chain:
        raise ValueError("the model has no GRU or Dense layer before this point")
    return chain[-1].units


def with_activation(chain: Sequence[Spec], activation: str) -> List[Spec]:
    """The chain followed by ``activation``: it becomes the activation of a final linear Dense,
    or else (after a GRU, or after another activation) an identity Dense carrying it, which
    computes exactly ``activation(x)``."""
    check_activation(activation)
    chain = list(chain)
    if activation == "linear":
        return chain
    last = chain[-1] if chain else None
    if isinstance(last, DenseSpec) and last.activation == "linear":
        chain[-1] = copy.copy(last)
        chain[-1].activation = activation
    else:
        n = last_features(chain)
        dtype = chain[-1].kernel.dtype
        chain.append(DenseSpec(np.eye(n, dtype=dtype), np.zeros(n, dtype), activation))
    return chain


def with_affine(chain: Sequence[Spec], scale=None, shift=None) -> List[Spec]:
    """The chain followed by ``x * scale + shift`` on the last axis (scalars or per-feature
    vectors): folded into a final linear Dense, else added as a diagonal Dense."""
    chain = list(chain)
    n = last_features(chain)
    last = chain[-1]
    dtype = last.kernel.dtype
    scale = np.ones(n, dtype) if scale is None else np.broadcast_to(np.asarray(scale, dtype), (n,))
    shift = np.zeros(n, dtype) if shift is None else np.broadcast_to(np.asarray(shift, dtype), (n,))
    if isinstance(last, DenseSpec) and last.activation == "linear":
        chain[-1] = DenseSpec(last.kernel * scale, last.bias * scale + shift)
    else:
        chain.append(DenseSpec(np.diag(scale).astype(dtype), shift.copy()))
    return chain


def set_sequence_flags(chain: Sequence[Spec], last_return_sequences: bool) -> None:
    """Every GRU that has another GRU after it returns sequences (the next one needs them); the
    last GRU returns them when ``last_return_sequences``, else only its last state."""
    last = check_bool("return_sequences", last_return_sequences)
    gru_ids = [i for i, s in enumerate(chain) if isinstance(s, GRUSpec)]
    for i in gru_ids:
        chain[i].return_sequences = True if i != gru_ids[-1] else last


def check_chain(chain: Sequence[Spec], what: str) -> None:
    """At least one GRU, and every layer takes as many features as the one before gives."""
    if not any(isinstance(s, GRUSpec) for s in chain):
        raise ValueError(f"{what}: the model has no GRU layer; fastgru models are built around one")
    seen_last_state = False
    for k, spec in enumerate(chain):
        if isinstance(spec, GRUSpec):
            check_keras_weights(*spec.weights, reset_after=spec.reset_after)
            if seen_last_state:
                raise ValueError(
                    f"{what}: layer {k} is a GRU after a GRU that returns only its last state"
                )
            seen_last_state = not spec.return_sequences
        if k and spec.input_size != chain[k - 1].units:
            raise ValueError(
                f"{what}: layer {k} ({type(spec).__name__[:-4]}) takes {spec.input_size} inputs "
                f"but layer {k - 1} gives {chain[k - 1].units}"
            )


def build_sequential(chain: Sequence[Spec], dtype=np.float32, what: str = "conversion"):
    """A built ``fastgru.Sequential`` computing the chain."""
    from ..layers import GRU, Dense
    from ..model import Sequential

    check_chain(chain, what)
    layers = [
        GRU(s.units, return_sequences=s.return_sequences, reset_after=s.reset_after, dtype=dtype)
        if isinstance(s, GRUSpec) else Dense(s.units, activation=s.activation, dtype=dtype)
        for s in chain
    ]
    model = Sequential(layers)
    model.build((None, None, chain[0].input_size))  # a GRU model reads (batch, time, features)
    model.set_weights([w for s in chain for w in s.weights])
    return model


def with_dtype(chain: Sequence[Spec], dtype) -> List[Spec]:
    """Copies of the chain's specs with every weight array in ``dtype`` (the same arrays where
    they already are)."""
    out = []
    for spec in chain:
        spec = copy.copy(spec)
        for field in dataclasses.fields(spec):
            value = getattr(spec, field.name)
            if isinstance(value, np.ndarray):
                setattr(spec, field.name, value.astype(dtype, copy=False))
        out.append(spec)
    return out


def weights_dtype(spec: Spec):
    """The dtype a converted layer computes in: float64 for float64 weights, else float32."""
    return np.float64 if spec.kernel.dtype == np.float64 else np.float32


def gru_layer(spec: GRUSpec):
    """A built fastgru ``GRU`` layer holding the spec's weights, in their dtype."""
    from ..layers import GRU

    layer = GRU(spec.units, return_sequences=spec.return_sequences, reset_after=spec.reset_after,
                dtype=weights_dtype(spec))
    layer.build((None, None, spec.input_size))
    layer.set_weights(spec.weights)
    return layer


def chain_of(model_or_layers, what: str) -> List[Spec]:
    """The chain of a fastgru ``Sequential``, GRU layer or list of fastgru layers (copies)."""
    from ..layers import GRU, Dense
    from ..model import Sequential

    if isinstance(model_or_layers, Sequential):
        layers = model_or_layers.layers
    elif isinstance(model_or_layers, (list, tuple)):
        layers = list(model_or_layers)
    else:
        layers = [model_or_layers]
    from ..layers import Layer

    chain: List[Spec] = []
    for layer in layers:
        if not isinstance(layer, Layer):  # a path or anything else: not "no weights yet"
            raise TypeError(f"{what}: expected a fastgru Sequential, a fastgru layer or a list "
                            f"of them; got {type(layer).__name__}")
        if not getattr(layer, "built", False):
            raise RuntimeError(
                f"{what}: layer {getattr(layer, 'name', layer)!r} has no weights yet; fit the "
                "model, predict once or set_weights first"
            )
        if isinstance(layer, GRU):
            chain.append(GRUSpec(*layer.get_weights(), reset_after=layer.reset_after,
                                 return_sequences=layer.return_sequences))
        elif isinstance(layer, Dense):
            chain.append(DenseSpec(*layer.get_weights(), activation=layer.activation))
        elif isinstance(layer.inference_spec([]), IdentitySpec):
            continue  # Dropout: the identity at inference, which is all a converted model runs
        else:
            raise TypeError(
                f"{what}: expected a fastgru Sequential, GRU or Dense layers; got "
                f"{type(layer).__name__}"
            )
    check_chain(chain, what)
    return chain
