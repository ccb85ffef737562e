"""Golden tests: Keras code ported to fastgru gives Keras' numbers (same weights, same inputs).

Each test runs real Keras 3 (TensorFlow backend) beside fastgru; the module is skipped where
Keras is not installed (it comes with the ``golden`` extra).
"""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

keras = pytest.importorskip("keras", reason="the Keras golden tests need keras + tensorflow-cpu")

import fastgru as fg
from fastgru import losses as fg_losses
from fastgru import metrics as fg_metrics


def _keras_steps(opt, w0, grads):
    var = keras.Variable(w0.copy())
    for g in grads:
        opt.apply_gradients([(keras.ops.convert_to_tensor(g), var)])
    return np.asarray(var.numpy())


def _fastgru_steps(opt, w0, grads):
    w = w0.copy()
    for g in grads:
        opt.step(w, g.copy())
    return w


OPTIMIZERS = [
    ("sgd", lambda k: k.SGD(0.1)),
    ("sgd_momentum", lambda k: k.SGD(0.1, momentum=0.9)),
    ("sgd_nesterov", lambda k: k.SGD(0.1, momentum=0.9, nesterov=True)),
    ("rmsprop", lambda k: k.RMSprop(0.01)),
    ("rmsprop_momentum_centered", lambda k: k.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True)),
    ("adam", lambda k: k.Adam(0.01)),
    ("adam_amsgrad", lambda k: k.Adam(0.01, amsgrad=True)),
    ("adamw", lambda k: k.AdamW(0.01, weight_decay=0.1)),
    ("adamw_amsgrad", lambda k: k.AdamW(0.01, weight_decay=0.004, amsgrad=True)),
]


@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_optimizer_first_steps_match_keras(name, make):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(37).astype(np.float32)
    # a gradient that shrinks in places, so amsgrad's max(v_hat, v) matters
    grads = [rng.standard_normal(37).astype(np.float32) * s for s in (1.0, 0.1, 2.0, 0.01, 0.5)]
    ours = _fastgru_steps(make(fg.optimizers), w0, grads)
    theirs = _keras_steps(make(keras.optimizers), w0, grads)
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=2e-7)
    assert not np.allclose(ours, w0)  # the steps did move the weights


@pytest.mark.parametrize("name", ["rmsprop", "adamw", "sgd", "adam"])
def test_optimizer_strings_compile(name):
    m = fg.Sequential([fg.Dense(1)])
    m.compile(optimizer=name, loss="mse")
    assert type(m.optimizer).__name__.lower() == name
    keras_default = keras.optimizers.get(name).get_config()
    for key, value in m.optimizer.get_config().items():
        assert keras_default[key] == pytest.approx(value), key


def _probs(rng, shape):
    p = rng.uniform(0.05, 1.0, size=shape).astype(np.float32)
    return p / p.sum(axis=-1, keepdims=True)


LOSSES = ["categorical_crossentropy", "huber", "mean_absolute_percentage_error",
          "mean_squared_logarithmic_error", "mape", "msle"]


@pytest.mark.parametrize("name", LOSSES)
def test_loss_value_and_gradient_match_keras(name):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    shape = (6, 4)
    if name == "categorical_crossentropy":
        y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 6)]
        p = _probs(rng, shape)
    else:
        y = rng.uniform(-0.5, 2.0, size=shape).astype(np.float32)
        p = rng.uniform(-0.5, 2.0, size=shape).astype(np.float32)
    ours = fg_losses.get(name)
    value, grad = ours.value_and_grad(y, p.copy())
    theirs = keras.losses.get(name)
    pt = tf.Variable(p)
    with tf.GradientTape() as tape:
        kv = tf.reduce_mean(theirs(y, pt)) if not isinstance(theirs, keras.losses.Loss) else theirs(y, pt)
    kg = tape.gradient(kv, pt).numpy()
    assert value == pytest.approx(float(kv), rel=1e-5)
    np.testing.assert_allclose(grad, kg, rtol=1e-4, atol=1e-7)


def test_categorical_crossentropy_fused_with_softmax_matches_keras():
    """fit with Dense(softmax) + categorical_crossentropy takes the logits path; Keras' value."""
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((5, 3)).astype(np.float32) * 4
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
    value, grad = fg_losses.get("categorical_crossentropy").logits_value_and_grad(y, logits)
    kv = float(keras.losses.categorical_crossentropy(y, logits, from_logits=True).numpy().mean())
    assert value == pytest.approx(kv, rel=1e-5)
    sm = np.exp(logits - logits.max(-1, keepdims=True))
    sm /= sm.sum(-1, keepdims=True)
    np.testing.assert_allclose(grad, (sm - y) / 5, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("ours,theirs", [
    ("rmse", lambda: keras.metrics.RootMeanSquaredError()),
    (fg_metrics.RootMeanSquaredError(), lambda: keras.metrics.RootMeanSquaredError()),
    ("mape", lambda: keras.metrics.MeanAbsolutePercentageError()),
    ("mae", lambda: keras.metrics.MeanAbsoluteError()),
])
def test_metrics_in_fit_and_evaluate_match_keras(ours, theirs):
    """The epoch's metric as Keras reports it (rmse: sqrt of the whole set's mse, not per batch)."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    y = rng.uniform(0.5, 2.0, (40, 2)).astype(np.float32)
    m = fg.Sequential([fg.Dense(2, seed=0)])
    m.compile(optimizer="sgd", loss="mse", metrics=[ours])
    m.build((None, 3))
    logs = m.evaluate(X, y, return_dict=True)
    name = fg_metrics.log_name(ours)
    metric = theirs()
    for i in range(0, 40, 7):  # Keras accumulates batch by batch
        metric.update_state(y[i:i + 7], m.predict(X[i:i + 7]))
    assert logs[name] == pytest.approx(float(metric.result()), rel=1e-5)
