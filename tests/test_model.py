"""Sequential: gradients, training, classification, history, callbacks, bad input."""
import numpy as np
import pytest

from fastgru.callbacks import Callback, EarlyStopping, LambdaCallback
from fastgru.layers import GRU, Dense
from fastgru.model import Sequential
from fastgru.optimizers import SGD, Adam

from conftest import loss_and_gradients


def _regression_data(n=256, steps=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, steps, 2)).astype(np.float32)
    y = (0.6 * X[:, -3:, 0].mean(axis=1) - 0.4 * X[:, :, 1].mean(axis=1)).astype(np.float32)
    return X, y


# --------------------------------------------------------------------------- gradients
def _stack(head_units, activation, reset_after=True):
    return Sequential([
        GRU(4, return_sequences=True, reset_after=reset_after, seed=1, dtype="float64"),
        GRU(3, reset_after=reset_after, seed=2, dtype="float64"),
        Dense(head_units, activation=activation, seed=3, dtype="float64"),
    ])


@pytest.mark.parametrize(
    "loss, units, activation",
    [
        ("mse", 2, None),
        ("mae", 2, None),
        ("huber", 2, "tanh"),
        ("binary_crossentropy", 2, "sigmoid"),  # fused with the sigmoid
        ("sparse_categorical_crossentropy", 3, "softmax"),  # fused with the softmax
    ],
)
@pytest.mark.parametrize("reset_after", [True, False])
def test_whole_model_gradient_matches_central_differences(loss, units, activation, reset_after):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((5, 6, 2))
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, units, size=5)
    elif loss == "binary_crossentropy":
        y = (rng.random((5, units)) > 0.5).astype(float)
    else:
        y = rng.standard_normal((5, units)) * 2.0  # far from the outputs: no kinks in mae/huber
    model = _stack(units, activation, reset_after)
    model.compile(optimizer="sgd", loss=loss)
    model.build((None, 6, 2))
    # non-zero biases so every gradient path is exercised
    model.set_weights([w + 0.1 * rng.standard_normal(w.shape) for w in model.get_weights()])
    value, grads = loss_and_gradients(model, X, y, loss)
    weights = model.get_weights()
    eps = 1e-6
    for w, grad in zip(weights, grads):
        fd = np.empty_like(w)
        base = w.copy()
        for i in np.ndindex(w.shape):
            w[i] = base[i] + eps
            model.set_weights(weights)
            up = model.evaluate(X, y)
            w[i] = base[i] - eps
            model.set_weights(weights)
            down = model.evaluate(X, y)
            w[i] = base[i]
            fd[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)
    model.set_weights(weights)
    assert value == pytest.approx(model.evaluate(X, y), rel=1e-12)
    # every layer gets a gradient (the first GRU's kernel through the second GRU's dx)
    assert np.abs(grads[0]).max() > 1e-6


# --------------------------------------------------------------------------- training
def test_stacked_model_trains():
    X, y = _regression_data()
    model = Sequential([GRU(16, return_sequences=True), GRU(8), Dense(1)])
    model.compile(optimizer=Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    assert model.build((None, 12, 2)) is None  # Keras: build returns nothing
    assert model.output_shape == (None, 1)
    hist = model.fit(X, y, epochs=8, batch_size=32, verbose=0, seed=0)
    losses = hist.history["loss"]
    assert len(losses) == 8 and hist.epoch == list(range(8))
    assert losses[-1] < 0.3 * losses[0]
    assert model.evaluate(X, y)[0] < 0.3 * float(np.var(y))
    assert set(hist.history) == {"loss", "mae"}


def test_float32_by_default_and_float64_when_asked():
    X, y = _regression_data(n=64)
    m32 = Sequential([GRU(4), Dense(1)])
    m32.compile(loss="mse")
    m32.fit(X, y, epochs=1, verbose=0, seed=0)
    assert m32.predict(X).dtype == np.float32
    assert all(w.dtype == np.float32 for w in m32.get_weights())
    m64 = Sequential([GRU(4, dtype="float64"), Dense(1, dtype="float64")])
    m64.compile(loss="mse")
    m64.fit(X, y, epochs=1, verbose=0, seed=0)
    assert m64.predict(X).dtype == np.float64
    with pytest.raises(ValueError, match="dtype"):
        mixed = Sequential([GRU(4, dtype="float64"), Dense(1)])
        mixed.compile(loss="mse")
        mixed.fit(X, y, epochs=1, verbose=0)


def _classification_data(n_classes, n=240, steps=15, seed=0):
    """Class k: a trend of slope (k - (n_classes - 1) / 2) plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    t = np.linspace(-1, 1, steps)
    slopes = labels - (n_classes - 1) / 2.0
    X = slopes[:, None] * t[None, :] + 0.3 * rng.standard_normal((n, steps))
    return X[..., None].astype(np.float32), labels


def test_two_class_sequence_classification():
    X, labels = _classification_data(2)
    model = Sequential([GRU(8, seed=0), Dense(1, activation="sigmoid", seed=1)])
    model.compile(optimizer=Adam(learning_rate=0.02), loss="binary_crossentropy", metrics=["accuracy"])
    hist = model.fit(X, labels.astype(np.float32), epochs=12, batch_size=16, verbose=0, seed=0)
    assert hist.history["accuracy"][-1] >= 0.9
    Xt, lt = _classification_data(2, n=200, seed=1)
    loss, acc = model.evaluate(Xt, lt)
    assert acc >= 0.9
    assert np.mean((model.predict(Xt)[:, 0] > 0.5) == lt) == pytest.approx(acc)


def test_three_class_sequence_classification():
    X, labels = _classification_data(3)
    model = Sequential([GRU(12, seed=0), Dense(3, activation="softmax", seed=1)])
    model.compile(optimizer=Adam(learning_rate=0.02), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(X, labels, epochs=15, batch_size=16, verbose=0, seed=0)
    Xt, lt = _classification_data(3, n=200, seed=1)
    probs = model.predict(Xt)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    acc = np.mean(probs.argmax(axis=1) == lt)
    assert acc >= 0.9
    assert model.evaluate(Xt, lt)[1] == pytest.approx(acc)


def test_seeded_fit_is_reproducible_bit_for_bit():
    X, y = _regression_data(n=96)

    def run():
        m = Sequential([GRU(6), Dense(1)])
        m.compile(optimizer=Adam(learning_rate=0.01), loss="mse")
        h = m.fit(X, y, epochs=3, batch_size=16, verbose=0, seed=123)
        return m.get_weights(), h.history["loss"]

    (w1, l1), (w2, l2) = run(), run()
    assert l1 == l2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    m = Sequential([GRU(6), Dense(1)])
    m.compile(optimizer=Adam(learning_rate=0.01), loss="mse")
    m.fit(X, y, epochs=3, batch_size=16, verbose=0, seed=124)
    assert not np.array_equal(m.get_weights()[0], w1[0])


# --------------------------------------------------------------------------- history
class _BatchLosses(Callback):
    def on_train_begin(self, logs=None):
        self.per_epoch = []

    def on_epoch_begin(self, epoch, logs=None):
        self.per_epoch.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.per_epoch[-1].append(logs["loss"])


def test_history_loss_is_the_mean_of_batch_losses_weighted_by_their_rows():
    # Keras 3's loss tracker weighs each batch by its rows: a short last batch counts less
    X, y = _regression_data(n=100)  # 100 / 32: the last batch has 4 rows
    model = Sequential([GRU(5), Dense(1)])
    model.compile(optimizer=Adam(learning_rate=0.01), loss="mse")
    cb = _BatchLosses()
    hist = model.fit(X, y, epochs=3, batch_size=32, verbose=0, seed=0, callbacks=[cb])
    assert [len(b) for b in cb.per_epoch] == [4, 4, 4]
    rows = np.array([32, 32, 32, 4])
    for epoch_loss, batch_losses in zip(hist.history["loss"], cb.per_epoch):
        assert epoch_loss == pytest.approx(np.dot(batch_losses, rows) / 100, rel=1e-12)
        assert epoch_loss != pytest.approx(np.mean(batch_losses), rel=1e-6)


def test_single_batch_epoch_loss_equals_loss_before_the_step():
    X, y = _regression_data(n=40)
    model = Sequential([GRU(5, seed=0), Dense(1, seed=1)])
    model.compile(optimizer=Adam(learning_rate=0.01), loss="huber")
    model.build((None, 12, 2))
    before = model.evaluate(X, y)
    hist = model.fit(X, y, epochs=1, batch_size=40, shuffle=False, verbose=0)
    assert hist.history["loss"][0] == pytest.approx(before, rel=1e-5)


def test_validation_split_takes_the_last_samples_and_validation_data():
    X, y = _regression_data(n=100)
    model = Sequential([GRU(5, seed=0), Dense(1, seed=1)])
    model.compile(optimizer=Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    seen = []
    probe = LambdaCallback(on_epoch_end=lambda e, logs: seen.append(model.evaluate(X[80:], y[80:])[0]))
    hist = model.fit(X, y, epochs=2, batch_size=16, validation_split=0.2, verbose=0, seed=0,
                     callbacks=[probe])
    assert set(hist.history) == {"loss", "mae", "val_loss", "val_mae"}
    np.testing.assert_allclose(hist.history["val_loss"], seen, rtol=1e-6)
    hist2 = model.fit(X[:50], y[:50], epochs=1, validation_data=(X[50:], y[50:]), verbose=0)
    assert hist2.history["val_loss"][0] == pytest.approx(model.evaluate(X[50:], y[50:])[0], rel=1e-6)


def test_verbose_prints_keras_style_epoch_lines(capsys):
    X, y = _regression_data(n=64)
    model = Sequential([GRU(4), Dense(1)])
    model.compile(loss="mse")
    model.fit(X, y, epochs=2, validation_split=0.25, verbose=1, seed=0)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert "loss: " in out and "val_loss: " in out and out.rstrip().endswith("s")
    model.fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- early stopping
def test_early_stopping_restores_best_weights():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 8, 1)).astype(np.float32)
    y = X[:, :, 0].mean(axis=1)
    # validation targets are the opposite: the better the fit, the worse val_loss
    val = (X[:32], -y[:32])
    model = Sequential([GRU(6, seed=0), Dense(1, seed=1)])
    model.compile(optimizer=Adam(learning_rate=0.02), loss="mse")
    snapshots = []
    record = LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(model.get_weights()))
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    hist = model.fit(X, y, epochs=30, batch_size=16, validation_data=val, verbose=0, seed=0,
                     callbacks=[record, stop])
    val_losses = hist.history["val_loss"]
    best = int(np.argmin(val_losses))
    assert len(val_losses) == best + 3 < 30  # stopped after `patience` epochs without improvement
    assert stop.stopped_epoch == len(val_losses) - 1 and stop.best_epoch == best
    for got, want in zip(model.get_weights(), snapshots[best]):
        np.testing.assert_array_equal(got, want)
    # without restore_best_weights the last weights stay
    model2 = Sequential([GRU(6, seed=0), Dense(1, seed=1)])
    model2.compile(optimizer=Adam(learning_rate=0.02), loss="mse")
    snaps2 = []
    rec2 = LambdaCallback(on_epoch_end=lambda e, logs: snaps2.append(model2.get_weights()))
    model2.fit(X, y, epochs=30, batch_size=16, validation_data=val, verbose=0, seed=0,
               callbacks=[rec2, EarlyStopping(patience=2)])
    np.testing.assert_array_equal(model2.get_weights()[0], snaps2[-1][0])


def test_early_stopping_min_delta_and_mode():
    es = EarlyStopping(monitor="val_accuracy", min_delta=0.1, patience=0)
    es.model = type("M", (), {"stop_training": False, "get_weights": lambda self: []})()
    es.on_train_begin()
    es.on_epoch_end(0, {"val_accuracy": 0.5})
    es.on_epoch_end(1, {"val_accuracy": 0.55})  # + 0.05 < min_delta: no improvement
    assert es.model.stop_training and es.best == 0.5
    with pytest.warns(RuntimeWarning, match="not available"):
        es.on_epoch_end(2, {"loss": 1.0})


def test_stop_training_from_a_callback():
    X, y = _regression_data(n=64)
    model = Sequential([GRU(4), Dense(1)])
    model.compile(loss="mse")

    def stop(epoch, logs):
        model.stop_training = epoch == 1

    hist = model.fit(X, y, epochs=10, verbose=0, callbacks=[LambdaCallback(on_epoch_end=stop)])
    assert hist.epoch == [0, 1]


# --------------------------------------------------------------------------- divergence
def test_diverging_fit_stops_restores_finite_weights_and_warns():
    X, y = _regression_data(n=64)
    model = Sequential([GRU(4, seed=0), Dense(1, seed=1)])
    model.compile(optimizer=SGD(learning_rate=1e6), loss="mse")
    with pytest.warns(RuntimeWarning, match="diverged"):
        hist = model.fit(X, y * 1e3, epochs=20, batch_size=8, verbose=0, seed=0)
    assert len(hist.epoch) < 20 and np.isnan(hist.history["loss"][-1])
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(model.predict(X)).all()


# --------------------------------------------------------------------------- API and bad input
def test_summary_lists_layers_shapes_and_params(capsys):
    model = Sequential([GRU(50), Dense(1)])
    model.build((None, 100, 1))
    model.summary()
    out = capsys.readouterr().out
    assert "gru (GRU)" in out and "dense (Dense)" in out
    assert "(None, 50)" in out and "(None, 1)" in out
    assert "7,950" in out and "51" in out and "Total params: 8,001" in out
    assert model.count_params() == 8001
    assert [l.name for l in model.layers] == ["gru", "dense"]


def test_get_set_weights_round_trip_in_keras_shapes():
    model = Sequential([GRU(8, return_sequences=True), GRU(4, reset_after=False), Dense(2)])
    model.build((None, 5, 3))
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 24), (8, 24), (2, 24), (8, 12), (4, 12), (12,), (4, 2), (2,)]
    rng = np.random.default_rng(0)
    new = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    # an unbuilt model takes weights as they come from Keras and builds itself
    other = Sequential([GRU(8, return_sequences=True), GRU(4, reset_after=False), Dense(2)])
    assert other.get_weights() == []
    other.set_weights(new)
    X = rng.standard_normal((3, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(other.predict(X), model.predict(X))
    with pytest.raises(ValueError, match="shape"):
        model.set_weights([new[1]] + new[1:])
    with pytest.raises(ValueError, match="arrays"):
        model.set_weights(new[:-1])


@pytest.fixture
def fitted():
    X, y = _regression_data(n=64)
    model = Sequential([GRU(4), Dense(1)])
    model.compile(loss="mse")
    model.fit(X, y, epochs=1, verbose=0, seed=0)
    return model, X, y


def test_bad_fit_arguments_raise(fitted):
    model, X, y = fitted
    with pytest.raises(ValueError, match="epochs"):
        model.fit(X, y, epochs=0, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(X, y, batch_size=-3, verbose=0)
    with pytest.raises(ValueError, match=r"X must be 3-D \(samples, timesteps, features\)"):
        model.fit(X[:, :, 0], y, verbose=0)
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(X, y[:-1], verbose=0)
    bad = X.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        model.fit(bad, y, verbose=0)
    bad_y = y.copy()
    bad_y[5] = np.nan
    with pytest.raises(ValueError, match="y contains NaN"):
        model.fit(X, bad_y, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(X, y, validation_split=1.0, verbose=0)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :, :1])
    with pytest.raises(ValueError, match="3-D"):
        model.predict(X[0])


def test_predict_before_build_builds_and_fit_before_compile_raises():
    X, y = _regression_data(n=16)
    model = Sequential([GRU(4), Dense(1)])
    assert model.predict(X).shape == (16, 1)  # Keras builds an unbuilt model from the input
    assert model.built and model.input_shape == (None, None, X.shape[-1])
    model = Sequential([GRU(4), Dense(1)])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(X, y, verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        model.evaluate(X, y)


def test_predict_varies_timesteps_and_batches(fitted):
    model, X, _ = fitted
    full = model.predict(X)
    np.testing.assert_allclose(model.predict(X, batch_size=7), full, rtol=1e-6, atol=1e-7)
    assert model.predict(X[:, :5]).shape == (64, 1)  # fewer timesteps than in training


def test_compile_rejects_unknown_names():
    model = Sequential([GRU(2), Dense(1)])
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(loss="nope")
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile(optimizer="nope")
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(metrics=["nope"])
    with pytest.raises(TypeError):
        Sequential([object()])
