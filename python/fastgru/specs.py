"""Layer specs: how a layer describes itself to the C++ inference copy (and to the converters).

The contract between layers and ``fastgru.inference``:

* ``Layer.inference_spec(weights)`` returns one of the specs below for the given weights (the
  layer's weights in Keras order, as read-only copies), or ``None`` when C++ cannot run the
  layer (a user-defined layer, a subclass that overrides ``call``). ``IdentitySpec`` says the
  layer is the identity at inference (``Dropout``): C++ skips it.
* A model whose every layer has a spec, the first non-identity one a ``GRUSpec``, runs predict
  and streams in C++ (``bindings.cpp`` reads the fields below by name); any other model runs
  its layers' own ``call`` in Python.

The same classes carry a chain of layers through the converters in ``fastgru.interop``. Weights
are in Keras layout (see ``fastgru.layers``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, List, Union

import numpy as np

__all__ = ["GRUSpec", "DenseSpec", "IdentitySpec", "LayerSpec"]


@dataclass
class GRUSpec:
    """A GRU: kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H) or (3H,); gates z, r, h."""

    kind: ClassVar[str] = "gru"
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    reset_after: bool = True
    return_sequences: bool = False

    @property
    def units(self) -> int:
        return int(self.recurrent_kernel.shape[0])

    @property
    def input_size(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def weights(self) -> List[np.ndarray]:
        return [self.kernel, self.recurrent_kernel, self.bias]


@dataclass
class DenseSpec:
    """``activation(x @ kernel + bias)`` on the last axis: kernel (in, out), bias (out,)."""

    kind: ClassVar[str] = "dense"
    kernel: np.ndarray
    bias: np.ndarray
    activation: str = "linear"

    @property
    def units(self) -> int:
        return int(self.kernel.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def weights(self) -> List[np.ndarray]:
        return [self.kernel, self.bias]


@dataclass(frozen=True)
class IdentitySpec:
    """A layer that passes its input through unchanged at inference (e.g. ``Dropout``)."""

    kind: ClassVar[str] = "identity"


LayerSpec = Union[GRUSpec, DenseSpec, IdentitySpec]
