"""Pure-NumPy GRU forward and backward in float64: the oracle every kernel is tested against.

Written for reading, not speed: one time step at a time, one line per equation. Weights use
the Keras layout, gates in the order z, r, h:

    kernel            (I, 3H)   columns [Wz | Wr | Wh]
    recurrent_kernel  (H, 3H)   columns [Uz | Ur | Uh]
    bias              (2, 3H)   row 0 input bias, row 1 recurrent bias   (reset_after=True)
                      (3H,)                                              (reset_after=False)

    z  = sigmoid(x Wz + h Uz + bz)
    r  = sigmoid(x Wr + h Ur + br)
    n  = tanh(x Wh + bxh + r * (h Uh + bhh))     reset_after=True  (PyTorch, Keras 2+, cuDNN)
    n  = tanh(x Wh + (r * h) Uh + bh)            reset_after=False (Cho et al. 2014)
    h' = z * h + (1 - z) * n

With per-gate dropout masks (Keras 3 ``GRU(recurrent_dropout>0)``, its implementation=1),
``input_masks`` (3, B, I) and ``recurrent_masks`` (3, B, H) hold one mask per gate z, r, h,
the same at every step: gate g sees ``x * input_masks[g]`` and ``h * recurrent_masks[g]``
(for n with reset_after=False: ``(r * (h * recurrent_masks[2])) Uh``), while the blend
``h' = z * h + (1 - z) * n`` uses the unmasked h.
"""
from __future__ import annotations

import numpy as np

from ._validation import GRUGradients, check_gru_inputs, check_output_grads

__all__ = ["gru_forward", "gru_forward_train", "gru_backward", "GRUGradients"]


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _split_gates(m, units):
    return m[..., :units], m[..., units : 2 * units], m[..., 2 * units :]


def gru_forward(x, kernel, recurrent_kernel, bias, h0=None, reset_after=True):
    """Run the GRU over ``x`` (B, T, I); return ``(outputs (B, T, H), last_state (B, H))``."""
    out, h_last, _ = gru_forward_train(x, kernel, recurrent_kernel, bias, h0, reset_after)
    return out, h_last


def _gate_masks(masks, batch, size, name):
    if masks is None:
        return np.ones((3, batch, size))
    masks = np.asarray(masks, dtype=np.float64)
    if masks.shape != (3, batch, size):
        raise ValueError(f"{name} must have shape {(3, batch, size)}; got shape {masks.shape}")
    return masks


def gru_forward_train(x, kernel, recurrent_kernel, bias, h0=None, reset_after=True,
                      input_masks=None, recurrent_masks=None):
    """Like ``gru_forward`` but also return the tape that ``gru_backward`` needs.

    ``input_masks`` (3, B, I) / ``recurrent_masks`` (3, B, H): optional per-gate dropout
    masks (see the module docstring); None = no dropout there."""
    x, kernel, recurrent_kernel, bias, h0 = check_gru_inputs(
        x, kernel, recurrent_kernel, bias, h0, reset_after
    )
    f64 = np.float64
    x, W, U, b = (a.astype(f64) for a in (x, kernel, recurrent_kernel, bias))
    batch, steps, _ = x.shape
    units = U.shape[0]
    h = np.zeros((batch, units)) if h0 is None else h0.astype(f64)
    mx = _gate_masks(input_masks, batch, x.shape[2], "input_masks")
    mh = _gate_masks(recurrent_masks, batch, units, "recurrent_masks")

    if reset_after:
        b_in, b_rec = b[0], b[1]
    else:
        b_in, b_rec = b, np.zeros(3 * units)
    Uz, Ur, Uh = _split_gates(U, units)
    bz_rec, br_rec, bh_rec = _split_gates(b_rec, units)

    tape = {
        "x": x, "kernel": W, "recurrent_kernel": U, "reset_after": bool(reset_after),
        "h_prev": [], "z": [], "r": [], "n": [], "h_rec": [],
        "input_masks": mx, "recurrent_masks": mh,
    }
    Wz, Wr, Wh = _split_gates(W, units)
    bz_in, br_in, bh_in = _split_gates(b_in, units)
    outputs = np.empty((batch, steps, units))
    for t in range(steps):
        xz = (x[:, t] * mx[0]) @ Wz + bz_in
        xr = (x[:, t] * mx[1]) @ Wr + br_in
        xh = (x[:, t] * mx[2]) @ Wh + bh_in
        z = sigmoid(xz + (h * mh[0]) @ Uz + bz_rec)
        r = sigmoid(xr + (h * mh[1]) @ Ur + br_rec)
        if reset_after:
            h_rec = (h * mh[2]) @ Uh + bh_rec  # the recurrent part that r gates
            n = np.tanh(xh + r * h_rec)
        else:
            h_rec = r * (h * mh[2])  # the reset state that meets Uh
            n = np.tanh(xh + h_rec @ Uh)
        for key, value in (("h_prev", h), ("z", z), ("r", r), ("n", n), ("h_rec", h_rec)):
            tape[key].append(value)
        h = z * h + (1.0 - z) * n
        outputs[:, t] = h
    return outputs, h.copy(), tape


def gru_backward(tape, d_out=None, d_h_last=None):
    """Backpropagate through time.

    ``d_out`` (B, T, H) is dL/d(outputs), ``d_h_last`` (B, H) is dL/d(last state); either may
    be None (zeros). Returns ``GRUGradients(dx, dh0, dkernel, drecurrent_kernel, dbias)``.
    """
    x, W, U = tape["x"], tape["kernel"], tape["recurrent_kernel"]
    reset_after = tape["reset_after"]
    batch, steps, _ = x.shape
    units = U.shape[0]
    d_out, d_h_last = check_output_grads(d_out, d_h_last, batch, steps, units, np.float64)
    Uz, Ur, Uh = _split_gates(U, units)
    mx, mh = tape["input_masks"], tape["recurrent_masks"]

    dx = np.zeros_like(x)
    dW = np.zeros_like(W)
    dU = np.zeros_like(U)
    db_in = np.zeros(3 * units)
    db_rec = np.zeros(3 * units)
    dh = np.zeros((batch, units)) if d_h_last is None else d_h_last.copy()
    for t in reversed(range(steps)):
        if d_out is not None:
            dh = dh + d_out[:, t]
        h_prev, z, r, n, h_rec = (tape[k][t] for k in ("h_prev", "z", "r", "n", "h_rec"))
        # h' = z h + (1 - z) n
        dz = dh * (h_prev - n) * z * (1.0 - z)  # through sigmoid
        dn = dh * (1.0 - z) * (1.0 - n * n)  # through tanh
        dh_prev = dh * z
        if reset_after:
            dr = dn * h_rec * r * (1.0 - r)
            dh_rec = dn * r  # gradient of h Uh + bhh
            dU[:, 2 * units :] += (h_prev * mh[2]).T @ dh_rec
            dh_prev += (dh_rec @ Uh.T) * mh[2]
            db_rec += np.concatenate([dz.sum(0), dr.sum(0), dh_rec.sum(0)])
        else:
            d_reset_state = dn @ Uh.T  # gradient of r * h
            dr = d_reset_state * h_prev * mh[2] * r * (1.0 - r)
            dU[:, 2 * units :] += h_rec.T @ dn
            dh_prev += d_reset_state * r * mh[2]
        dU[:, :units] += (h_prev * mh[0]).T @ dz
        dU[:, units : 2 * units] += (h_prev * mh[1]).T @ dr
        dh_prev += (dz @ Uz.T) * mh[0] + (dr @ Ur.T) * mh[1]
        d_gates = np.concatenate([dz, dr, dn], axis=1)  # pre-activation gradients
        for g, dg in enumerate((dz, dr, dn)):
            cols = slice(g * units, (g + 1) * units)
            dW[:, cols] += (x[:, t] * mx[g]).T @ dg
            dx[:, t] += (dg @ W[:, cols].T) * mx[g]
        db_in += d_gates.sum(0)
        dh = dh_prev
    dbias = np.stack([db_in, db_rec]) if reset_after else db_in
    return GRUGradients(dx, dh, dW, dU, dbias)
