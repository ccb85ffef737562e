"""Training callbacks with Keras semantics: ``Callback``, ``History``, ``EarlyStopping``.

Hooks called by ``Sequential.fit``: ``on_train_begin/end(logs)``, ``on_epoch_begin(epoch, logs)``,
``on_epoch_end(epoch, logs)`` (logs hold ``loss``, metrics and their ``val_`` versions) and
``on_train_batch_begin/end(batch, logs)``. Unlike Keras, whose batch logs hold the running mean,
``on_train_batch_end`` gets the loss of that batch alone in ``logs["loss"]``; the epoch's
``loss`` is the mean of those values. Batch hooks are called only when a callback overrides
them, so plain fits pay nothing for them. Set ``self.model.stop_training = True`` to stop.
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional

import numpy as np

__all__ = ["Callback", "History", "EarlyStopping", "LambdaCallback"]


class Callback:
    """Base class; override the hooks you need. ``self.model`` is set by ``fit``."""

    def __init__(self):
        self.model = None
        self.params: dict = {}

    def set_model(self, model) -> None:
        self.model = model

    def set_params(self, params: dict) -> None:
        self.params = params

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        pass

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_train_batch_begin(self, batch: int, logs: Optional[dict] = None) -> None:
        pass

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        pass


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, on_train_begin=None, on_train_end=None, on_epoch_begin=None,
                 on_epoch_end=None, on_train_batch_begin=None, on_train_batch_end=None):
        super().__init__()
        for name, fn in (("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_batch_begin", on_train_batch_begin),
                         ("on_train_batch_end", on_train_batch_end)):
            if fn is not None:
                setattr(self, name, fn)


class History(Callback):
    """What ``fit`` returns: ``history`` (dict of per-epoch lists) and ``epoch`` (indices)."""

    def __init__(self):
        super().__init__()
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


class EarlyStopping(Callback):
    """Stop when a monitored quantity stops improving (Keras 3 ``EarlyStopping``).

    An epoch improves when ``current - min_delta < best`` (mode min) or
    ``current + min_delta > best`` (mode max); ``auto`` picks max for accuracy-like names and
    min otherwise. After ``patience`` epochs without improvement (and never at epoch 0)
    training stops. With ``restore_best_weights`` the weights of the best epoch are restored
    when training ends, stopped early or not (Keras 3 behaviour). ``baseline``: the wait only
    resets on epochs that also beat the baseline. ``start_from_epoch``: epochs ignored first.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", baseline: Optional[float] = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0; got {patience}")
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.mode = mode
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        if mode == "max" or (mode == "auto" and _is_higher_better(monitor)):
            self._better = np.greater
            self._delta = self.min_delta
        else:
            self._better = np.less
            self._delta = -self.min_delta
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        self.best_epoch = 0
        self.best = -np.inf if self._better is np.greater else np.inf

    def _is_improvement(self, value, reference) -> bool:
        return bool(self._better(value - self._delta, reference))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(logs)}",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


def _is_higher_better(monitor: str) -> bool:
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return name in ("acc", "accuracy", "auc") or name.endswith("accuracy") or name.endswith("_acc")
