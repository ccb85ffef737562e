"""Keras/TensorFlow's rows: ``keras.layers.GRU`` (+ Dense) on the same weights, in
``tf.function``. TensorFlow fixes its thread pools at start-up, which the harness's child
process per library and thread count makes possible to honour."""
from __future__ import annotations

import os
from typing import Dict, List

import numpy as np

from .harness import Candidate, Peer, Runner, SkipCandidate, Workload
from .workloads import adam_epsilon

_TF_THREADS: Dict[str, int] = {}


def _tf(nt):
    """Import TensorFlow with ``nt`` threads. TF fixes its thread pools at the first op, so a
    later different count cannot be honoured in the same process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    if "n" not in _TF_THREADS:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(nt)
            tf.config.threading.set_inter_op_parallelism_threads(1 if nt == 1 else 2)
            _TF_THREADS["n"] = nt
        except RuntimeError:  # already initialised by someone else
            _TF_THREADS["n"] = tf.config.threading.get_intra_op_parallelism_threads() or -1
    if _TF_THREADS["n"] != nt:
        raise SkipCandidate(
            f"TensorFlow fixes its thread pools at start-up (here {_TF_THREADS['n']} threads); "
            f"run it without --no-isolate (a child process per thread count)")
    return tf


def candidates(w: Workload) -> List[Candidate]:
    d = w.data
    c: List[Candidate] = []

    def keras_model(tf, ws, steps, lr=None):
        import keras

        units = ws[1].shape[0]
        m = keras.Sequential([keras.Input((steps, 1)), keras.layers.GRU(units, reset_after=True),
                              keras.layers.Dense(1)])
        if lr is not None:
            m.compile(optimizer=keras.optimizers.Adam(learning_rate=lr, epsilon=adam_epsilon()),
                      loss="mse")
        m.set_weights([np.array(a) for a in ws])
        return m

    if w.key == "A":
        X, y, ws, lr, batch, n = d["X"], d["y"], d["weights"], d["lr"], d["batch"], d["check_n"]

        def build(nt):
            tf = _tf(nt)

            def check():
                m = keras_model(tf, ws, X.shape[1], lr)
                m.fit(X[:n], y[:n], epochs=1, batch_size=batch, shuffle=False, verbose=0)
                return [m.predict(X[:n], verbose=0)]

            m = keras_model(tf, ws, X.shape[1], lr)
            return Runner(lambda: m.fit(X, y, epochs=1, batch_size=batch, shuffle=True,
                                        verbose=0), check)

        c.append(Candidate("keras GRU+Dense fit (TensorFlow)", "tensorflow", build))
    elif w.key == "B":
        x, ws = d["x"], d["weights"]

        def build(nt):
            tf = _tf(nt)
            m = keras_model(tf, ws, x.shape[1])
            fn = tf.function(lambda v: m(v, training=False), reduce_retracing=True)
            xt = tf.constant(x)
            f = lambda: fn(xt).numpy()  # noqa: E731
            return Runner(f, lambda: [f()])

        c.append(Candidate("keras GRU+Dense (tf.function call)", "tensorflow", build))
    elif w.key in ("D.fwd", "D.fwd+bwd"):
        x, ws = d["x"], d["weights"]

        def build(nt):
            tf = _tf(nt)
            import keras

            layer = keras.layers.GRU(ws[1].shape[0], return_sequences=True, return_state=True,
                                     reset_after=True)
            layer.build((None, None, x.shape[2]))
            layer.set_weights([np.array(a) for a in ws])
            xt = tf.constant(x)
            if w.key == "D.fwd":
                fn = tf.function(lambda v: layer(v, training=False))
                f = lambda: [a.numpy() for a in fn(xt)]  # noqa: E731
                return Runner(f, f)
            gt = tf.constant(d["d_out"])

            @tf.function
            def grads(v):
                with tf.GradientTape() as tape:
                    tape.watch(v)
                    out, _ = layer(v, training=True)
                    loss = tf.reduce_sum(out * gt)
                return tape.gradient(loss, [v] + layer.trainable_weights)

            f = lambda: [a.numpy() for a in grads(xt)]  # noqa: E731
            return Runner(f, f)

        c.append(Candidate("keras GRU layer (tf.function)" if w.key == "D.fwd"
                           else "keras GRU layer, GradientTape (tf.function)", "tensorflow", build))
    return c


PEER = Peer("tensorflow", "tensorflow", candidates, absent={
    "C": "Keras has no public per-step state carry without a fixed batch",
})
