"""Argument checks shared by the NumPy reference and the C++ kernels.

Both paths raise the same errors for the same bad input, so a test written against one
holds for the other. Every message names the argument and the shape it expected.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np


class GRUGradients(NamedTuple):
    """Gradients returned by ``gru_backward``, each shaped like what it is the gradient of."""

    dx: Optional[np.ndarray]  # (B, T, I); None when not asked for (need_dx=False)
    dh0: np.ndarray  # (B, H)
    dkernel: np.ndarray  # (I, 3H)
    drecurrent_kernel: np.ndarray  # (H, 3H)
    dbias: np.ndarray  # (2, 3H) if reset_after else (3H,)


def is_real_number_dtype(dtype) -> bool:
    """Whether a pandas or NumPy dtype holds real numbers a forecaster can take: numeric, and
    neither bool (flags, not amounts) nor complex (casting would drop the imaginary part)."""
    import pandas as pd

    return (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            and not pd.api.types.is_complex_dtype(dtype))


def kernel_array(value, dtype) -> np.ndarray:
    """``value`` as a C-contiguous, aligned array of ``dtype``: what the C++ kernels read
    (a copy only when needed; a view at an odd byte offset is copied, never read misaligned)."""
    return np.require(np.asarray(value), dtype=dtype, requirements="CA")


def _as_float_array(name: str, value) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "f":
        raise TypeError(
            f"{name} must be a floating-point array (float32 or float64); got dtype {arr.dtype}"
        )
    return arr


def result_dtype(*arrays: Optional[np.ndarray]) -> np.dtype:
    """float64 if any argument is float64, else float32 (float16 computes in float32)."""
    dtype = np.result_type(*[a for a in arrays if a is not None])
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"fastgru computes in float32 or float64; got dtype {dtype}")
    return np.dtype(dtype)


def check_positive_int(name: str, value) -> int:
    """``value`` as an int if it is an integer >= 1 (not a bool), else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_seed(name: str, value, generators: bool = False):
    """``value`` if it is None or an int >= 0 (or, with ``generators``, a NumPy ``Generator``
    or ``SeedSequence``, which ``np.random.default_rng`` also takes), else a TypeError or
    ValueError naming it (NumPy's own message would not). Seeds kept in a layer's or a
    forecaster's saved settings are ints."""
    if value is None:
        return None
    if generators and isinstance(value, (np.random.Generator, np.random.SeedSequence)):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        also = ", a numpy Generator or SeedSequence" if generators else ""
        raise TypeError(f"{name} must be None or an int >= 0{also}; got {type(value).__name__} "
                        f"{value!r}")
    if value < 0:
        raise ValueError(f"{name} must be None or an int >= 0; got {value}")
    return int(value)


def check_bool(name: str, value) -> bool:
    """``value`` as a bool if it is one (Python or NumPy), else a TypeError naming it: a
    string such as "False" or a number would otherwise be taken for True by truthiness."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool (True or False); got {type(value).__name__} "
                        f"{value!r}")
    return bool(value)


def bias_shape(units: int, reset_after: bool) -> tuple:
    return (2, 3 * units) if reset_after else (3 * units,)


def check_weights(kernel, recurrent_kernel, bias, reset_after=True, input_size=None):
    """Validate GRU weights in Keras layout; return them as arrays."""
    check_bool("reset_after", reset_after)
    kernel = _as_float_array("kernel", kernel)
    recurrent_kernel = _as_float_array("recurrent_kernel", recurrent_kernel)
    bias = _as_float_array("bias", bias)
    if recurrent_kernel.ndim != 2 or recurrent_kernel.shape[1] != 3 * recurrent_kernel.shape[0]:
        raise ValueError(
            "recurrent_kernel must be 2-D (units, 3*units) in Keras gate order z, r, h; "
            f"got shape {recurrent_kernel.shape}"
        )
    units = recurrent_kernel.shape[0]
    if units == 0:
        raise ValueError("recurrent_kernel must have units > 0; got shape (0, 0)")
    if input_size is None:
        if kernel.ndim != 2 or kernel.shape[0] == 0 or kernel.shape[1] != 3 * units:
            raise ValueError(
                f"kernel must have shape (input_size, 3*units) with units={units}; "
                f"got shape {kernel.shape}"
            )
    elif kernel.shape != (input_size, 3 * units):
        raise ValueError(
            f"kernel must have shape (input_size, 3*units) = ({input_size}, {3 * units}) "
            f"to match x and recurrent_kernel {recurrent_kernel.shape}; got shape {kernel.shape}"
        )
    expected_bias = bias_shape(units, bool(reset_after))
    if bias.shape != expected_bias:
        raise ValueError(
            f"bias must have shape {expected_bias} for reset_after={bool(reset_after)} "
            f"and units={units}; got shape {bias.shape}"
        )
    return kernel, recurrent_kernel, bias


def check_x(x, input_size=None):
    """Validate the input sequence (B, T, I), all sizes > 0, matching ``input_size`` if given."""
    x = _as_float_array("x", x)
    if x.ndim != 3:
        expected = "input_size" if input_size is None else f"input_size={input_size}"
        raise ValueError(f"x must be 3-D (batch, time, {expected}); got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"x must have batch, time and input_size all > 0; got shape {x.shape}")
    if input_size is not None and x.shape[2] != input_size:
        raise ValueError(
            f"x must be 3-D (batch, time, input_size={input_size}); got shape {x.shape}"
        )
    return x


def check_h0(h0, batch, units):
    """Validate the initial state (B, H); None means zeros."""
    if h0 is None:
        return None
    h0 = _as_float_array("h0", h0)
    if h0.shape != (batch, units):
        raise ValueError(
            f"h0 must have shape (batch, units) = ({batch}, {units}); got shape {h0.shape}"
        )
    return h0


def check_gru_inputs(x, kernel, recurrent_kernel, bias, h0=None, reset_after=True):
    """Validate a GRU call; return ``(x, kernel, recurrent_kernel, bias, h0)`` as arrays.

    The arrays keep their own dtypes here: callers decide the compute dtype with
    ``result_dtype`` (the reference always computes in float64).
    """
    x = check_x(x)
    kernel, recurrent_kernel, bias = check_weights(
        kernel, recurrent_kernel, bias, reset_after, input_size=x.shape[2]
    )
    h0 = check_h0(h0, x.shape[0], recurrent_kernel.shape[0])
    return x, kernel, recurrent_kernel, bias, h0


def check_output_grads(d_out, d_h_last, batch, steps, units, dtype):
    """Validate the upstream gradients of ``gru_backward``; None means zeros."""
    if d_out is not None:
        d_out = _as_float_array("d_out", d_out)
        if d_out.shape != (batch, steps, units):
            raise ValueError(
                f"d_out must have shape (batch, time, units) = ({batch}, {steps}, {units}); "
                f"got shape {d_out.shape}"
            )
        d_out = kernel_array(d_out, dtype)
    if d_h_last is not None:
        d_h_last = _as_float_array("d_h_last", d_h_last)
        if d_h_last.shape != (batch, units):
            raise ValueError(
                f"d_h_last must have shape (batch, units) = ({batch}, {units}); "
                f"got shape {d_h_last.shape}"
            )
        d_h_last = kernel_array(d_h_last, dtype)
    return d_out, d_h_last
