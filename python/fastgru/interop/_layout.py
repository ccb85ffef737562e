"""GRU weight layouts of fastgru/Keras, PyTorch and ONNX, and the conversions between them.

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
    goes into ``Wb`` and ``Rb`` is zero (and reading ONNX back, ``bias = Wb + Rb``).

PyTorch's ``dropout`` between stacked layers is a training-time option and does not change
the weights; it is not carried over.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .._validation import check_weights

__all__ = [
    "Weights",
    "torch_to_keras",
    "keras_to_torch",
    "keras_gru_weights",
    "keras_to_onnx_gru",
    "onnx_gru_to_keras",
]

Weights = Tuple[np.ndarray, np.ndarray, np.ndarray]


def _zr_swap(a: np.ndarray, units: int, axis: int) -> np.ndarray:
    """Swap the first two gate blocks along ``axis``: (r, z, n) <-> (z, r, n). Its own inverse."""
    first, second, third = (np.take(a, range(k * units, (k + 1) * units), axis=axis)
                            for k in range(3))
    return np.concatenate([second, first, third], axis=axis)


def check_keras_weights(kernel, recurrent_kernel, bias, reset_after=True) -> Weights:
    """The three Keras-layout arrays as NumPy arrays, every shape checked (the package's own
    check, ``fastgru._validation.check_weights``)."""
    return check_weights(kernel, recurrent_kernel, bias, bool(reset_after))


def to_numpy(a) -> np.ndarray:
    """A NumPy copy of a torch tensor (torch is imported only by whoever made one), else asarray."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy().copy()
    return np.asarray(a)


def is_triple(items) -> bool:
    """True for ``(kernel, recurrent_kernel, bias)`` arrays, False for a list of layers/triples."""
    return len(items) == 3 and all(
        isinstance(a, np.ndarray) or hasattr(a, "detach") for a in items
    )


def layer_weights(obj) -> Tuple[Weights, bool]:
    """``((kernel, recurrent_kernel, bias), reset_after)`` of a fastgru/Keras GRU layer or a triple."""
    if isinstance(obj, (tuple, list)) and is_triple(obj):
        weights = tuple(to_numpy(a) for a in obj)
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


# ---------------------------------------------------------------------------------- PyTorch
def torch_to_keras(weight_ih, weight_hh, bias_ih=None, bias_hh=None) -> Weights:
    """PyTorch GRU arrays (gate order r, z, n) -> Keras ``(kernel, recurrent_kernel, bias)``.

    Accepts NumPy arrays or tensors; works on gradients too (same layout). Missing biases are
    zeros. The result always has ``reset_after=True`` layout: ``bias`` is ``(2, 3H)``.
    """
    weight_ih, weight_hh = to_numpy(weight_ih), to_numpy(weight_hh)
    if weight_hh.ndim != 2 or weight_hh.shape[0] != 3 * weight_hh.shape[1]:
        raise ValueError(f"weight_hh must have shape (3*hidden, hidden); got {weight_hh.shape}")
    units = weight_hh.shape[1]
    if weight_ih.ndim != 2 or weight_ih.shape[0] != 3 * units:
        raise ValueError(f"weight_ih must have shape ({3 * units}, input_size); got {weight_ih.shape}")
    zeros = np.zeros(3 * units, dtype=weight_ih.dtype)
    b_ih = zeros if bias_ih is None else to_numpy(bias_ih)
    b_hh = zeros if bias_hh is None else to_numpy(bias_hh)
    for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if b.shape != (3 * units,):
            raise ValueError(f"{name} must have shape ({3 * units},); got {b.shape}")
    kernel = np.ascontiguousarray(_zr_swap(weight_ih, units, axis=0).T)
    recurrent_kernel = np.ascontiguousarray(_zr_swap(weight_hh, units, axis=0).T)
    bias = np.stack([_zr_swap(b_ih, units, axis=0), _zr_swap(b_hh, units, axis=0)])
    return kernel, recurrent_kernel, bias


def require_reset_after(reset_after, what: str = "a GRU") -> None:
    """ValueError unless ``reset_after``: PyTorch's GRU has only that variant."""
    if not reset_after:
        raise ValueError(
            f"{what} has reset_after=False, which has no PyTorch equivalent: torch.nn.GRU always "
            "applies the reset gate after the recurrent matmul (Keras reset_after=True). Retrain "
            "with reset_after=True, or export to ONNX (to_onnx supports both variants)."
        )


def keras_to_torch(kernel, recurrent_kernel, bias, reset_after=True):
    """Keras ``(kernel, recurrent_kernel, bias)`` -> PyTorch ``(weight_ih, weight_hh, bias_ih, bias_hh)``.

    NumPy arrays out. ``reset_after=False`` raises ValueError: PyTorch's GRU applies the reset
    gate after the recurrent matmul only, so that variant cannot be expressed in it.
    """
    require_reset_after(reset_after)
    kernel, recurrent_kernel, bias = check_keras_weights(kernel, recurrent_kernel, bias, True)
    units = recurrent_kernel.shape[0]
    weight_ih = np.ascontiguousarray(_zr_swap(kernel.T, units, axis=0))
    weight_hh = np.ascontiguousarray(_zr_swap(recurrent_kernel.T, units, axis=0))
    bias_ih = _zr_swap(bias[0], units, axis=0)
    bias_hh = _zr_swap(bias[1], units, axis=0)
    return weight_ih, weight_hh, bias_ih, bias_hh


# ---------------------------------------------------------------------------------- Keras
def keras_gru_weights(layer_or_weights, reset_after: Optional[bool] = None) -> Weights:
    """Keras GRU weights as fastgru takes them: the layout is the same, so this only checks.

    Accepts a Keras ``GRU`` layer (``layer.get_weights()`` = kernel, recurrent_kernel, bias) or
    that list. ``reset_after`` is read from the layer when not given, else from the bias shape.
    Returns ``(kernel, recurrent_kernel, bias)`` NumPy arrays, shapes checked.
    """
    (kernel, recurrent_kernel, bias), detected = layer_weights(layer_or_weights)
    reset_after = detected if reset_after is None else reset_after
    return check_keras_weights(kernel, recurrent_kernel, bias, reset_after)


# ---------------------------------------------------------------------------------- ONNX
def keras_to_onnx_gru(kernel, recurrent_kernel, bias, reset_after=True, dtype=np.float32):
    """Keras weights -> the ONNX GRU inputs ``W (1, 3H, I)``, ``R (1, 3H, H)``, ``B (1, 6H)``.

    Use with ``linear_before_reset = int(reset_after)``.
    """
    kernel, recurrent_kernel, bias = check_keras_weights(kernel, recurrent_kernel, bias, reset_after)
    W = kernel.T[None].astype(dtype)  # gates z, r, h: same order as Keras
    R = recurrent_kernel.T[None].astype(dtype)
    if reset_after:
        B = np.concatenate([bias[0], bias[1]])[None].astype(dtype)  # [Wb | Rb]
    else:  # Rbh would sit outside r*(h Uh): put the whole Keras bias into Wb
        B = np.concatenate([bias, np.zeros_like(bias)])[None].astype(dtype)
    return W, R, B


def onnx_gru_to_keras(W, R, B=None, linear_before_reset=1) -> Weights:
    """The ONNX GRU inputs of one direction (``W (1, 3H, I)``, ...) -> Keras weights.

    ``B`` missing means zeros (as in ONNX). With ``linear_before_reset=0`` the two bias halves
    are summed into the single Keras bias: ONNX adds both outside the reset gate there.
    """
    W, R = np.asarray(W), np.asarray(R)
    if W.ndim != 3 or R.ndim != 3 or W.shape[0] != 1 or R.shape[0] != 1:
        raise ValueError(
            f"expected one direction: W (1, 3H, I) and R (1, 3H, H); got {W.shape} and {R.shape}"
        )
    units = R.shape[2]
    B = np.zeros((1, 6 * units), W.dtype) if B is None else np.asarray(B)
    if W.shape[1] != 3 * units or R.shape[1] != 3 * units or B.shape != (1, 6 * units):
        raise ValueError(
            f"ONNX GRU weights must be W (1, {3 * units}, I), R (1, {3 * units}, {units}), "
            f"B (1, {6 * units}); got {W.shape}, {R.shape}, {B.shape}"
        )
    kernel = np.ascontiguousarray(W[0].T)
    recurrent_kernel = np.ascontiguousarray(R[0].T)
    wb, rb = B[0, :3 * units], B[0, 3 * units:]
    bias = np.stack([wb, rb]) if linear_before_reset else wb + rb
    return kernel, recurrent_kernel, bias
