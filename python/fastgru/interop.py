"""GRU weights to and from PyTorch, Keras and ONNX.

Weight layouts (the one place they are written down; tests/test_interop.py checks them)
------------------------------------------------------------------------------------------
``H`` units, ``I`` inputs. Each framework stacks the three gates' matrices into one array,
but in its own order and orientation:

=========  =====================  =====================  ==================================
framework  input weights          recurrent weights      biases
=========  =====================  =====================  ==================================
fastgru /  ``kernel (I, 3H)``     ``recurrent_kernel``   ``bias (2, 3H)``: row 0 input, row 1
Keras      columns ``[z|r|h]``    ``(H, 3H)`` ``[z|r|h]`` recurrent (``reset_after=True``);
                                                         ``(3H,)`` if ``reset_after=False``
PyTorch    ``weight_ih_l{k}``     ``weight_hh_l{k}``     ``bias_ih_l{k} (3H,)``,
           ``(3H, I)`` rows       ``(3H, H)`` rows       ``bias_hh_l{k} (3H,)``, both ``[r|z|n]``
           ``[r|z|n]``            ``[r|z|n]``            (absent when ``bias=False``: zeros)
ONNX GRU   ``W (1, 3H, I)`` rows  ``R (1, 3H, H)`` rows  ``B (1, 6H)`` = ``[Wb_zrh | Rb_zrh]``
           ``[z|r|h]``            ``[z|r|h]``
=========  =====================  =====================  ==================================

So PyTorch -> Keras is "transpose, then swap the first two gate blocks" (r,z,n -> z,r,n) for
the weights and for both bias vectors; Keras -> ONNX is only a transpose (same gate order).

The candidate gate:
  * PyTorch, Keras ``reset_after=True``, ONNX ``linear_before_reset=1``:
    ``n = tanh(x Wh + bxh + r * (h Uh + bhh))`` -- all three are the same computation.
  * Keras ``reset_after=False``, ONNX ``linear_before_reset=0``:
    ``n = tanh(x Wh + (r * h) Uh + bh)``. PyTorch has no such GRU, hence a ValueError. In ONNX
    the recurrent bias ``Rbh`` is added outside the reset gate there, so the single Keras bias
    goes into ``Wb`` and ``Rb`` is zero.

PyTorch's ``dropout`` between stacked layers is a training-time option and does not change
the weights; it is not carried over.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ._validation import bias_shape

__all__ = [
    "torch_to_keras",
    "keras_to_torch",
    "torch_gru_weights_to_keras",
    "from_torch",
    "to_torch",
    "keras_gru_weights",
    "from_keras",
    "to_onnx_gru",
]

Weights = Tuple[np.ndarray, np.ndarray, np.ndarray]


def _zr_swap(a: np.ndarray, units: int, axis: int) -> np.ndarray:
    """Swap the first two gate blocks along ``axis``: (r, z, n) <-> (z, r, n). Its own inverse."""
    first, second, third = (np.take(a, range(k * units, (k + 1) * units), axis=axis)
                            for k in range(3))
    return np.concatenate([second, first, third], axis=axis)


def _check_keras_weights(kernel, recurrent_kernel, bias, reset_after=True) -> Weights:
    kernel, recurrent_kernel, bias = (np.asarray(a) for a in (kernel, recurrent_kernel, bias))
    if recurrent_kernel.ndim != 2 or recurrent_kernel.shape[1] != 3 * recurrent_kernel.shape[0]:
        raise ValueError(
            f"recurrent_kernel must have shape (units, 3*units); got {recurrent_kernel.shape}"
        )
    units = recurrent_kernel.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != 3 * units:
        raise ValueError(f"kernel must have shape (input_size, {3 * units}); got {kernel.shape}")
    if bias.shape != bias_shape(units, reset_after):
        raise ValueError(
            f"bias must have shape {bias_shape(units, reset_after)} for "
            f"reset_after={reset_after}; got {bias.shape}"
        )
    return kernel, recurrent_kernel, bias


# ---------------------------------------------------------------------------------- PyTorch
def torch_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> Weights:
    """PyTorch GRU arrays (gate order r, z, n) -> Keras ``(kernel, recurrent_kernel, bias)``.

    Accepts NumPy arrays or tensors; works on gradients too (same layout). Missing biases are
    zeros. The result always has ``reset_after=True`` layout: ``bias`` is ``(2, 3H)``.
    """
    weight_ih, weight_hh = _to_numpy(weight_ih), _to_numpy(weight_hh)
    if weight_hh.ndim != 2 or weight_hh.shape[0] != 3 * weight_hh.shape[1]:
        raise ValueError(f"weight_hh must have shape (3*hidden, hidden); got {weight_hh.shape}")
    units = weight_hh.shape[1]
    if weight_ih.ndim != 2 or weight_ih.shape[0] != 3 * units:
        raise ValueError(f"weight_ih must have shape ({3 * units}, input_size); got {weight_ih.shape}")
    zeros = np.zeros(3 * units, dtype=weight_ih.dtype)
    b_ih = zeros if bias_ih is None else _to_numpy(bias_ih)
    b_hh = zeros if bias_hh is None else _to_numpy(bias_hh)
    for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if b.shape != (3 * units,):
            raise ValueError(f"{name} must have shape ({3 * units},); got {b.shape}")
    kernel = np.ascontiguousarray(_zr_swap(weight_ih, units, axis=0).T)
    recurrent_kernel = np.ascontiguousarray(_zr_swap(weight_hh, units, axis=0).T)
    bias = np.stack([_zr_swap(b_ih, units, axis=0), _zr_swap(b_hh, units, axis=0)])
    return kernel, recurrent_kernel, bias


def keras_to_torch(kernel, recurrent_kernel, bias, reset_after=True):
    """Keras ``(kernel, recurrent_kernel, bias)`` -> PyTorch ``(weight_ih, weight_hh, bias_ih, bias_hh)``.

    NumPy arrays out. ``reset_after=False`` raises ValueError: PyTorch's GRU applies the reset
    gate after the recurrent matmul only, so that variant cannot be expressed in it.
    """
    if not reset_after:
        raise ValueError(
            "a reset_after=False GRU has no PyTorch equivalent: torch.nn.GRU always applies the "
            "reset gate after the recurrent matmul (Keras reset_after=True). Retrain with "
            "reset_after=True, or export to ONNX (to_onnx_gru supports both variants)."
        )
    kernel, recurrent_kernel, bias = _check_keras_weights(kernel, recurrent_kernel, bias, True)
    units = recurrent_kernel.shape[0]
    weight_ih = np.ascontiguousarray(_zr_swap(kernel.T, units, axis=0))
    weight_hh = np.ascontiguousarray(_zr_swap(recurrent_kernel.T, units, axis=0))
    bias_ih = _zr_swap(bias[0], units, axis=0)
    bias_hh = _zr_swap(bias[1], units, axis=0)
    return weight_ih, weight_hh, bias_ih, bias_hh


def _to_numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor (torch is imported only when given one)
        return a.detach().cpu().numpy().copy()
    return np.asarray(a)


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


def _fastgru_layer(weights: Weights, return_sequences: bool):
    """A ``fastgru.layers.GRU`` (``reset_after=True``) holding ``weights``."""
    from . import layers  # imported here: interop is usable for weights alone

    kernel, recurrent_kernel, bias = weights
    units = recurrent_kernel.shape[0]
    layer = layers.GRU(units, return_sequences=return_sequences, reset_after=True)
    if hasattr(layer, "build") and not getattr(layer, "built", False):
        layer.build((None, None, kernel.shape[0]))
    layer.set_weights([kernel, recurrent_kernel, bias])
    return layer


def from_torch(module, return_sequences: bool = False):
    """A fastgru ``GRU`` layer (or a list of them, one per stacked layer) from a torch GRU.

    ``return_sequences`` applies to the last layer (Keras default False: only the last state);
    intermediate layers of a stacked GRU always return sequences, as the next layer needs them.
    ``batch_first`` does not matter: fastgru layers are batch-major (B, T, I) always. A
    ``torch.nn.GRUCell`` becomes a one-layer GRU with the same weights.
    """
    _check_torch_gru(module)
    import torch

    num_layers = 1 if isinstance(module, torch.nn.GRUCell) else module.num_layers
    out = [
        _fastgru_layer(
            torch_gru_weights_to_keras(module, k),
            return_sequences=True if k < num_layers - 1 else return_sequences,
        )
        for k in range(num_layers)
    ]
    return out[0] if num_layers == 1 else out


def _layer_weights(obj) -> Tuple[Weights, bool]:
    """``((kernel, recurrent_kernel, bias), reset_after)`` of a fastgru/Keras GRU layer or a triple."""
    if isinstance(obj, (tuple, list)) and _is_triple(obj):
        weights = tuple(_to_numpy(a) for a in obj)
        return weights, weights[2].ndim == 2
    if hasattr(obj, "get_weights"):
        ws = obj.get_weights()
        if len(ws) != 3:
            raise ValueError(
                f"expected a GRU layer with 3 weight arrays (kernel, recurrent_kernel, bias); "
                f"{type(obj).__name__} has {len(ws)}"
            )
        reset_after = getattr(obj, "reset_after", None)
        if reset_after is None:
            reset_after = getattr(getattr(obj, "cell", None), "reset_after", np.ndim(ws[2]) == 2)
        return tuple(np.asarray(a) for a in ws), bool(reset_after)
    raise TypeError(
        "expected a GRU layer (with get_weights) or a (kernel, recurrent_kernel, bias) triple; "
        f"got {type(obj).__name__}"
    )


def to_torch(layers_or_weights, dtype=None):
    """A ``torch.nn.GRU(batch_first=True)`` computing the same as the given fastgru GRU.

    Accepts a fastgru (or Keras) GRU layer, a ``(kernel, recurrent_kernel, bias)`` triple in
    Keras layout, or a list of layers / triples (a stacked GRU -> ``num_layers=len(list)``).
    ``dtype`` defaults to float64 if the kernel is float64, else float32. The module is in
    eval mode. Raises ValueError for ``reset_after=False`` (no PyTorch equivalent).
    """
    import torch

    items = layers_or_weights
    single = not isinstance(items, (list, tuple)) or _is_triple(items)
    items = [items] if single else list(items)
    if not items:
        raise ValueError("nothing to convert: empty list")
    converted = []
    for k, item in enumerate(items):
        (kernel, recurrent_kernel, bias), reset_after = _layer_weights(item)
        if not reset_after:
            keras_to_torch(kernel, recurrent_kernel, bias, reset_after=False)  # raises
        kernel, recurrent_kernel, bias = _check_keras_weights(kernel, recurrent_kernel, bias, True)
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


def _is_triple(items) -> bool:
    """True for ``(kernel, recurrent_kernel, bias)`` arrays, False for a list of layers/triples."""
    return len(items) == 3 and all(
        isinstance(a, np.ndarray) or hasattr(a, "detach") for a in items
    )


# ---------------------------------------------------------------------------------- Keras
def keras_gru_weights(layer_or_weights, reset_after: Optional[bool] = None) -> Weights:
    """Keras GRU weights as fastgru takes them: the layout is the same, so this only checks.

    Accepts a Keras ``GRU`` layer (``layer.get_weights()`` = kernel, recurrent_kernel, bias) or
    that list. ``reset_after`` is read from the layer when not given, else from the bias shape.
    Returns ``(kernel, recurrent_kernel, bias)`` NumPy arrays, shapes checked.
    """
    (kernel, recurrent_kernel, bias), detected = _layer_weights(layer_or_weights)
    reset_after = detected if reset_after is None else reset_after
    return _check_keras_weights(kernel, recurrent_kernel, bias, reset_after)


def from_keras(keras_layer, return_sequences: Optional[bool] = None):
    """A fastgru ``GRU`` layer with the weights and ``reset_after`` of a Keras GRU layer."""
    from . import layers

    (kernel, recurrent_kernel, bias), reset_after = _layer_weights(keras_layer)
    _check_keras_weights(kernel, recurrent_kernel, bias, reset_after)
    if return_sequences is None:
        return_sequences = bool(getattr(keras_layer, "return_sequences", False))
    layer = layers.GRU(
        recurrent_kernel.shape[0], return_sequences=return_sequences, reset_after=reset_after
    )
    if hasattr(layer, "build") and not getattr(layer, "built", False):
        layer.build((None, None, kernel.shape[0]))
    layer.set_weights([kernel, recurrent_kernel, bias])
    return layer


# ---------------------------------------------------------------------------------- ONNX
def to_onnx_gru(
    kernel,
    recurrent_kernel,
    bias,
    reset_after: bool = True,
    *,
    batch_first: bool = True,
    dense: Optional[Tuple[Any, Any]] = None,
    opset: int = 17,
    dtype=np.float32,
    name: str = "fastgru_gru",
):
    """An ``onnx.ModelProto`` with one ONNX ``GRU`` op holding these Keras-layout weights.

    Graph inputs: ``x`` (B, T, I) (or (T, B, I) with ``batch_first=False``) and ``h0`` (B, H).
    Graph outputs: ``output`` (B, T, H) (or (T, B, H)), ``h_last`` (B, H), and ``prediction``
    (B, O) = ``h_last @ dense_kernel + dense_bias`` when ``dense=(kernel (H, O), bias (O,))``.
    ``reset_after`` maps to ``linear_before_reset`` (1 / 0). The op itself runs in ONNX's
    time-major layout 0 (ONNX Runtime's CPU GRU does not implement ``layout=1``), with
    Transpose nodes around it for ``batch_first``. Batch and time are dynamic.

    Feed ``h0`` zeros for a fresh state; keep ``h_last`` to carry state between calls.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    kernel, recurrent_kernel, bias = _check_keras_weights(
        kernel, recurrent_kernel, bias, reset_after
    )
    dtype = np.dtype(dtype)
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}[dtype]
    units, inputs = recurrent_kernel.shape[0], kernel.shape[0]
    W = kernel.T[None].astype(dtype)  # (1, 3H, I), gates z, r, h: same order as Keras
    R = recurrent_kernel.T[None].astype(dtype)  # (1, 3H, H)
    if reset_after:
        B = np.concatenate([bias[0], bias[1]])[None].astype(dtype)  # (1, 6H) = [Wb | Rb]
    else:  # Rbh would sit outside r*(h Uh): put the whole Keras bias into Wb
        B = np.concatenate([bias, np.zeros_like(bias)])[None].astype(dtype)
    inits = [
        numpy_helper.from_array(W, "W"),
        numpy_helper.from_array(R, "R"),
        numpy_helper.from_array(B, "B"),
        numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = []
    x_tm = "x"
    if batch_first:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_tm"], perm=[1, 0, 2]))
        x_tm = "x_tm"
    nodes.append(helper.make_node("Unsqueeze", ["h0", "axis0"], ["h0_1"]))
    nodes.append(helper.make_node(
        "GRU", [x_tm, "W", "R", "B", "", "h0_1"], ["Y", "Y_h"],
        hidden_size=units, linear_before_reset=int(bool(reset_after)), direction="forward",
    ))
    nodes.append(helper.make_node("Squeeze", ["Y", "axis1"], ["Y_tm"]))  # (T, B, H)
    if batch_first:
        nodes.append(helper.make_node("Transpose", ["Y_tm"], ["output"], perm=[1, 0, 2]))
    else:
        nodes.append(helper.make_node("Identity", ["Y_tm"], ["output"]))
    nodes.append(helper.make_node("Squeeze", ["Y_h", "axis0"], ["h_last"]))
    x_shape = ["batch", "time", inputs] if batch_first else ["time", "batch", inputs]
    y_shape = ["batch", "time", units] if batch_first else ["time", "batch", units]
    outputs = [
        helper.make_tensor_value_info("output", elem, y_shape),
        helper.make_tensor_value_info("h_last", elem, ["batch", units]),
    ]
    if dense is not None:
        dk, db = (np.asarray(a, dtype) for a in dense)
        if dk.ndim != 2 or dk.shape[0] != units or db.shape != (dk.shape[1],):
            raise ValueError(
                f"dense must be (kernel ({units}, O), bias (O,)); got {dk.shape}, {db.shape}"
            )
        inits += [numpy_helper.from_array(dk, "dense_kernel"),
                  numpy_helper.from_array(db, "dense_bias")]
        nodes.append(helper.make_node("MatMul", ["h_last", "dense_kernel"], ["dense_mm"]))
        nodes.append(helper.make_node("Add", ["dense_mm", "dense_bias"], ["prediction"]))
        outputs.append(helper.make_tensor_value_info("prediction", elem, ["batch", dk.shape[1]]))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", elem, x_shape),
         helper.make_tensor_value_info("h0", elem, ["batch", units])],
        outputs, initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="fastgru"
    )
    model.ir_version = min(model.ir_version, 10)  # readable by older ONNX Runtime releases
    onnx.checker.check_model(model)
    return model
