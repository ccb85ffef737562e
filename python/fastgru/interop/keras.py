"""Keras <-> fastgru: GRU layers, and whole models of GRU and Dense layers.

The weight layout is Keras' own (see ``_layout``), so conversion is copying plus checking that
the Keras layer computes what fastgru's does. keras is imported only inside ``to_keras``;
``from_keras`` reads the classes of the ``keras`` module that made the object (Keras 3).
"""
from __future__ import annotations

import sys
from typing import List, Optional

import numpy as np

from .._validation import check_bool
from ._chain import ACTIVATIONS, GRUSpec, Spec, build_sequential, chain_of, dense_spec, \
    gru_layer, require_stock_computation, weights_dtype, with_activation
from ._layout import check_keras_weights, layer_weights

__all__ = ["from_keras", "to_keras"]

# layers that do nothing at inference
_NO_OP_LAYERS = ("InputLayer", "Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise",
                 "AlphaDropout", "ActivityRegularization")


# what a layer or model subclass may not override: it would compute something else than its
# weights and settings say
_COMPUTING = ("call", "__call__")


def _require_stock(obj, what: str) -> None:
    require_stock_computation(obj, _COMPUTING, what, "keras")


def _keras():
    """The keras module whose objects we were given (None when it was never imported)."""
    return sys.modules.get("keras")


def _is_keras(obj, class_name: str) -> bool:
    keras = _keras()
    if keras is None:
        return False
    cls = getattr(keras, class_name, None) or getattr(keras.layers, class_name, None)
    return cls is not None and isinstance(obj, cls)


def _activation_name(fn) -> str:
    return getattr(fn, "__name__", repr(fn))


def _built_weights(layer) -> list:
    weights = layer.get_weights()
    if not weights:
        raise ValueError(f"layer {layer.name!r} has no weights yet: build or fit the Keras model "
                         "first (e.g. give it a keras.Input)")
    return weights


def _gru_spec(layer) -> GRUSpec:
    """A GRUSpec from a Keras GRU layer, refusing what fastgru's GRU does not compute."""
    cell = layer.cell
    name = f"GRU layer {layer.name!r}"
    _require_stock(layer, name)
    _require_stock(cell, f"the cell of {name}")
    problems = []
    if layer.go_backwards:
        problems.append("go_backwards=True (fastgru runs forward in time)")
    if layer.stateful:
        problems.append("stateful=True (use model.stream() in fastgru for state across calls; "
                        "convert a stateful=False copy)")
    if layer.return_state:
        problems.append("return_state=True")
    if _activation_name(cell.activation) != "tanh":
        problems.append(f"activation={_activation_name(cell.activation)!r} (fastgru uses tanh)")
    if _activation_name(cell.recurrent_activation) != "sigmoid":
        problems.append(f"recurrent_activation={_activation_name(cell.recurrent_activation)!r} "
                        "(fastgru uses sigmoid)")
    if problems:
        raise NotImplementedError(f"{name} is not supported: " + "; ".join(problems))
    weights = _built_weights(layer)
    reset_after = bool(cell.reset_after)
    if not cell.use_bias:  # no bias is a zero bias
        units = weights[1].shape[0]
        weights = weights + [np.zeros((2, 3 * units) if reset_after else 3 * units,
                                      weights[0].dtype)]
    kernel, recurrent_kernel, bias = check_keras_weights(*weights, reset_after=reset_after)
    return GRUSpec(kernel, recurrent_kernel, bias, reset_after, bool(layer.return_sequences))


def _dense_spec(layer):
    _require_stock(layer, f"Dense layer {layer.name!r}")
    activation = _activation_name(layer.activation)
    if activation not in ACTIVATIONS:
        raise NotImplementedError(
            f"Dense layer {layer.name!r} has activation {activation!r}; fastgru Dense layers "
            f"have {ACTIVATIONS}"
        )
    weights = _built_weights(layer)
    return dense_spec(weights[0], weights[1] if layer.use_bias else None, activation)


def _chain_layers(model) -> list:
    """The model's layers, checked to form a chain: one input, one output, each layer used once
    and fed by the one before it (a Sequential is one by construction)."""
    keras = _keras()
    _require_stock(model, f"model {model.name!r}")
    layers = list(model.layers)
    if isinstance(model, keras.Sequential):
        return layers
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NotImplementedError(
            f"model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; fastgru converts a chain with one input and one output"
        )
    previous = model.inputs[0]
    for layer in layers:
        if type(layer).__name__ == "InputLayer":
            continue
        if len(layer._inbound_nodes) != 1 or layer.input is not previous:
            raise NotImplementedError(
                f"model {model.name!r} is not a chain at layer {layer.name!r} "
                f"({type(layer).__name__}): branches, merges and shared layers are not supported"
            )
        previous = layer.output
    if previous is not model.outputs[0]:
        raise NotImplementedError(f"model {model.name!r}: its output is not its last layer's")
    return layers


def _keras_chain(model) -> List[Spec]:
    chain: List[Spec] = []
    for layer in _chain_layers(model):
        kind = type(layer).__name__
        if _is_keras(layer, "Model"):  # a nested Sequential / Model: its layers in place
            chain += _keras_chain(layer)
        elif kind in _NO_OP_LAYERS:
            _require_stock(layer, f"layer {layer.name!r}")
            continue
        elif kind == "Bidirectional":
            raise NotImplementedError(
                f"layer {layer.name!r}: Bidirectional is not supported (fastgru's GRU runs one "
                "direction, forward in time)"
            )
        elif _is_keras(layer, "GRU"):
            chain.append(_gru_spec(layer))
        elif _is_keras(layer, "Dense"):
            chain.append(_dense_spec(layer))
        elif _is_keras(layer, "Activation"):
            _require_stock(layer, f"layer {layer.name!r}")
            chain = with_activation(chain, _activation_name(layer.activation))
        elif _is_keras(layer, "ReLU") and not (layer.max_value or layer.negative_slope or
                                                layer.threshold):
            _require_stock(layer, f"layer {layer.name!r}")
            chain = with_activation(chain, "relu")
        elif _is_keras(layer, "Softmax") and layer.axis in (-1, [-1]):
            _require_stock(layer, f"layer {layer.name!r}")
            chain = with_activation(chain, "softmax")
        else:
            raise NotImplementedError(
                f"layer {layer.name!r} ({kind}) is not supported in a model for fastgru; "
                "supported: GRU, Dense, Activation, ReLU, Softmax(axis=-1), InputLayer and the "
                "dropout/noise layers (no-ops at inference)"
            )
    return chain


def from_keras(keras_obj, return_sequences: Optional[bool] = None):
    """fastgru from Keras: a whole model, or one GRU layer.

    * A Keras ``Model`` (``Sequential`` or a functional chain) of GRU, Dense (linear, sigmoid,
      tanh, relu, softmax), Activation, ReLU, Softmax, InputLayer and Dropout layers -> a built
      ``fastgru.Sequential`` with the same weights and ``return_sequences`` flags.
    * A Keras GRU layer (or a fastgru layer, or its weight list) -> a fastgru ``GRU`` layer
      (``return_sequences`` defaults to the layer's).

    GRU layers with ``go_backwards``, ``stateful``, ``return_state``, another activation than
    tanh or recurrent activation than sigmoid, ``Bidirectional`` wrappers and other layer types
    raise NotImplementedError naming them, as do subclasses of these layers (or of the model
    classes) that override ``call``. ``use_bias=False`` becomes zero biases.
    """
    if _is_keras(keras_obj, "Model"):
        chain = _keras_chain(keras_obj)
        dtype = weights_dtype(chain[0]) if chain else np.float32
        return build_sequential(chain, dtype=dtype, what=f"from_keras({keras_obj.name!r})")
    if _is_keras(keras_obj, "GRU"):
        spec = _gru_spec(keras_obj)
    else:
        if _is_keras(keras_obj, "Layer"):
            raise NotImplementedError(
                f"layer {keras_obj.name!r} ({type(keras_obj).__name__}) is not supported: "
                "from_keras takes a Keras GRU layer or a model"
            )
        weights, reset_after = layer_weights(keras_obj)
        spec = GRUSpec(*check_keras_weights(*weights, reset_after=reset_after),
                       reset_after=reset_after,
                       return_sequences=bool(getattr(keras_obj, "return_sequences", False)))
    if return_sequences is not None:
        spec.return_sequences = check_bool("return_sequences", return_sequences)
    return gru_layer(spec)


def to_keras(model_or_layer):
    """A ``keras.Sequential`` with the layers and weights of a fastgru model, GRU layer or list
    of fastgru layers; input ``(batch, time, features)`` with any number of time steps.
    Both ``reset_after`` values carry over (Keras has both GRU variants)."""
    import keras

    chain = chain_of(model_or_layer, "to_keras")
    dtype = "float64" if chain[0].kernel.dtype == np.float64 else "float32"
    layers = [keras.Input(shape=(None, chain[0].input_size), dtype=dtype)]
    for spec in chain:
        if isinstance(spec, GRUSpec):
            layers.append(keras.layers.GRU(spec.units, return_sequences=spec.return_sequences,
                                           reset_after=spec.reset_after, dtype=dtype))
        else:
            layers.append(keras.layers.Dense(spec.units, activation=spec.activation, dtype=dtype))
    model = keras.Sequential(layers)
    model.set_weights([w for spec in chain for w in spec.weights])
    return model
