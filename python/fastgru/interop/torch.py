"""PyTorch <-> fastgru: ``nn.GRU`` / ``nn.GRUCell`` weights, and whole GRU + Linear models.

torch is imported only inside the functions, when the caller hands over (or asks for) a module.

The convention for a chain of modules (``nn.Sequential``, ``nn.ModuleList`` or a list), since
``nn.GRU`` returns ``(output, h_n)`` and a chain does not say which one the next module reads:

* a GRU with another GRU after it feeds it its whole output sequence;
* after the last GRU, ``nn.Linear`` and activations act on its **last state**
  (``output[:, -1]`` = ``h_n[-1]``), i.e. the fastgru GRU has ``return_sequences=False``;
  pass ``return_sequences=True`` to apply them to every time step instead.

That is what ``TorchGRURegressor.forward`` computes, so ``from_torch(to_torch(model))`` and
``to_torch(from_torch(chain))`` agree with the fastgru model's ``predict``. fastgru input is
always batch-major ``(batch, time, features)``: a ``batch_first=False`` GRU converts (its
weights are the same) and the fastgru model then takes ``x.transpose(0, 1)`` of its input.
"""
from __future__ import annotations

from typing import List

import numpy as np

from .._validation import check_bool
from ._chain import DenseSpec, GRUSpec, Spec, build_sequential, chain_of, dense_spec, \
    gru_layer, require_stock_computation, set_sequence_flags, weights_dtype, with_activation
from ._layout import Weights, check_keras_weights, is_triple, keras_to_torch, layer_weights, \
    require_reset_after, to_numpy, torch_to_keras

__all__ = ["torch_gru_weights_to_keras", "from_torch", "to_torch", "TorchGRURegressor"]

_TORCH_ACTIVATIONS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softmax": "softmax"}
_TORCH_NO_OPS = ("Identity", "Dropout", "AlphaDropout", "FeatureAlphaDropout")
# what a module subclass may not override: it would compute something else than its weights say
_COMPUTING = ("forward", "__call__")
_SUPPORTED = ("nn.GRU, nn.GRUCell, nn.Linear, nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Softmax(dim=-1), "
              "nn.Identity, nn.Dropout, nested nn.Sequential")


def _check_torch_gru(module) -> None:
    import torch

    if isinstance(module, torch.nn.GRUCell):
        return
    if not isinstance(module, torch.nn.GRU):
        raise TypeError(f"expected a torch.nn.GRU or torch.nn.GRUCell; got {type(module).__name__}")
    if module.bidirectional:
        raise NotImplementedError(
            "bidirectional torch.nn.GRU is not supported: fastgru's GRU runs one direction. "
            "Convert each direction's weights with torch_to_keras (the *_reverse parameters "
            "for the backward one) and run it on the time-reversed input."
        )
    if getattr(module, "proj_size", 0):
        raise NotImplementedError("a torch GRU with proj_size > 0 (projections) is not supported")


def torch_gru_weights_to_keras(module, layer: int = 0) -> Weights:
    """Keras-layout ``(kernel, recurrent_kernel, bias (2, 3H))`` of one layer of a torch GRU.

    ``module`` is a ``torch.nn.GRU`` (``layer`` picks the stacked layer) or ``torch.nn.GRUCell``.
    """
    _check_torch_gru(module)
    import torch

    if isinstance(module, torch.nn.GRUCell):
        if layer != 0:
            raise IndexError("a GRUCell has a single layer")
        suffix = ""
    else:
        if not 0 <= layer < module.num_layers:
            raise IndexError(f"layer must be in [0, {module.num_layers}); got {layer}")
        suffix = f"_l{layer}"
    get = lambda name: getattr(module, name + suffix, None)  # noqa: E731
    return torch_to_keras(get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"))


def _gru_specs(module) -> List[GRUSpec]:
    import torch

    num_layers = 1 if isinstance(module, torch.nn.GRUCell) else module.num_layers
    return [GRUSpec(*torch_gru_weights_to_keras(module, k)) for k in range(num_layers)]


def _flat_modules(modules, return_sequences: bool) -> list:
    """A chain's modules with nested ``nn.Sequential`` / ``TorchGRURegressor`` spelled out. A
    regressor's own return_sequences must be the chain's (its parts do not carry it)."""
    import torch

    out = []
    for m in modules:
        if isinstance(m, torch.nn.Sequential):
            require_stock_computation(m, _COMPUTING, f"module {type(m).__name__}", "torch")
            out += _flat_modules(list(m), return_sequences)
        elif isinstance(m, _regressor_class()):
            require_stock_computation(m, _COMPUTING, f"module {type(m).__name__}",
                                      base=_regressor_class())
            if bool(m.return_sequences) != bool(return_sequences):
                raise NotImplementedError(
                    f"a TorchGRURegressor with return_sequences={m.return_sequences} inside a "
                    f"chain converted with return_sequences={return_sequences}: convert the "
                    "regressor itself, or pass its return_sequences"
                )
            out += _flat_modules(_regressor_parts(m), return_sequences)
        else:
            out.append(m)
    return out


def _regressor_parts(module) -> list:
    import torch

    grus = list(module.gru) if isinstance(module.gru, torch.nn.ModuleList) else [module.gru]
    return grus + list(module.head)


def _torch_chain(modules, return_sequences: bool) -> List[Spec]:
    import torch

    modules = _flat_modules(modules, return_sequences)
    gru_ids = [i for i, m in enumerate(modules) if isinstance(m, (torch.nn.GRU, torch.nn.GRUCell))]
    last_gru = gru_ids[-1] if gru_ids else len(modules)
    chain: List[Spec] = []
    for i, m in enumerate(modules):
        kind = type(m).__name__
        what = f"module {i} ({kind})"
        if isinstance(m, (torch.nn.GRU, torch.nn.GRUCell)):
            require_stock_computation(m, _COMPUTING, what, "torch")
            _check_torch_gru(m)
            chain += _gru_specs(m)
        elif isinstance(m, torch.nn.Linear):
            require_stock_computation(m, _COMPUTING, what, "torch")
            bias = None if m.bias is None else to_numpy(m.bias)
            chain.append(dense_spec(to_numpy(m.weight).T.copy(), bias))
        elif kind in _TORCH_ACTIVATIONS and isinstance(m, getattr(torch.nn, kind)):
            require_stock_computation(m, _COMPUTING, what, "torch")
            if kind == "Softmax":
                # rank of the tensor there: sequences before the last GRU or when asked for
                rank = 3 if i < last_gru or return_sequences else 2
                if m.dim not in (-1, rank - 1):
                    raise NotImplementedError(
                        f"module {i} nn.Softmax(dim={m.dim}) normalises over an axis other than "
                        "the features; fastgru's softmax is over the last axis (use dim=-1)"
                    )
            chain = with_activation(chain, _TORCH_ACTIVATIONS[kind])
        elif kind in _TORCH_NO_OPS and isinstance(m, getattr(torch.nn, kind)):
            require_stock_computation(m, _COMPUTING, what, "torch")
            continue  # no-ops at inference
        else:
            raise NotImplementedError(
                f"module {i} ({kind}) is not supported in a model for fastgru; supported: "
                f"{_SUPPORTED}"
            )
    if not gru_ids:
        raise ValueError("from_torch: the chain has no nn.GRU or nn.GRUCell")
    set_sequence_flags(chain, return_sequences)
    return chain


def from_torch(module, return_sequences: bool = False):
    """fastgru layer(s) or a whole fastgru ``Sequential`` from PyTorch modules.

    * ``nn.GRU``: a fastgru ``GRU`` layer, or a list of them, one per stacked layer (the
      intermediate ones return sequences; ``return_sequences`` applies to the last).
      ``nn.GRUCell``: a one-layer GRU with the same weights.
    * ``nn.Sequential``, ``nn.ModuleList``, a list/tuple of modules, or a ``TorchGRURegressor``:
      a built ``fastgru.Sequential`` of GRU and Dense layers. Modules: nn.GRU (multi-layer,
      ``batch_first`` either way), nn.GRUCell, nn.Linear, nn.ReLU / Tanh / Sigmoid /
      Softmax(dim=-1) (applied to the Linear before them; elsewhere an identity Dense carries
      them), nn.Identity and nn.Dropout (no-ops at inference). Linear layers after the last GRU
      read its last state unless ``return_sequences=True`` (see the module docstring).

    Raises NotImplementedError naming the feature for bidirectional GRUs, projections, any
    other module type, and subclasses of the modules above that override ``forward`` (what
    they compute is not what their weights say); never returns a model that computes
    something else.
    """
    import torch

    if isinstance(module, (torch.nn.GRU, torch.nn.GRUCell)):
        require_stock_computation(module, _COMPUTING, type(module).__name__, "torch")
        _check_torch_gru(module)
        specs = _gru_specs(module)
        set_sequence_flags(specs, return_sequences)
        layers = [gru_layer(s) for s in specs]
        return layers[0] if len(layers) == 1 else layers
    if isinstance(module, _regressor_class()):
        return_sequences = module.return_sequences
        modules = [module]
    elif isinstance(module, (torch.nn.Sequential, torch.nn.ModuleList, list, tuple)):
        if isinstance(module, torch.nn.Module):
            require_stock_computation(module, _COMPUTING, type(module).__name__, "torch")
        modules = list(module)
    else:
        raise TypeError(
            f"from_torch takes an nn.GRU, nn.GRUCell, nn.Sequential, nn.ModuleList, a list of "
            f"modules or a TorchGRURegressor; got {type(module).__name__}. For your own "
            "nn.Module, pass its parts in the order forward runs them, e.g. "
            "from_torch([model.gru, model.fc])"
        )
    chain = _torch_chain(modules, return_sequences)
    return build_sequential(chain, dtype=weights_dtype(chain[0]), what="from_torch")


# ---------------------------------------------------------------------------------- to torch
def _torch_gru(triples, dtype):
    """A ``torch.nn.GRU(batch_first=True)`` with ``len(triples)`` layers of Keras-layout weights."""
    import torch

    converted = []
    for k, (kernel, recurrent_kernel, bias) in enumerate(triples):
        kernel, recurrent_kernel, bias = check_keras_weights(kernel, recurrent_kernel, bias, True)
        if k and kernel.shape[0] != converted[-1][1].shape[1]:
            raise ValueError(
                f"layer {k} takes {kernel.shape[0]} inputs but layer {k - 1} has "
                f"{converted[-1][1].shape[1]} units"
            )
        converted.append(keras_to_torch(kernel, recurrent_kernel, bias))
    if dtype is None:
        dtype = torch.float64 if converted[0][0].dtype == np.float64 else torch.float32
    units = converted[0][1].shape[1]
    if any(c[1].shape[1] != units for c in converted):
        raise ValueError("torch.nn.GRU needs the same number of units in every stacked layer")
    module = torch.nn.GRU(
        input_size=converted[0][0].shape[1], hidden_size=units, num_layers=len(converted),
        bias=True, batch_first=True, dtype=dtype,
    )
    with torch.no_grad():
        for k, arrays in enumerate(converted):
            for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), arrays):
                getattr(module, f"{name}_l{k}").copy_(torch.as_tensor(np.ascontiguousarray(value)))
    return module.eval()


def _torch_head(denses: List[DenseSpec], dtype):
    import torch

    modules = []
    for spec in denses:
        linear = torch.nn.Linear(spec.input_size, spec.units, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(np.ascontiguousarray(spec.kernel.T)))
            linear.bias.copy_(torch.as_tensor(np.ascontiguousarray(spec.bias)))
        modules.append(linear)
        if spec.activation == "softmax":
            modules.append(torch.nn.Softmax(dim=-1))
        elif spec.activation != "linear":
            modules.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh,
                            "sigmoid": torch.nn.Sigmoid}[spec.activation]())
    return torch.nn.Sequential(*modules)


def _model_to_torch(model, dtype):
    import torch

    chain = chain_of(model, "to_torch")
    n_grus = next((k for k, s in enumerate(chain) if not isinstance(s, GRUSpec)), len(chain))
    if n_grus == 0 or any(isinstance(s, GRUSpec) for s in chain[n_grus:]):
        raise NotImplementedError(
            "to_torch builds GRU layers followed by a Dense head; a Dense layer before or "
            "between GRU layers has no place in TorchGRURegressor"
        )
    grus, head = chain[:n_grus], chain[n_grus:]
    for k, spec in enumerate(grus):
        require_reset_after(spec.reset_after, f"GRU layer {k}")
    if dtype is None:
        dtype = torch.float64 if chain[0].kernel.dtype == np.float64 else torch.float32
    triples = [tuple(s.weights) for s in grus]
    if len({s.units for s in grus}) == 1:
        gru = _torch_gru(triples, dtype)
    else:
        gru = torch.nn.ModuleList([_torch_gru([t], dtype) for t in triples])
    regressor = _regressor_class()(gru, _torch_head(head, dtype),
                                   return_sequences=grus[-1].return_sequences)
    return regressor.eval()


def to_torch(model_or_layers, dtype=None):
    """PyTorch module(s) computing the same as fastgru layers or a fastgru model.

    * a fastgru ``Sequential`` -> a ``TorchGRURegressor`` whose ``forward(x)`` returns what
      ``model.predict(x)`` does (GRU layers then a Dense head; see ``TorchGRURegressor``).
    * a fastgru (or Keras) GRU layer, a ``(kernel, recurrent_kernel, bias)`` triple in Keras
      layout, or a list of layers / triples (stacked -> ``num_layers=len(list)``) ->
      a ``torch.nn.GRU(batch_first=True)``.

    ``dtype`` defaults to float64 if the weights are float64, else float32. Modules are in eval
    mode. Raises ValueError for ``reset_after=False`` (no PyTorch equivalent).
    """
    from ..model import Sequential

    if isinstance(model_or_layers, Sequential):
        return _model_to_torch(model_or_layers, dtype)
    items = model_or_layers
    single = not isinstance(items, (list, tuple)) or is_triple(items)
    items = [items] if single else list(items)
    if not items:
        raise ValueError("nothing to convert: empty list")
    triples = []
    for item in items:
        (kernel, recurrent_kernel, bias), reset_after = layer_weights(item)
        require_reset_after(reset_after)
        triples.append((kernel, recurrent_kernel, bias))
    return _torch_gru(triples, dtype)


# ---------------------------------------------------------------------------------- the module
_REGRESSOR = None


def _regressor_class():
    """``TorchGRURegressor``, defined on first use so that importing fastgru never imports torch."""
    global _REGRESSOR
    if _REGRESSOR is not None:
        return _REGRESSOR
    import torch

    class TorchGRURegressor(torch.nn.Module):
        """GRU layers then a head, batch-first: the PyTorch twin of a fastgru ``Sequential``.

        ``gru``: one ``nn.GRU(batch_first=True)`` (stacked when every layer has the same units)
        or an ``nn.ModuleList`` of them. ``head``: an ``nn.Sequential`` of Linear layers and
        activations, applied to the last GRU's last state (``return_sequences=False``) or to
        every step of its output (``True``). ``forward(x)`` with ``x`` (batch, time, features)
        returns the head's output, as fastgru's ``model.predict(x)``.
        """

        def __init__(self, gru, head=None, return_sequences: bool = False):
            super().__init__()
            grus = list(gru) if isinstance(gru, torch.nn.ModuleList) else [gru]
            for g in grus:
                if not isinstance(g, torch.nn.GRU):
                    raise TypeError(f"gru must hold nn.GRU modules; got {type(g).__name__}")
                if not g.batch_first:
                    raise ValueError("TorchGRURegressor takes batch_first=True GRUs")
            self.gru = gru
            self.head = torch.nn.Sequential() if head is None else head
            self.return_sequences = check_bool("return_sequences", return_sequences)

        def forward(self, x):
            grus = self.gru if isinstance(self.gru, torch.nn.ModuleList) else [self.gru]
            for gru in grus:
                x, _ = gru(x)
            if not self.return_sequences:
                x = x[:, -1]
            return self.head(x)

    _REGRESSOR = TorchGRURegressor
    return _REGRESSOR


def __getattr__(name):  # TorchGRURegressor without importing torch at fastgru import
    if name == "TorchGRURegressor":
        return _regressor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
