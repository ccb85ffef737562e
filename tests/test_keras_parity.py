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

from conftest import recording_dropout_masks
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


# --------------------------------------------------------------------------- layers
def _data(n=6, t=5, f=3, seed=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, t, f)).astype(np.float32), rng.standard_normal((n, 1)).astype(np.float32)


def _one_sgd_step(ours, theirs, X, y, lr=0.1):
    """One full-batch SGD step in both; returns both models' weights after it."""
    theirs.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    theirs.fit(X, y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    ours.compile(optimizer=fg.SGD(lr), loss="mse")
    ours.fit(X, y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    return ours.get_weights(), theirs.get_weights()


def _bidirectional_pair(merge_mode, return_sequences, reset_after, lead=False):
    """Keras and fastgru twins (same weights); ``lead`` puts a GRU before the Bidirectional,
    so its input gradient (both directions, the backward one reversed) is used."""
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([
        keras.Input((5, 3)),
    ] + ([keras.layers.GRU(3, return_sequences=True)] if lead else []) + [
        keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=return_sequences,
                                                    reset_after=reset_after), merge_mode=merge_mode),
    ] + ([keras.layers.GRU(3)] if return_sequences else []) + [keras.layers.Dense(1)])
    ours = fg.Sequential([
        fg.Input((5, 3)),
    ] + ([fg.GRU(3, return_sequences=True)] if lead else []) + [
        fg.Bidirectional(fg.GRU(4, return_sequences=return_sequences, reset_after=reset_after),
                         merge_mode=merge_mode),
    ] + ([fg.GRU(3)] if return_sequences else []) + [fg.Dense(1)])
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("reset_after", [True, False])
def test_bidirectional_predict_matches_keras(merge_mode, return_sequences, reset_after):
    X, _ = _data()
    ours, theirs = _bidirectional_pair(merge_mode, return_sequences, reset_after)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X, verbose=0), rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("merge_mode,return_sequences,reset_after,lead", [
    ("concat", True, True, True), ("sum", False, False, False), ("ave", True, False, False),
    ("mul", False, True, True),
])
def test_bidirectional_train_step_matches_keras(merge_mode, return_sequences, reset_after, lead):
    """One full-batch SGD step (C++ forward and backward of both GRUs) lands on Keras' weights."""
    X, y = _data()
    ours, theirs = _bidirectional_pair(merge_mode, return_sequences, reset_after, lead)
    before = ours.get_weights()
    w_ours, w_theirs = _one_sgd_step(ours, theirs, X, y)
    for a, b in zip(w_ours, w_theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)
    k = 3 if lead else 0
    assert not np.allclose(w_ours[k + 3], before[k + 3])  # the backward GRU was trained too


def test_gru_input_dropout_uses_one_mask_per_sequence_like_keras(monkeypatch):
    """Keras 3 (recurrent_dropout=0): x * mask, one (samples, features) mask for all steps,
    training only. Fed the same mask, one SGD step lands on Keras' weights."""
    import fastgru.layers

    X, y = _data()
    masks = recording_dropout_masks(monkeypatch, fastgru.layers)
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(4, dropout=0.5),
                               keras.layers.Dense(1)])
    ours = fg.Sequential([fg.GRU(4, dropout=0.5, input_shape=(5, 3)), fg.Dense(1)])
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X, verbose=0), atol=1e-6)  # no dropout
    ours.compile(optimizer=fg.SGD(0.1), loss="mse")
    ours.fit(X, y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    assert len(masks) == 1 and masks[0].shape == (6, 3) and set(np.unique(masks[0])) <= {0.0, 2.0}
    cell = theirs.layers[0].cell
    monkeypatch.setattr(cell, "get_dropout_mask", lambda inputs: keras.ops.convert_to_tensor(masks[0]))
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    theirs.fit(X, y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)


def test_dropout_layer_is_identity_at_inference_and_masks_in_training(monkeypatch):
    import fastgru.keras_layers

    X, y = _data()
    masks = recording_dropout_masks(monkeypatch, fastgru.keras_layers)
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(4, return_sequences=True),
                               keras.layers.Dropout(0.25), keras.layers.GRU(2), keras.layers.Dense(1)])
    ours = fg.Sequential([fg.Input((5, 3)), fg.GRU(4, return_sequences=True), fg.Dropout(0.25),
                          fg.GRU(2), fg.Dense(1)])
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X, verbose=0), atol=1e-6)
    ours.compile(optimizer=fg.SGD(0.1), loss="mse")
    ours.fit(X, y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    (mask,) = masks
    assert mask.shape == (6, 5, 4)
    np.testing.assert_allclose(np.unique(mask), [0.0, 1 / 0.75], rtol=1e-6)
    # Keras with that mask in place of its random one
    twin = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(4, return_sequences=True),
                             keras.layers.Lambda(lambda t: t * mask), keras.layers.GRU(2),
                             keras.layers.Dense(1)])
    twin.set_weights(theirs.get_weights())
    twin.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    twin.fit(X, y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)


def test_input_shape_builds_like_keras():
    theirs = keras.Sequential([keras.Input((100, 1)), keras.layers.GRU(50), keras.layers.Dense(1)])
    for ours in (fg.Sequential([fg.GRU(50, input_shape=(100, 1)), fg.Dense(1)]),
                 fg.Sequential([fg.Input((100, 1)), fg.GRU(50), fg.Dense(1)])):
        assert ours.count_params() == theirs.count_params()
        assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
        assert ours.input_shape == (None, 100, 1)
        assert ours.output_shape == tuple(theirs.output_shape)
    lines = []
    fg.Sequential([fg.Input((100, 1)), fg.GRU(50), fg.Dense(1)]).summary(print_fn=lines.append)
    assert f"Total params: {theirs.count_params():,}" in lines[0]


def test_unbuilt_model_predicts_and_evaluates_as_keras():
    X, y = _data()
    ours = fg.Sequential([fg.GRU(4, seed=0), fg.Dense(1, seed=0)])
    assert ours.predict(X).shape == (6, 1)
    theirs = keras.Sequential([keras.layers.GRU(4), keras.layers.Dense(1)])
    theirs.predict(X, verbose=0)  # Keras builds it from X too
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X, verbose=0), atol=1e-6)
    fresh = fg.Sequential([fg.GRU(4), fg.Dense(1)])
    fresh.compile(loss="mse")
    assert np.isfinite(fresh.evaluate(X, y))


@pytest.mark.parametrize("return_sequences", [False, True])
def test_gru_return_state_matches_keras(return_sequences):
    X, _ = _data()
    theirs = keras.layers.GRU(4, return_sequences=return_sequences, return_state=True)
    k_out, k_state = theirs(X)
    ours = fg.GRU(4, return_sequences=return_sequences, return_state=True)
    ours.build(X.shape)
    ours.set_weights(theirs.get_weights())
    out, state = ours(X)
    np.testing.assert_allclose(out, np.asarray(k_out), atol=1e-6)
    np.testing.assert_allclose(state, np.asarray(k_state), atol=1e-6)
    with pytest.raises(ValueError, match="return_state"):
        fg.Sequential([fg.GRU(4, return_state=True), fg.Dense(1)])


def test_stateful_is_refused_with_a_pointer_to_stream():
    with pytest.raises(ValueError, match=r"model\.stream\(\)"):
        fg.GRU(4, stateful=True)


def test_weights_api_like_keras(tmp_path):
    X, _ = _data()
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(4), keras.layers.Dense(1)])
    ours = fg.Sequential([fg.Input((5, 3)), fg.GRU(4), fg.Dense(1)])
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert len(ours.trainable_weights) == len(theirs.trainable_weights)
    assert ours.non_trainable_weights == [] and theirs.non_trainable_weights == []
    ours.set_weights(theirs.get_weights())
    for a, b in zip(ours.weights, theirs.weights):
        np.testing.assert_array_equal(a, np.asarray(b))
    with pytest.raises(ValueError):
        ours.weights[0][0, 0] = 1.0  # read-only: write with set_weights
    path = tmp_path / "m.weights.npz"
    ours.save_weights(path)
    other = fg.Sequential([fg.Input((5, 3)), fg.GRU(4), fg.Dense(1)])
    other.load_weights(path)
    np.testing.assert_array_equal(other.predict(X), ours.predict(X))
    for name in ("m.weights.h5", "m.keras", "m.h5"):
        with pytest.raises(ValueError, match="npz"):
            ours.save_weights(tmp_path / name)
        with pytest.raises(ValueError, match="to_keras"):
            ours.save(tmp_path / name)
        assert not (tmp_path / name).exists()  # never a different format under that name


def test_models_with_the_new_layers_save_load_and_convert(tmp_path):
    X, _ = _data()
    m = fg.Sequential([fg.Input((5, 3)), fg.GRU(4, return_sequences=True, dropout=0.1),
                       fg.Dropout(0.2), fg.GRU(3), fg.Dense(1)])
    m.save(tmp_path / "d.npz")
    np.testing.assert_array_equal(fg.load_model(tmp_path / "d.npz").predict(X), m.predict(X))
    k = fg.to_keras(m)  # Dropout is the identity at inference: the Keras twin predicts the same
    np.testing.assert_allclose(k.predict(X, verbose=0), m.predict(X), atol=1e-6)
    b = fg.Sequential([fg.Input((5, 3)), fg.Bidirectional(fg.GRU(4), merge_mode="mul"), fg.Dense(1)])
    b.save(tmp_path / "b.npz")
    loaded = fg.load_model(tmp_path / "b.npz")
    np.testing.assert_array_equal(loaded.predict(X), b.predict(X))
    assert loaded.layers[0].merge_mode == "mul"


def test_input_dtype_must_match_the_layers():
    with pytest.raises(ValueError, match="float64"):
        fg.Sequential([fg.Input((3, 2), dtype="float64"), fg.GRU(3)])
    m = fg.Sequential([fg.Input((3, 2), dtype="float64"), fg.GRU(3, dtype="float64")])
    assert m.predict(np.zeros((1, 3, 2))).dtype == np.float64


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["rmsprop", "adamw", "sgd"])
def test_classifier_with_categorical_crossentropy_trains_like_keras(optimizer):
    """GRU -> Dense(softmax), categorical_crossentropy (fused with the softmax here), accuracy:
    two full-batch steps of each optimizer by name land on Keras' weights and metrics."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 4, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((4, 2)), keras.layers.GRU(5),
                               keras.layers.Dense(3, activation="softmax")])
    ours = fg.Sequential([fg.Input((4, 2)), fg.GRU(5), fg.Dense(3, activation="softmax")])
    ours.set_weights(theirs.get_weights())
    theirs.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    ours.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    k_hist = theirs.fit(X, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    f_hist = ours.fit(X, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=5e-6)
    np.testing.assert_allclose(f_hist["loss"], k_hist["loss"], rtol=1e-5)
    assert f_hist["accuracy"] == pytest.approx(k_hist["accuracy"])
    k_eval = theirs.evaluate(X, y, verbose=0, return_dict=True)
    f_eval = ours.evaluate(X, y, return_dict=True)
    assert f_eval["loss"] == pytest.approx(k_eval["loss"], rel=1e-5)
    assert f_eval["accuracy"] == pytest.approx(k_eval["accuracy"])
