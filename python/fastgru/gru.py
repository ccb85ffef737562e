"""The fast GRU: argument checks and dtype handling around the C++ kernels in ``_core``.

``PackedGRU`` packs the weights once (padded, panel-major, ready for the SIMD micro-kernels)
and runs forward, training forward and backward on them; the free functions pack per call.
Layers keep a ``PackedGRU`` and repack only when their weights change.

NaN or inf in the inputs propagate (NaN in, NaN out), as in NumPy and PyTorch: the kernels do
not scan their inputs. Higher-level code (``Sequential.fit``, ``GRUForecaster``) checks data.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _core
from ._validation import (
    GRUGradients,
    check_bool,
    check_gru_inputs,
    check_h0,
    check_output_grads,
    check_weights,
    check_x,
    kernel_array,
    result_dtype,
)

__all__ = [
    "PackedGRU", "GRUTape", "GRUGradients", "gru_forward", "gru_forward_train", "gru_backward",
    "MaskedGRUTape", "gru_forward_train_masked", "gru_backward_masked",
]


class GRUTape(NamedTuple):
    """What ``forward_train`` keeps for ``backward``. Internal layout: arrays shaped
    (T, B, ...) whose rows are in the kernels' own order (groups of batch rows, each group's
    steps together: ``TapeRows`` in cpp/common.h), gate columns padded."""

    x: np.ndarray
    h_prev: np.ndarray
    gates: np.ndarray
    h_rec: np.ndarray
    packed: "PackedGRU"


def _contiguous(a, dtype):
    return None if a is None else kernel_array(a, dtype)


class PackedGRU:
    """GRU weights packed for the kernels of the SIMD path chosen at construction.

    kernel (I, 3H), recurrent_kernel (H, 3H), bias (2, 3H) or (3H,): Keras layout.
    ``dtype`` defaults to float64 if any weight is float64, else float32.
    """

    def __init__(self, kernel, recurrent_kernel, bias, reset_after=True, dtype=None):
        kernel, recurrent_kernel, bias = check_weights(kernel, recurrent_kernel, bias, reset_after)
        self.dtype = np.dtype(dtype) if dtype is not None else result_dtype(
            kernel, recurrent_kernel, bias
        )
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64; got {self.dtype}")
        self.reset_after = check_bool("reset_after", reset_after)
        self.input_size = kernel.shape[0]
        self.units = recurrent_kernel.shape[0]
        self._core = _core.PackedGRU(
            _contiguous(kernel, self.dtype),
            _contiguous(recurrent_kernel, self.dtype),
            _contiguous(bias, self.dtype),
            self.reset_after,
        )

    def update(self, kernel, recurrent_kernel, bias):
        """Repack new weights of the same shapes into this object's buffers (no allocation).

        Not while another thread runs ``forward``/``backward`` on this object. A tape from
        before the update still belongs to it, but its gradients would mix old and new weights.
        """
        kernel, recurrent_kernel, bias = check_weights(
            kernel, recurrent_kernel, bias, self.reset_after, self.input_size
        )
        if recurrent_kernel.shape[0] != self.units:
            raise ValueError(
                f"recurrent_kernel must have shape ({self.units}, {3 * self.units}); "
                f"got shape {recurrent_kernel.shape}"
            )
        self._core.update(
            _contiguous(kernel, self.dtype),
            _contiguous(recurrent_kernel, self.dtype),
            _contiguous(bias, self.dtype),
        )

    def update_prepared(self, kernel, recurrent_kernel, bias):
        """``update`` for callers that hold C-contiguous arrays of ``self.dtype`` and the right
        shapes (a layer after an optimizer step); the C++ side still checks them."""
        self._core.update(kernel, recurrent_kernel, bias)

    def _check_x(self, x, h0):
        x = check_x(x, self.input_size)
        h0 = check_h0(h0, x.shape[0], self.units)
        return _contiguous(x, self.dtype), _contiguous(h0, self.dtype)

    def forward(self, x, h0=None):
        """Return ``(outputs (B, T, H), last_state (B, H))``."""
        x, h0 = self._check_x(x, h0)
        return self._core.forward(x, h0)

    def forward_train(self, x, h0=None, outputs=True):
        """Return ``(outputs, last_state, tape)``; pass the tape to ``backward``. The tape
        keeps its own copy of ``x``: refilling the caller's buffer before ``backward`` does
        not change the gradients. ``outputs=False``: outputs is None (not written; for a
        layer that returns only its last state)."""
        given = x
        x, h0 = self._check_x(x, h0)
        if isinstance(given, np.ndarray) and np.may_share_memory(x, given):
            x = x.copy()
        out, h_last, h_prev, gates, h_rec = self._core.forward_train(x, h0, bool(outputs))
        return out, h_last, GRUTape(x, h_prev, gates, h_rec, self)

    def backward(self, tape, d_out=None, d_h_last=None, need_dx=True):
        """Return ``GRUGradients`` given dL/d(outputs) and dL/d(last state) (None = zeros).

        With ``need_dx=False`` the input gradient is not computed and ``dx`` is None."""
        if not isinstance(tape, GRUTape) or tape.packed is not self:
            raise TypeError("tape must come from forward_train of this PackedGRU")
        batch, steps, _ = tape.x.shape
        d_out, d_h_last = check_output_grads(
            d_out, d_h_last, batch, steps, self.units, self.dtype
        )
        grads = self._core.backward(tape.x, tape.h_prev, tape.gates, tape.h_rec, d_out, d_h_last,
                                    bool(need_dx))
        return GRUGradients(*grads)


def _pack_for_call(x, kernel, recurrent_kernel, bias, h0, reset_after):
    x, kernel, recurrent_kernel, bias, h0 = check_gru_inputs(
        x, kernel, recurrent_kernel, bias, h0, reset_after
    )
    dtype = result_dtype(x, kernel, recurrent_kernel, bias, h0)
    return PackedGRU(kernel, recurrent_kernel, bias, reset_after, dtype), x, h0


def gru_forward(x, kernel, recurrent_kernel, bias, h0=None, reset_after=True):
    """Run the GRU over ``x`` (B, T, I); return ``(outputs (B, T, H), last_state (B, H))``.

    Computes in float64 if any argument is float64, else float32. Weights in Keras layout.
    """
    packed, x, h0 = _pack_for_call(x, kernel, recurrent_kernel, bias, h0, reset_after)
    return packed.forward(x, h0)


def gru_forward_train(x, kernel, recurrent_kernel, bias, h0=None, reset_after=True):
    """Like ``gru_forward`` but also return the tape that ``gru_backward`` needs."""
    packed, x, h0 = _pack_for_call(x, kernel, recurrent_kernel, bias, h0, reset_after)
    return packed.forward_train(x, h0)


def gru_backward(tape, d_out=None, d_h_last=None):
    """Gradients ``(dx, dh0, dkernel, drecurrent_kernel, dbias)`` for a ``gru_forward_train`` tape."""
    if not isinstance(tape, GRUTape):
        raise TypeError("tape must be the third value returned by gru_forward_train")
    return tape.packed.backward(tape, d_out, d_h_last)


class MaskedGRUTape(NamedTuple):
    """What ``gru_forward_train_masked`` keeps for ``gru_backward_masked``."""

    x: np.ndarray
    h0: np.ndarray
    out: np.ndarray
    gates: np.ndarray
    h_rec: np.ndarray
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    input_masks: np.ndarray
    recurrent_masks: np.ndarray
    reset_after: bool


def _gate_masks(masks, batch, size, dtype, name):
    if masks is None:
        return np.ones((3, batch, size), dtype)
    masks = np.asarray(masks)
    if masks.shape != (3, batch, size):
        raise ValueError(f"{name} must have shape {(3, batch, size)}; got shape {masks.shape}")
    return kernel_array(masks, dtype)


def gru_forward_train_masked(x, kernel, recurrent_kernel, bias, input_masks=None,
                             recurrent_masks=None, h0=None, reset_after=True):
    """Training forward of Keras 3's ``GRU(recurrent_dropout>0)`` (its implementation=1).

    ``input_masks`` (3, B, I) and ``recurrent_masks`` (3, B, H) hold one dropout mask per gate
    z, r, h (None = ones), the same at every step; the blend ``z*h + (1-z)*n`` uses the
    unmasked state. Runs in C++ (plain loops, one path for every SIMD setting). Return
    ``(outputs, last_state, tape)``; pass the tape to ``gru_backward_masked``.
    """
    x, kernel, recurrent_kernel, bias, h0 = check_gru_inputs(
        x, kernel, recurrent_kernel, bias, h0, reset_after
    )
    dtype = result_dtype(x, kernel, recurrent_kernel, bias, h0)
    batch, _, input_size = x.shape
    units = recurrent_kernel.shape[0]
    x = np.array(x, dtype=dtype, order="C")  # the tape's own copy, as PackedGRU keeps
    kernel, recurrent_kernel, bias = (kernel_array(a, dtype) for a in (kernel, recurrent_kernel, bias))
    h0 = np.zeros((batch, units), dtype) if h0 is None else kernel_array(h0, dtype)
    input_masks = _gate_masks(input_masks, batch, input_size, dtype, "input_masks")
    recurrent_masks = _gate_masks(recurrent_masks, batch, units, dtype, "recurrent_masks")
    out, h_last, gates, h_rec = _core.gru_masked_forward_train(
        x, h0, kernel, recurrent_kernel, bias, input_masks, recurrent_masks, bool(reset_after)
    )
    tape = MaskedGRUTape(x, h0, out, gates, h_rec, kernel, recurrent_kernel, input_masks,
                         recurrent_masks, bool(reset_after))
    return out, h_last, tape


def gru_backward_masked(tape, d_out=None, d_h_last=None, need_dx=True):
    """``GRUGradients`` for a ``gru_forward_train_masked`` tape (None grads = zeros; with
    ``need_dx=False`` dx is None). Run it before changing the weights the forward used."""
    if not isinstance(tape, MaskedGRUTape):
        raise TypeError("tape must be the third value returned by gru_forward_train_masked")
    batch, steps, _ = tape.x.shape
    units = tape.recurrent_kernel.shape[0]
    d_out, d_h_last = check_output_grads(d_out, d_h_last, batch, steps, units, tape.x.dtype)
    grads = _core.gru_masked_backward(
        tape.x, tape.h0, tape.out, tape.gates, tape.h_rec, tape.kernel, tape.recurrent_kernel,
        tape.input_masks, tape.recurrent_masks, d_out, d_h_last, tape.reset_after, bool(need_dx)
    )
    return GRUGradients(*grads)
