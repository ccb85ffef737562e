"""``Sequential``: a Keras-style stack of ``GRU`` and ``Dense`` layers that trains on the C++ kernels.

    m = Sequential([GRU(50), Dense(1)])
    m.compile(optimizer=Adam(learning_rate=1e-3), loss="mse", metrics=["mae"])
    hist = m.fit(X, y, epochs=10, batch_size=32, validation_split=0.1, seed=0)
    m.predict(X); m.evaluate(X, y); m.save("model.npz"); load_model("model.npz")  # fastgru.saving

Design notes:

* The input shape is inferred on the first ``fit`` / ``predict`` / ``set_weights``; only the
  feature count is fixed, the number of timesteps may vary between calls.
* After the build every weight is a view into one flat parameter buffer and every gradient a
  view into one flat gradient buffer, so an optimizer step is one pass over one array (a
  fused C++ pass for Adam). The per-batch Python work is the layer calls, the loss and that step.
* ``loss`` in ``History`` is the mean of the epoch's batch losses weighted by their rows
  (what Keras 3 prints: a short last batch counts less);
  metrics are sample-weighted means over the epoch; ``val_loss`` and ``evaluate`` are the
  exact (sample-weighted) loss over the whole set.
* Diverging fits: when a batch loss is NaN or inf, training stops, the weights from before
  the last optimizer step (the last ones that gave a finite loss) are restored, the epoch's
  ``loss`` is recorded as NaN, and a ``RuntimeWarning`` is emitted.
* ``seed`` makes a fit reproducible bit for bit on one machine and thread count: it seeds
  the initialisers (for layers without their own seed) and the shuffling.
* ``save`` writes one ``.npz`` file (weights plus a JSON config, no pickle) atomically.
* Threads: every weight write (``set_weights``, a layer's ``set_weights``, each fit step, the
  rollback of a diverged fit) holds the model's lock (``updating()``) and ends by publishing a
  new ``fastgru.inference.InferenceSnapshot`` in one assignment. ``predict`` and streams read
  the current snapshot without locking; ``evaluate`` and models that run in Python (a layer
  without a C++ form) hold the lock (``reading()``), so they wait for one fit step at most.
"""
from __future__ import annotations

import math
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from ._validation import check_bool, check_positive_int, check_seed, kernel_array
from .callbacks import Callback, History
from .inference import InferenceSnapshot
from .keras_layers import Input
from .progress import ProgressBar, format_logs, is_terminal
from .layers import Dense, Layer, check_weight_arrays
from .streaming import Stream

__all__ = ["Sequential"]

# predict/evaluate run at most this many rows per C++ call: big enough that the per-call cost
# vanishes, small enough that the per-call buffers (rows x steps x units) stay modest.
_PREDICT_CHUNK = 2048


def _overrides(cb: Callback, hook: str) -> bool:
    return getattr(type(cb), hook, None) is not getattr(Callback, hook) or hook in vars(cb)


# --------------------------------------------------------------------------- the model
class Sequential:
    """A linear stack of layers: ``Sequential([GRU(50), Dense(1)])``."""

    def __init__(self, layers: Optional[Sequence[Layer]] = None, name: str = "sequential"):
        self.name = name
        self.layers: Sequence[Layer] = []  # a tuple once built
        self.built = False
        self.input_shape: Optional[tuple] = None
        self.optimizer: Optional[optimizers_mod.Optimizer] = None
        self.loss: Optional[losses_mod.Loss] = None
        self.metrics_names: List[str] = []
        self._metrics: list = []  # names or fastgru.metrics.Metric, as given to compile
        self.declared_input_shape: Optional[tuple] = None  # from Input(shape) or input_shape=
        self._declared_dtype: Optional[np.dtype] = None  # from Input(dtype=)
        self.stop_training = False
        self.history: Optional[History] = None
        self._params: Optional[np.ndarray] = None
        self._grads: Optional[np.ndarray] = None
        self._segments: List[Tuple[int, int]] = []
        self._lock = threading.RLock()  # held by weight writers, evaluate and the Python path
        self._write_depth = 0  # nested updating() blocks; the outermost publishes
        self._snapshot: Optional[InferenceSnapshot] = None  # what predict and streams read
        for layer in layers or []:
            self.add(layer)

    # -- copies -----------------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_lock"] = None  # locks and native objects: made anew by __setstate__
        state["_snapshot"] = None
        state["_write_depth"] = 0
        # The flat buffers are rebuilt from the layers' weights by __setstate__ (_flatten).
        state["_params"] = state["_grads"] = state["_backup"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        state.pop("_inference", None)  # the cache of pickles made before snapshots
        state.setdefault("_metrics", list(state.get("metrics_names", [])))  # older pickles
        state.setdefault("declared_input_shape", None)
        state.setdefault("_declared_dtype", None)
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._write_depth = 0
        self._snapshot = None
        if self.built:
            # pickle and deepcopy give each layer weight its own array: make them views of
            # the one flat buffer again (what the optimizer steps).
            self._flatten()
            self._publish()

    # -- structure --------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        """Append a layer (before the model is built); ``Input(shape)`` first, or a first
        layer with ``input_shape=``, gives the model its input shape (as in Keras)."""
        if isinstance(layer, Input):
            if self.layers or self.declared_input_shape is not None:
                raise ValueError("Input(shape) must come first in a Sequential, and only once")
            self.declared_input_shape = layer.shape[1:]
            self._declared_dtype = layer.dtype
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential takes fastgru layers (GRU, Dense); got {type(layer).__name__}")
        if self.built:
            raise RuntimeError("cannot add layers to a model that is already built")
        declared_dtype = self._declared_dtype
        if declared_dtype is not None and layer.dtype != declared_dtype:
            raise ValueError(
                f"Input(dtype={declared_dtype.name!r}) but the {type(layer).__name__} layer computes in "
                f"{layer.dtype.name}; give the layers dtype={declared_dtype.name!r} too"
            )
        if getattr(layer, "return_state", False):
            raise ValueError(
                f"layer {layer.name!r} has return_state=True: it returns [output, state], but a "
                "Sequential passes one output from layer to layer (Keras refuses it too). Call "
                "the GRU directly for its state, or use model.stream() for a running state"
            )
        if layer.declared_input_shape is not None:
            if self.layers or self.declared_input_shape is not None:
                raise ValueError(
                    f"layer {layer.name!r} has input_shape=, but only the first layer of a "
                    "Sequential (with no Input before it) can declare the input shape"
                )
            self.declared_input_shape = layer.declared_input_shape
        if any(layer is other for other in self.layers):
            raise ValueError("the same layer object cannot appear twice in a model")
        layer.check_unowned_or(self)
        if layer.name is None:
            base = type(layer).__name__.lower()
            taken = {l.name for l in self.layers}
            name, i = base, 0
            while name in taken:
                i += 1
                name = f"{base}_{i}"
            layer.name = name
        self.layers.append(layer)

    @property
    def dtype(self) -> np.dtype:
        return self.layers[0].dtype if self.layers else np.dtype(np.float32)

    def build(self, input_shape, rng: Optional[np.random.Generator] = None) -> None:
        """Build every layer for ``input_shape`` (e.g. ``(None, timesteps, features)``)."""
        with self._lock:
            self._build(input_shape, rng)

    def _build(self, input_shape, rng: Optional[np.random.Generator]) -> None:
        if not self.layers:
            raise ValueError("the model has no layers")
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
        if self.layers[0].sequence_input and len(input_shape) != 3:
            raise ValueError(
                f"the first layer is a GRU: input shape must be (samples, timesteps, features); "
                f"got {input_shape}"
            )
        dtypes = {l.dtype for l in self.layers}
        if len(dtypes) > 1:
            raise ValueError(f"all layers must share one dtype; got {sorted(d.name for d in dtypes)}")
        if rng is None:
            rng = np.random.default_rng()
        shape = input_shape
        for i, layer in enumerate(self.layers):
            if layer.sequence_input and len(shape) != 3:
                raise ValueError(
                    f"layer {layer.name!r} (GRU) gets input of shape {shape} from the layer before; "
                    "a GRU that feeds another GRU needs return_sequences=True"
                )
            if layer.built:
                if layer.input_size != shape[-1]:
                    raise ValueError(
                        f"layer {layer.name!r} was built for {layer.input_size} input features but "
                        f"gets {shape[-1]}"
                    )
            else:
                layer.build(shape, rng=rng)
            shape = layer.compute_output_shape(shape)
        # A tuple from now on: the flat weight buffer, the optimizer state and the C++ copy
        # all belong to these layers, so replacing one in place would leave them stale.
        self.layers = tuple(self.layers)
        self._flatten()
        # only the feature count is fixed: samples and timesteps may vary between calls
        self.input_shape = (None,) * (len(input_shape) - 1) + (input_shape[-1],)
        if self.declared_input_shape is not None:  # shown as declared (Keras' summary)
            self.input_shape = (None,) + tuple(self.declared_input_shape)
        self.built = True
        if self.optimizer is not None:
            self.optimizer.build(self._params, self._segments)
        if self._write_depth == 0:  # else the enclosing updating() publishes, once
            self._publish()

    def _flatten(self) -> None:
        """Move every weight into one flat buffer (and every gradient into another)."""
        for layer in self.layers:  # before anything is rebound: sharing is refused whole
            layer.check_unowned_or(self)
        weights = [layer.weights for layer in self.layers]
        total = sum(w.size for ws in weights for w in ws)
        params = np.empty(total, dtype=self.dtype)
        grads = np.zeros(total, dtype=self.dtype)
        offset = 0
        self._segments = []
        for layer, ws in zip(self.layers, weights):
            wviews, gviews = [], []
            for w in ws:
                stop = offset + w.size
                wviews.append(params[offset:stop].reshape(w.shape))
                gviews.append(grads[offset:stop].reshape(w.shape))
                self._segments.append((offset, stop))
                offset = stop
            layer.bind(self, wviews, gviews)
        self._params, self._grads = params, grads
        self._backup = params.copy()

    def _output_shape(self, input_shape) -> tuple:
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
        return shape

    @property
    def output_shape(self) -> Optional[tuple]:
        return self._output_shape(self.input_shape) if self.built else None

    def count_params(self) -> int:
        self.require_built("count_params")
        return int(self._params.size)

    def build_from_declared_shape(self, rng: Optional[np.random.Generator] = None) -> bool:
        """Build from ``Input(shape)`` or the first layer's ``input_shape=`` if the model is
        not built yet and has one (Keras builds such a model at once). True when built."""
        if not self.built and self.declared_input_shape is not None and self.layers:
            self.build((None,) + tuple(self.declared_input_shape), rng=rng)
        return self.built

    def require_built(self, what: str) -> None:
        """Build from a declared input shape if there is one; else raise naming ``what``."""
        if not self.built and self.build_from_declared_shape():
            return
        if not self.built:
            raise RuntimeError(
                f"{what}: the model has not been built yet; call fit() first (or set_weights(), "
                "or build((None, timesteps, features)))"
            )

    # -- weights ----------------------------------------------------------------------
    def get_weights(self) -> List[np.ndarray]:
        """All weights in Keras order and shapes (copies); [] before the model is built."""
        with self._lock:  # not halfway through a fit step
            self.build_from_declared_shape()
            return [w for layer in self.layers for w in layer.get_weights()]

    @property
    def weights(self) -> List[np.ndarray]:
        """The live weights in Keras order, read-only views (write with ``set_weights``);
        [] before the model is built. Keras' ``model.weights``."""
        self.build_from_declared_shape()
        return [w for layer in self.layers for w in layer.weights] if self.built else []

    @property
    def trainable_weights(self) -> List[np.ndarray]:
        """Every weight: fastgru trains all of them (no frozen layers)."""
        return self.weights

    @property
    def non_trainable_weights(self) -> List[np.ndarray]:
        return []

    def save_weights(self, path) -> None:
        """Write the weights alone (Keras order) to ``path``, an ``.npz`` file written atomically;
        ``load_weights`` reads it back into a model of the same layers. Keras' ``.weights.h5``
        is HDF5, which fastgru does not write: such a name is refused, not silently used."""
        from .saving import save_weights

        save_weights(self, path)

    def load_weights(self, path) -> None:
        """Load weights written by ``save_weights`` (or the weights of a ``save`` file) into
        this model; an unbuilt model is built from them (see ``set_weights``). The file is
        read as untrusted (see ``fastgru.saving``)."""
        from .saving import load_weights

        load_weights(self, path)

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load weights in Keras order and shapes, e.g. a Keras model's ``get_weights()``.

        An unbuilt model is built first, its input size taken from the first kernel.
        """
        weights = list(weights)
        with self.updating():  # one new snapshot, whole; never between two fit steps' halves
            self.build_from_declared_shape()
            if not self.built:
                if not weights or np.ndim(weights[0]) != 2:
                    raise ValueError("set_weights on an unbuilt model needs the first layer's kernel first")
                features = int(np.shape(weights[0])[0])
                shape = (None, None, features) if self.layers[0].sequence_input else (None, features)
                self.build(shape)
            expected = [s for layer in self.layers for s in layer.weight_shapes()]
            if len(weights) != len(expected):
                raise ValueError(
                    f"the model has {len(expected)} weight arrays with shapes {expected}; "
                    f"got {len(weights)} arrays"
                )
            arrays = check_weight_arrays(weights, expected, "the model's", self.dtype)
            for (start, stop), src in zip(self._segments, arrays):
                self._params[start:stop] = src.reshape(-1)
            for layer in self.layers:
                layer.weights_written()
            # a fit running in another thread rolls back to these if its next step diverges
            np.copyto(self._backup, self._params)

    # -- the inference snapshot and the lock ------------------------------------------
    @contextmanager
    def updating(self) -> Iterator[None]:
        """Hold the model's lock while writing weights; when the outermost ``updating``
        block ends (also on error) a new inference snapshot is published. Every writer of
        weights uses it: set_weights, a bound layer's set_weights or config setters, fit."""
        with self._lock:
            self._write_depth += 1
            try:
                yield
            finally:
                self._write_depth -= 1
                if self._write_depth == 0 and self.built:
                    self._publish()

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the model's lock while running the layers' own ``call`` on the live weights
        (evaluate, and predict or streams of models C++ cannot run): writers wait."""
        with self._lock:
            yield

    def inference_snapshot(self) -> Optional[InferenceSnapshot]:
        """The current immutable snapshot of the weights (None before the build). Take it
        once per call: it stays valid however the weights change after."""
        return self._snapshot

    def _publish(self) -> None:
        frozen = self._params.copy()
        frozen.flags.writeable = False
        weights, k = [], 0
        for layer in self.layers:
            ws = []
            for shape in layer.weight_shapes():
                start, stop = self._segments[k]
                ws.append(frozen[start:stop].reshape(shape))
                k += 1
            weights.append(ws)
        version = self._snapshot.version + 1 if self._snapshot is not None else 1
        self._snapshot = InferenceSnapshot(version, self.layers, weights, self.dtype)

    # -- compile ----------------------------------------------------------------------
    def compile(self, optimizer="adam", loss="mse", metrics: Optional[Sequence[str]] = None) -> None:
        """Choose the optimizer (``"adam"``, ``"adamw"``, ``"sgd"``, ``"rmsprop"``, an instance),
        the loss (a Keras name or a Loss) and metrics (Keras names or fastgru.metrics.Metric)."""
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str, metrics_mod.Metric)):
            metrics = [metrics]
        for m in metrics:
            metrics_mod.check(m)
        self._metrics = list(metrics)
        self.metrics_names = [metrics_mod.log_name(m) for m in metrics]
        if self.built:
            self.optimizer.build(self._params, self._segments)

    @property
    def compiled_metrics(self) -> list:
        """The metrics given to ``compile`` (names or ``fastgru.metrics.Metric`` objects)."""
        return list(self._metrics)

    def _require_compiled(self, what: str) -> None:
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"{what}: compile the model first, e.g. model.compile(optimizer='adam', loss='mse')")

    def _fused(self) -> bool:
        last = self.layers[-1]
        return (
            isinstance(last, Dense)
            and self.loss is not None
            and self.loss.fuses_with is not None
            and last.activation == self.loss.fuses_with
        )

    # -- data checks ------------------------------------------------------------------
    def _check_x(self, X, name: str = "X") -> np.ndarray:
        if isinstance(X, (list, tuple)) or hasattr(X, "to_numpy"):
            X = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X)
        X = np.asarray(X)
        if X.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be numeric; got dtype {X.dtype}")
        if not self.layers:
            raise ValueError("the model has no layers")
        if self.layers[0].sequence_input:
            if X.ndim != 3:
                hint = " (add a feature axis, e.g. X[..., None])" if X.ndim == 2 else ""
                raise ValueError(
                    f"{name} must be 3-D (samples, timesteps, features) for a model starting with "
                    f"a GRU; got shape {X.shape}{hint}"
                )
        elif X.ndim < 2:
            raise ValueError(f"{name} must be at least 2-D (samples, features); got shape {X.shape}")
        if any(d == 0 for d in X.shape):
            raise ValueError(f"{name} must not be empty; got shape {X.shape}")
        if self.built and self.layers[0].input_size != X.shape[-1]:
            raise ValueError(
                f"{name} has {X.shape[-1]} features (shape {X.shape}) but the model was built for "
                f"{self.layers[0].input_size} features, i.e. input shape {self.input_shape}"
            )
        X = kernel_array(X, self.dtype)
        if not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or inf values")
        return X

    def _check_y(self, y, X: np.ndarray, name: str = "y", x_name: str = "X") -> np.ndarray:
        if hasattr(y, "to_numpy"):
            y = y.to_numpy()
        y = np.asarray(y)
        if y.ndim == 0:
            raise ValueError(f"{name} must have one entry per sample; got a scalar")
        if len(y) != len(X):
            raise ValueError(
                f"{x_name} and {name} must have the same number of samples; got {len(X)} and {len(y)}"
            )
        if y.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be numeric; got dtype {y.dtype}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError(f"{name} contains NaN or inf values")
        pred_shape = self._output_shape(X.shape)
        return self.loss.prepare_targets(y, pred_shape, self.dtype)

    # -- forward ----------------------------------------------------------------------
    def _forward(self, X: np.ndarray, logits: bool = False) -> np.ndarray:
        a = X
        for layer in self.layers[:-1]:
            a = layer.call(a)
        last = self.layers[-1]
        if logits:
            return last.affine(a)
        return last.call(a)

    def stream(self, batch_size: int = 1):
        """A stateful one-reading-at-a-time view for real-time use: ``st.step(x_t)``,
        ``st.reset()``, ``st.state`` (see ``fastgru.streaming.Stream``)."""
        return Stream(self, batch_size)

    def predict(self, X, batch_size: Optional[int] = None, verbose: int = 0) -> np.ndarray:
        """Model outputs for ``X`` (in chunks of ``batch_size`` samples; None = large chunks)."""
        # A one-window call costs microseconds, so this path does no Python work it can skip:
        # the current snapshot's C++ copy (one read: the weights of one version for the whole
        # call), and an array of the model's dtype straight to C++, which checks shape,
        # layout, alignment and values (NaN/inf) itself. What C++ refuses comes back through
        # the checks below, which convert it or say what is wrong.
        snapshot = self._snapshot
        runner = snapshot.runner if snapshot is not None else None
        if (runner is not None and batch_size is None and type(X) is np.ndarray
                and X.dtype == self.layers[0].dtype and X.ndim == 3 and len(X) <= _PREDICT_CHUNK):
            try:
                return runner.predict(X)
            except (TypeError, ValueError):
                pass
        X = self._check_x(X)
        if not self.built and not self.build_from_declared_shape():
            self.build((None,) + X.shape[1:])  # Keras builds an unbuilt model from the input
        chunk = _PREDICT_CHUNK if batch_size is None else check_positive_int("batch_size", batch_size)
        if runner is None:
            with self.reading():
                return self._forward_chunks(self._forward, X, chunk)
        return self._forward_chunks(runner.predict, X, chunk)

    @staticmethod
    def _forward_chunks(forward, X: np.ndarray, chunk: int) -> np.ndarray:
        if len(X) <= chunk:
            return forward(X)
        return np.concatenate([forward(X[i:i + chunk]) for i in range(0, len(X), chunk)])

    def __call__(self, X) -> np.ndarray:
        return self.predict(X)

    def _evaluate_arrays(self, X: np.ndarray, y: np.ndarray, chunk: int = _PREDICT_CHUNK) -> Dict[str, float]:
        fused = self._fused()
        n = len(X)
        loss_sum = 0.0
        metric_fns = self._metric_fns()
        sums = [0.0] * len(metric_fns)
        counts = [0] * len(metric_fns)
        for i in range(0, n, chunk):
            xb, yb = X[i:i + chunk], y[i:i + chunk]
            out = self._forward(xb, logits=fused)
            if fused:
                value, _ = self.loss.logits_value_and_grad(yb, out, grad=False)
                pred = self.layers[-1].apply_activation(out.copy()) if metric_fns else None
            else:
                value, _ = self.loss.value_and_grad(yb, out, grad=False)
                pred = out
            loss_sum += value * len(xb)
            for j, metric in enumerate(metric_fns):
                per = metric.per_sample(pred, yb, self.loss.sparse)
                sums[j] += float(np.sum(per, dtype=np.float64))
                counts[j] += per.size
        logs = {"loss": loss_sum / n}
        for j, (name, metric) in enumerate(zip(self.metrics_names, metric_fns)):
            logs[name] = metric.result(sums[j] / counts[j])
        return logs

    def evaluate(self, X, y, batch_size: Optional[int] = None, verbose: int = 0, return_dict: bool = False):
        """The loss (and metrics) over ``(X, y)``: a float, ``[loss, *metrics]`` or a dict."""
        self._require_compiled("evaluate")
        X = self._check_x(X)
        if not self.built and not self.build_from_declared_shape():
            self.build((None,) + X.shape[1:])  # as Keras does
        y = self._check_y(y, X)
        chunk = _PREDICT_CHUNK if batch_size is None else check_positive_int("batch_size", batch_size)
        with self.reading():  # one weight version for the whole set
            logs = self._evaluate_arrays(X, y, chunk)
        if verbose:
            print(format_logs(logs))
        if return_dict:
            return logs
        if not self.metrics_names:
            return logs["loss"]
        return [logs["loss"]] + [logs[m] for m in self.metrics_names]

    def _metric_fns(self):
        if not self.metrics_names:
            return []
        units = self.layers[-1].units
        return [metrics_mod.get(m, self.loss.sparse, units) for m in self._metrics]

    # -- training ---------------------------------------------------------------------
    def _train_step(self, xb: np.ndarray, yb: np.ndarray, fused: bool):
        """Forward, loss, backward for one batch; gradients land in ``self._grads``.

        Returns ``(loss, output)``; output is the logits when ``fused``.
        """
        layers = self.layers
        a = xb
        for layer in layers[:-1]:
            a = layer.forward_train(a)
        last = layers[-1]
        if fused:
            out = last.forward_train(a, logits=True)
            value, d = self.loss.logits_value_and_grad(yb, out)
        else:
            out = last.forward_train(a)
            value, d = self.loss.value_and_grad(yb, out)
        if not math.isfinite(value):
            return value, out
        for i in range(len(layers) - 1, -1, -1):
            d = layers[i].backward(d, need_dx=i > 0)
        return value, out

    def fit(
        self,
        X,
        y,
        epochs: int = 1,
        batch_size: int = 32,
        shuffle: bool = True,
        validation_split: float = 0.0,
        validation_data=None,
        callbacks: Optional[Sequence[Callback]] = None,
        verbose: int = 1,
        seed: Optional[int] = None,
    ) -> History:
        """Train for ``epochs`` passes over ``(X, y)`` in batches; return the ``History``.

        ``validation_split`` holds out the last fraction of the samples (before shuffling),
        as Keras does; ``validation_data=(X_val, y_val)`` takes precedence. ``seed`` (None, an
        int >= 0, or a NumPy Generator or SeedSequence) seeds the shuffling and the
        initialisers of a model not yet built (reproducible bit for bit).

        If a batch loss becomes NaN or inf, training stops, the weights from before the last
        optimizer step are restored, that epoch's ``loss`` is recorded as NaN and a
        ``RuntimeWarning`` is emitted.

        Raises ``RuntimeError`` if the model is not compiled; ``ValueError`` for
        ``epochs``/``batch_size`` <= 0, X of the wrong rank or feature count, ``len(X) !=
        len(y)``, NaN/inf in X or y, or a ``validation_split`` outside [0, 1).
        """
        self._require_compiled("fit")
        shuffle = check_bool("shuffle", shuffle)
        epochs = check_positive_int("epochs", epochs)
        batch_size = check_positive_int("batch_size", batch_size)
        if isinstance(validation_split, bool) or not isinstance(
                validation_split, (int, float, np.integer, np.floating)):
            raise TypeError(f"validation_split must be a number in [0, 1); got "
                            f"{type(validation_split).__name__} {validation_split!r}")
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1); got {validation_split!r}")
        X = self._check_x(X)
        rng = np.random.default_rng(check_seed("seed", seed, generators=True))
        with self._lock:
            if not self.built and not self.build_from_declared_shape(rng):
                self.build((None,) + X.shape[1:], rng=rng)
        y = self._check_y(y, X)
        X_val = y_val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            X_val = self._check_x(validation_data[0], "X_val")
            y_val = self._check_y(validation_data[1], X_val, "y_val", "X_val")
        elif validation_split > 0:
            split = int(math.floor(len(X) * (1.0 - validation_split)))
            if split == 0 or split == len(X):
                raise ValueError(
                    f"validation_split={validation_split} leaves {split} training and "
                    f"{len(X) - split} validation samples out of {len(X)}; both must be > 0"
                )
            X, X_val = X[:split], X[split:]
            y, y_val = y[:split], y[split:]
        with self._lock:
            if not self.optimizer.built_for(self._params):
                self.optimizer.build(self._params, self._segments)

        history = History()
        cbs: List[Callback] = [history] + list(callbacks or [])
        params = {"epochs": epochs, "steps": math.ceil(len(X) / batch_size), "verbose": verbose}
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be fastgru Callback instances; got {type(cb).__name__}")
            cb.set_model(self)
            cb.set_params(params)
        begin_cbs = [cb for cb in cbs if _overrides(cb, "on_train_batch_begin")]
        end_cbs = [cb for cb in cbs if _overrides(cb, "on_train_batch_end")]
        self.history = history
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin({})
        # overflow to inf/NaN is detected and handled (see the module docstring), not warned
        with np.errstate(over="ignore", invalid="ignore"):
            self._run_epochs(X, y, X_val, y_val, epochs, batch_size, shuffle, rng, cbs,
                             begin_cbs, end_cbs, verbose)
        for cb in cbs:
            cb.on_train_end({})
        return history

    def _run_epochs(self, X, y, X_val, y_val, epochs, batch_size, shuffle, rng, cbs,
                    begin_cbs, end_cbs, verbose):
        n = len(X)
        steps = math.ceil(n / batch_size)
        fused = self._fused()
        metric_fns = self._metric_fns()
        sparse = self.loss.sparse
        last = self.layers[-1]
        params, grads, backup = self._params, self._grads, self._backup
        opt_step = self.optimizer.step
        layers = self.layers
        Xs, ys = (np.empty_like(X), np.empty_like(y)) if shuffle else (X, y)
        np.copyto(backup, params)
        isfinite = math.isfinite
        for epoch in range(epochs):
            for cb in cbs:
                cb.on_epoch_begin(epoch, {})
            progress = None
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", file=sys.stdout, flush=True)
                # verbose=1 on a terminal: a live bar; else one plain line per epoch
                progress = ProgressBar(steps, live=verbose == 1 and is_terminal(sys.stdout))
            # Keras 3 weighs each batch loss by its rows (a short last batch counts less)
            loss_sum, loss_rows = 0.0, 0
            if shuffle:
                perm = rng.permutation(n)
                np.take(X, perm, axis=0, out=Xs)
                np.take(y, perm, axis=0, out=ys)
            sums = [0.0] * len(metric_fns)
            counts = [0] * len(metric_fns)
            diverged = False
            for b in range(steps):
                for cb in begin_cbs:
                    cb.on_train_batch_begin(b, {})
                start = b * batch_size
                xb = Xs[start:start + batch_size]
                yb = ys[start:start + batch_size]
                # One step under the model's lock (other threads' set_weights, evaluate and
                # fit wait for it), then one new snapshot for predict and streams.
                with self.updating():
                    value, out = self._train_step(xb, yb, fused)
                    if not isfinite(value):
                        diverged = True
                        break
                    np.copyto(backup, params)
                    try:
                        opt_step(params, grads)
                    finally:  # even on Ctrl-C mid-step: the packed copies must follow
                        for layer in layers:
                            layer.weights_written(stepped=True)
                loss_sum += value * len(xb)
                loss_rows += len(xb)
                if progress is not None:
                    progress.update(b + 1, loss_sum / loss_rows)
                if metric_fns:
                    pred = last.apply_activation(out.copy()) if fused else out
                    for j, metric in enumerate(metric_fns):
                        per = metric.per_sample(pred, yb, sparse)
                        sums[j] += float(np.sum(per, dtype=np.float64))
                        counts[j] += per.size
                if end_cbs:
                    logs = {"loss": value}
                    for cb in end_cbs:
                        cb.on_train_batch_end(b, logs)
            if not diverged and not np.isfinite(params).all():
                diverged = True
            if diverged:
                with self.updating():
                    np.copyto(params, backup)
                    for layer in self.layers:
                        layer.weights_written()
                warnings.warn(
                    f"training diverged in epoch {epoch + 1} (loss became NaN or inf): stopped and "
                    "restored the last weights with a finite loss; try a smaller learning rate, "
                    "clipnorm, or scaling the data",
                    RuntimeWarning,
                    stacklevel=3,
                )
                logs = {"loss": float("nan")}
            else:
                logs = {"loss": float(loss_sum / loss_rows)}
                for j, (name, metric) in enumerate(zip(self.metrics_names, metric_fns)):
                    logs[name] = metric.result(sums[j] / counts[j])
                if X_val is not None:
                    with self.reading():  # one weight version, as evaluate
                        val_logs = self._evaluate_arrays(X_val, y_val)
                    for key, value in val_logs.items():
                        logs["val_" + key] = value
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if progress is not None:
                progress.finish(logs)
            if diverged or self.stop_training:
                break

    # -- summary ----------------------------------------------------------------------
    def summary(self, print_fn=None) -> None:
        """Print the layers, their output shapes and parameter counts (Keras style)."""
        print_fn = print_fn or print
        self.build_from_declared_shape()
        rows = []
        shape = self.input_shape
        for layer in self.layers:
            if shape is not None:
                shape = layer.compute_output_shape(shape)
                out = str(tuple(shape)).replace(",)", ")")
                count = f"{layer.count_params():,}"
            else:
                out, count = "? (unbuilt)", "0 (unbuilt)"
            rows.append((f"{layer.name} ({type(layer).__name__})", out, count))
        head = ("Layer (type)", "Output Shape", "Param #")
        w0 = max(len(head[0]), *(len(r[0]) for r in rows)) + 2 if rows else len(head[0]) + 2
        w1 = max(len(head[1]), *(len(r[1]) for r in rows)) + 2 if rows else len(head[1]) + 2
        w2 = max(len(head[2]), *(len(r[2]) for r in rows)) if rows else len(head[2])
        width = w0 + w1 + w2
        lines = [f'Model: "{self.name}"', "=" * width,
                 f"{head[0]:<{w0}}{head[1]:<{w1}}{head[2]:>{w2}}", "=" * width]
        for r in rows:
            lines.append(f"{r[0]:<{w0}}{r[1]:<{w1}}{r[2]:>{w2}}")
        lines.append("=" * width)
        total = self._params.size if self.built else 0
        lines += [f"Total params: {total:,}", f"Trainable params: {total:,}",
                  "Non-trainable params: 0", "_" * width]
        print_fn("\n".join(lines))

    # -- config and save / load -------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "name": self.name,
            "layers": [{"class_name": type(l).__name__, "config": l.get_config()} for l in self.layers],
            "input_shape": list(self.input_shape) if self.input_shape is not None else None,
        }

    def save(self, path) -> None:
        """Write the model (config, weights, compile settings) to one ``.npz`` file.

        No pickle is involved; the file is replaced atomically, keeps the permissions of the
        file it replaces and follows a symlink (see ``fastgru.saving``). The optimizer's state
        (Adam moments) is not saved.
        """
        from .saving import save_model

        save_model(self, path)


def __getattr__(name):  # load_model and save_npz_atomically moved to fastgru.saving
    if name in ("load_model", "save_npz_atomically"):
        from . import saving

        return getattr(saving, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
