"""Losses with Keras' definitions, each with its gradient for training.

Every loss is the mean over the batch of a per-sample loss (Keras' default reduction
``sum_over_batch_size``); for mse, mae, huber and binary crossentropy the per-sample loss is
itself the mean over the last (output) axis, so the value is the mean over all elements.

``binary_crossentropy`` takes probabilities, clipped to [1e-7, 1 - 1e-7] as Keras does. When
the model ends in ``Dense(..., activation="sigmoid")`` the model fuses the two and computes the
loss from the logits (``log(1 + exp(-|z|))`` form, as Keras' TensorFlow backend does), which is
stable where the probabilities saturate. ``sparse_categorical_crossentropy`` likewise fuses with
a softmax output (log-sum-exp on the logits).

``value_and_grad(y_true, y_pred)`` returns ``(loss as a Python float, dloss/dy_pred)``;
``logits_value_and_grad`` does the same with respect to the logits (fused variants).
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "Huber", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy", "get",
]

EPSILON = 1e-7  # Keras backend epsilon


class Loss:
    """Base class. ``loss(y_true, y_pred)`` returns the loss as a float, like Keras."""

    name = "loss"
    #: activation of the last Dense layer with which this loss fuses, if any
    fuses_with: Optional[str] = None
    #: targets are integer class indices (one fewer axis than the predictions)
    sparse = False

    def __call__(self, y_true, y_pred) -> float:
        y_pred = np.asarray(y_pred)
        dtype = y_pred.dtype if y_pred.dtype.kind == "f" else np.float64
        y_pred = y_pred.astype(dtype, copy=False)
        y_true = self.prepare_targets(y_true, y_pred.shape, dtype)
        return self.value_and_grad(y_true, y_pred, grad=False)[0]

    def prepare_targets(self, y_true, pred_shape, dtype) -> np.ndarray:
        """Targets shaped like the predictions (a trailing axis of 1 is added when missing)."""
        y = np.asarray(y_true)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"y must be numeric; got dtype {y.dtype}")
        pred_shape = tuple(pred_shape)
        if y.shape != pred_shape:
            if y.shape == pred_shape[:-1] and pred_shape[-1] == 1:
                y = y.reshape(pred_shape)
            elif y.shape[:1] == pred_shape[:1] and y.size == int(np.prod(pred_shape)):
                y = y.reshape(pred_shape)
            else:
                raise ValueError(
                    f"y has shape {y.shape} but the model outputs shape "
                    f"(samples, ...) = {pred_shape}; loss {self.name!r} needs them to match"
                )
        return np.ascontiguousarray(y, dtype=dtype)

    def value_and_grad(self, y_true, y_pred, grad=True) -> Tuple[float, Optional[np.ndarray]]:
        raise NotImplementedError

    def logits_value_and_grad(self, y_true, logits, grad=True):
        raise NotImplementedError(f"{self.name} does not fuse with an output activation")

    def get_config(self) -> dict:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config() or ''})"


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def value_and_grad(self, y_true, y_pred, grad=True):
        diff = y_pred - y_true
        flat = diff.reshape(-1)
        n = flat.size
        value = float(np.dot(flat, flat)) / n
        if not grad:
            return value, None
        diff *= 2.0 / n
        return value, diff


class MeanAbsoluteError(Loss):
    name = "mean_absolute_error"

    def value_and_grad(self, y_true, y_pred, grad=True):
        diff = y_pred - y_true
        n = diff.size
        value = float(np.abs(diff).sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        g = np.sign(diff)
        g *= 1.0 / n
        return value, g


class MeanAbsolutePercentageError(Loss):
    """Keras ``mean_absolute_percentage_error``: 100 |y - p| / max(|y|, eps), mean over all."""

    name = "mean_absolute_percentage_error"

    def value_and_grad(self, y_true, y_pred, grad=True):
        scale = 100.0 / np.maximum(np.abs(y_true), EPSILON)
        diff = y_pred - y_true
        n = diff.size
        value = float((np.abs(diff) * scale).sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        g = np.sign(diff) * scale
        g *= 1.0 / n
        return value, g.astype(y_pred.dtype, copy=False)


class MeanSquaredLogarithmicError(Loss):
    """Keras ``mean_squared_logarithmic_error``: (log(max(p, eps) + 1) - log(max(y, eps) + 1))^2."""

    name = "mean_squared_logarithmic_error"

    def value_and_grad(self, y_true, y_pred, grad=True):
        p1 = np.maximum(y_pred, EPSILON) + 1.0
        e = np.log(p1) - np.log(np.maximum(y_true, EPSILON) + 1.0)
        n = e.size
        value = float((e * e).sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        g = (2.0 / n) * e / p1
        g *= y_pred > EPSILON  # the max stops the gradient below eps
        return value, g.astype(y_pred.dtype, copy=False)


class Huber(Loss):
    """0.5 e^2 where |e| <= delta, else delta (|e| - 0.5 delta); mean over all elements."""

    name = "huber_loss"

    def __init__(self, delta: float = 1.0):
        if not delta > 0:
            raise ValueError(f"delta must be > 0; got {delta}")
        self.delta = float(delta)

    def value_and_grad(self, y_true, y_pred, grad=True):
        d = self.delta
        diff = y_pred - y_true
        a = np.abs(diff)
        n = diff.size
        per = np.where(a <= d, 0.5 * diff * diff, d * a - 0.5 * d * d)
        value = float(per.sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        g = np.clip(diff, -d, d)
        g *= 1.0 / n
        return value, g

    def get_config(self) -> dict:
        return {"delta": self.delta}


class BinaryCrossentropy(Loss):
    """Keras ``binary_crossentropy`` on probabilities (clipped to [eps, 1 - eps])."""

    name = "binary_crossentropy"
    fuses_with = "sigmoid"

    def value_and_grad(self, y_true, y_pred, grad=True):
        p = np.clip(y_pred, EPSILON, 1.0 - EPSILON)
        n = p.size
        per = y_true * np.log(p) + (1.0 - y_true) * np.log1p(-p)
        value = -float(per.sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        g = ((1.0 - y_true) / (1.0 - p) - y_true / p) / n
        g *= (y_pred >= EPSILON) & (y_pred <= 1.0 - EPSILON)  # the clip stops the gradient
        return value, g.astype(y_pred.dtype, copy=False)

    def logits_value_and_grad(self, y_true, logits, grad=True):
        z = logits
        n = z.size
        e = np.exp(-np.abs(z))  # both the loss and sigmoid(z) below, without overflow
        per = np.maximum(z, 0) - z * y_true + np.log1p(e)
        value = float(per.sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        s = 1.0 / (1.0 + e)
        p = np.where(z >= 0, s, e * s)
        p -= y_true
        p *= 1.0 / n
        return value, p.astype(z.dtype, copy=False)


class CategoricalCrossentropy(Loss):
    """Keras ``categorical_crossentropy``: one-hot (or soft) targets, probabilities over the last
    axis (normalised to sum 1, clipped to [eps, 1 - eps]); fuses with a softmax output."""

    name = "categorical_crossentropy"
    fuses_with = "softmax"

    def value_and_grad(self, y_true, y_pred, grad=True):
        total = y_pred.sum(axis=-1, keepdims=True)
        raw = y_pred / total
        q = np.clip(raw, EPSILON, 1.0 - EPSILON)
        n = int(np.prod(y_pred.shape[:-1]))
        value = -float((y_true * np.log(q)).sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        # d/dp_k of -sum_j y_j log(p_j / S) = -y_k / p_k + sum_j y_j / S (unclipped j only)
        live = (raw >= EPSILON) & (raw <= 1.0 - EPSILON)
        y_live = y_true * live
        g = y_live.sum(axis=-1, keepdims=True) / total - y_live / y_pred
        g *= 1.0 / n
        return value, g.astype(y_pred.dtype, copy=False)

    def logits_value_and_grad(self, y_true, logits, grad=True):
        shifted = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=-1, keepdims=True)
        log_softmax = shifted - np.log(s)
        n = int(np.prod(logits.shape[:-1]))
        value = -float((y_true * log_softmax).sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        e /= s
        g = e * y_true.sum(axis=-1, keepdims=True) - y_true
        g *= 1.0 / n
        return value, g.astype(logits.dtype, copy=False)


class SparseCategoricalCrossentropy(Loss):
    """Keras ``sparse_categorical_crossentropy``: integer labels, probabilities over the last axis."""

    name = "sparse_categorical_crossentropy"
    fuses_with = "softmax"
    sparse = True

    def prepare_targets(self, y_true, pred_shape, dtype) -> np.ndarray:
        y = np.asarray(y_true)
        pred_shape = tuple(pred_shape)
        if y.dtype.kind not in "fiub":
            raise TypeError(f"y must hold integer class labels; got dtype {y.dtype}")
        if y.shape == pred_shape[:-1] + (1,) and len(pred_shape) >= 2:
            y = y.reshape(pred_shape[:-1])
        if y.shape != pred_shape[:-1]:
            raise ValueError(
                f"y has shape {y.shape} but sparse_categorical_crossentropy needs integer labels "
                f"of shape {pred_shape[:-1]} for model outputs of shape {pred_shape}"
            )
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise ValueError("y must hold integer class labels; got non-integer values")
        labels = y.astype(np.intp)
        n_classes = pred_shape[-1]
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(
                f"y holds labels outside [0, {n_classes}) for a model with {n_classes} outputs: "
                f"min {labels.min()}, max {labels.max()}"
            )
        return labels

    @staticmethod
    def _pick(a, labels):
        flat = a.reshape(-1, a.shape[-1])
        return flat, flat[np.arange(flat.shape[0]), labels.reshape(-1)]

    def value_and_grad(self, y_true, y_pred, grad=True):
        total = y_pred.sum(axis=-1, keepdims=True)
        q = np.clip(y_pred / total, EPSILON, 1.0 - EPSILON)
        flat, picked = self._pick(q, y_true)
        n = flat.shape[0]
        value = -float(np.log(picked).sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        # d/dp_j of -log(p_y / S) = 1/S - [j == y] / p_y (zero where the clip is active)
        g = np.broadcast_to(1.0 / total, y_pred.shape).reshape(-1, y_pred.shape[-1]).copy()
        rows = np.arange(n)
        lab = y_true.reshape(-1)
        pflat = y_pred.reshape(-1, y_pred.shape[-1])
        g[rows, lab] -= 1.0 / pflat[rows, lab]
        raw = (y_pred / total).reshape(-1, y_pred.shape[-1])[rows, lab]
        g *= ((raw >= EPSILON) & (raw <= 1.0 - EPSILON))[:, None]
        g *= 1.0 / n
        return value, g.reshape(y_pred.shape).astype(y_pred.dtype, copy=False)

    def logits_value_and_grad(self, y_true, logits, grad=True):
        z = logits.reshape(-1, logits.shape[-1])
        shifted = z - z.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=-1, keepdims=True)
        rows = np.arange(z.shape[0])
        lab = y_true.reshape(-1)
        n = z.shape[0]
        value = float((np.log(s[:, 0]) - shifted[rows, lab]).sum(dtype=np.float64)) / n
        if not grad:
            return value, None
        e /= s
        e[rows, lab] -= 1.0
        e *= 1.0 / n
        return value, e.reshape(logits.shape).astype(logits.dtype, copy=False)


_ALIASES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
    "mape": MeanAbsolutePercentageError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def get(identifier: Union[str, Loss]) -> Loss:
    """A loss by Keras name (``"mse"``, ``"mae"``, ``"mape"``, ``"msle"``, ``"huber"``,
    ``"binary_crossentropy"``, ``"categorical_crossentropy"``,
    ``"sparse_categorical_crossentropy"``) or a ``Loss`` instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _ALIASES:
        return _ALIASES[identifier.lower()]()
    raise ValueError(f"unknown loss {identifier!r}; expected one of {sorted(_ALIASES)} or a Loss")


def serialize(loss: Loss) -> dict:
    """``{"name": ..., "config": ...}`` for saving; the inverse of ``deserialize``."""
    if type(loss) not in _ALIASES.values():
        raise ValueError(f"cannot serialise custom loss {loss!r}; use a built-in loss")
    return {"name": type(loss).name, "config": loss.get_config()}


def deserialize(config: dict) -> Loss:
    return _ALIASES[config["name"]](**config.get("config", {}))
