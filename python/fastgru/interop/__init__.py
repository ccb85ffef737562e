"""Models and weights to and from PyTorch, Keras and ONNX.

=====================  =====================================  ==================================
framework              into fastgru                           out of fastgru
=====================  =====================================  ==================================
PyTorch (``torch``)    ``from_torch(nn.GRU | nn.GRUCell |     ``to_torch(model)`` ->
                       nn.Sequential | [modules])``           ``TorchGRURegressor``;
                                                              ``to_torch(layer(s))`` -> nn.GRU
Keras (``keras``)      ``from_keras(model | GRU layer)``      ``to_keras(model | layer)``
ONNX (``onnx``)        ``from_onnx(path | ModelProto)``       ``to_onnx(model, path)``,
                                                              ``to_onnx_gru(weights...)``
weights (``_layout``)  ``torch_to_keras``, ``onnx_gru_to_keras``, ``keras_to_torch``,
                       ``keras_to_onnx_gru``, ``keras_gru_weights``, ``torch_gru_weights_to_keras``
=====================  =====================================  ==================================

Whole models are GRU layers and Dense layers (linear, sigmoid, tanh, relu, softmax) in a chain;
``_chain`` holds the rules every converter shares, ``_layout`` the weight layouts (documented
there). Anything that would compute differently in fastgru raises NotImplementedError or
ValueError naming the feature. Each framework is imported only when used.
"""
from __future__ import annotations

from ._layout import keras_gru_weights, keras_to_onnx_gru, keras_to_torch, onnx_gru_to_keras, \
    torch_to_keras
from .keras import from_keras, to_keras
from .onnx_export import to_onnx, to_onnx_gru
from .onnx_import import from_onnx
from .torch import from_torch, to_torch, torch_gru_weights_to_keras

__all__ = [
    "torch_to_keras",
    "keras_to_torch",
    "torch_gru_weights_to_keras",
    "from_torch",
    "to_torch",
    "keras_gru_weights",
    "from_keras",
    "to_keras",
    "keras_to_onnx_gru",
    "onnx_gru_to_keras",
    "to_onnx_gru",
    "to_onnx",
    "from_onnx",
]


def __getattr__(name):  # TorchGRURegressor is defined on first use: importing it imports torch
    if name == "TorchGRURegressor":
        from .torch import _regressor_class

        return _regressor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
