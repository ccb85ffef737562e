"""save / load_model: one .npz file, no pickle, atomic writes, clear errors; Keras weight parity."""
import copy
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastgru as fg

from fastgru.layers import GRU, Dense
from fastgru.model import Sequential, load_model
from fastgru.optimizers import Adam


@pytest.fixture
def trained():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 10, 2)).astype(np.float32)
    y = X[:, -2:, 0].mean(axis=1)
    model = Sequential([GRU(6, return_sequences=True, reset_after=False), GRU(4), Dense(1)])
    model.compile(optimizer=Adam(learning_rate=0.005, clipnorm=1.0), loss="huber", metrics=["mae"])
    model.fit(X, y, epochs=2, verbose=0, seed=0)
    return model, X, y


def test_save_load_gives_identical_predictions(trained, tmp_path):
    model, X, y = trained
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert [type(l) for l in loaded.layers] == [GRU, GRU, Dense]
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert loaded.layers[0].reset_after is False and loaded.layers[0].return_sequences
    # compiled again with the same settings: evaluate works and training continues
    assert loaded.evaluate(X, y) == model.evaluate(X, y)
    assert isinstance(loaded.optimizer, Adam) and loaded.optimizer.clipnorm == 1.0
    assert loaded.optimizer.learning_rate == 0.005
    loaded.fit(X, y, epochs=1, verbose=0)
    # the file holds no pickled objects
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_float64_model_and_uncompiled_model_round_trip(tmp_path):
    model = Sequential([GRU(3, dtype="float64", seed=0), Dense(2, activation="softmax", dtype="float64")])
    model.build((None, 4, 1))
    path = tmp_path / "m64.npz"
    model.save(path)
    loaded = load_model(str(path))
    X = np.random.default_rng(1).standard_normal((5, 4, 1))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict(X).dtype == np.float64
    assert loaded.optimizer is None


def test_save_is_atomic_and_leaves_no_temp_files(trained, tmp_path, monkeypatch):
    model, X, _ = trained
    path = tmp_path / "model.npz"
    model.save(path)
    good = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == good  # the old file is untouched
    assert os.listdir(tmp_path) == ["model.npz"]  # no temp file left behind


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(RuntimeError, match="not been built"):
        Sequential([GRU(2), Dense(1)]).save(tmp_path / "x.npz")


def _damaged_files(tmp_path, good_path):
    good = good_path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a model" * 10)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.arange(3))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __config__=np.array([{"format": "fastgru.Sequential"}], dtype=object))
    wrong_shapes = tmp_path / "wrong_shapes.npz"
    with np.load(good_path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["weight_0"] = arrays["weight_0"][:1]
    np.savez(wrong_shapes, **arrays)
    missing = tmp_path / "missing_weight.npz"
    arrays = {k: v for k, v in arrays.items() if k != "weight_3"}
    np.savez(missing, **arrays)
    flipped = tmp_path / "flipped.npz"
    raw = bytearray(good)
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(b ^ 0xFF for b in raw[mid:mid + 64])
    flipped.write_bytes(bytes(raw))
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    return [truncated, garbage, empty, foreign, pickled, wrong_shapes, missing, flipped, npy]


def test_damaged_or_foreign_files_raise_value_error_naming_the_file(trained, tmp_path):
    model, _, _ = trained
    good = tmp_path / "good.npz"
    model.save(good)
    for bad in _damaged_files(tmp_path, good):
        with pytest.raises(ValueError, match=bad.name):
            load_model(bad)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "does_not_exist.npz")


# Keras on NumPy 2 may emit DeprecationWarnings of its own (Variable.__array__ without copy=)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_keras_weights_load_and_predictions_match():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    T, I = 7, 3
    X = rng.standard_normal((9, T, I)).astype(np.float32)
    kmodel = keras.Sequential([
        keras.Input((T, I)),
        keras.layers.GRU(8, return_sequences=True),
        keras.layers.GRU(5, reset_after=False),
        keras.layers.Dense(2, activation="tanh"),
    ])
    # non-zero biases so the bias layout is exercised
    kmodel.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype(np.float32)
                        for w in kmodel.get_weights()])
    expected = np.asarray(kmodel.predict(X, verbose=0))
    model = Sequential([GRU(8, return_sequences=True), GRU(5, reset_after=False), Dense(2, activation="tanh")])
    model.set_weights(kmodel.get_weights())
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-5)
    # and back: our weights load into Keras unchanged
    kmodel.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(kmodel.predict(X, verbose=0)), expected, atol=1e-6)


@pytest.mark.parametrize("copy_model", [
    lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy], ids=["pickle", "deepcopy"])
def test_a_fitted_model_pickles_and_deep_copies_and_keeps_training(copy_model):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 12, 2)).astype(np.float32)
    y = X[:, -3:, 0].mean(axis=1, keepdims=True)
    model = fg.Sequential([fg.GRU(8, seed=1), fg.Dense(1, seed=2)])
    model.compile(optimizer=fg.Adam(1e-2), loss="mse")
    model.fit(X, y, epochs=1, batch_size=16, verbose=0, seed=0)
    model.predict(X[:2])  # caches native objects the copy must not carry
    clone = copy_model(model)
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    model.fit(X, y, epochs=1, batch_size=16, verbose=0, seed=1)
    clone.fit(X, y, epochs=1, batch_size=16, verbose=0, seed=1)  # the weights still train
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    for copied, trained in zip(clone.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(copied, trained)  # the layers hold what the optimizer stepped


def test_layers_pickled_before_activation_and_return_sequences_became_properties_load():
    # Older pickles keep activation / return_sequences / reset_after under the public names.
    model = fg.Sequential([fg.GRU(4, return_sequences=True, seed=1), fg.GRU(3, seed=2),
                           fg.Dense(2, activation="tanh", seed=3)])
    model.build((None, 6, 2))
    X = np.random.default_rng(0).standard_normal((2, 6, 2)).astype(np.float32)
    expected = model.predict(X)
    state = model.__getstate__()
    old_layers = []
    for layer in model.layers:
        layer_state = layer.__getstate__()
        for public, private in layer._renamed_state.items():
            if private in layer_state:
                layer_state[public] = layer_state.pop(private)
        old = type(layer).__new__(type(layer))
        old.__setstate__(layer_state)
        old_layers.append(old)
    restored = fg.Sequential.__new__(fg.Sequential)
    restored.__setstate__(dict(state, layers=tuple(old_layers)))
    clone = pickle.loads(pickle.dumps(restored))
    assert clone.layers[2].activation == "tanh" and clone.layers[0].return_sequences
    np.testing.assert_allclose(clone.predict(X), expected, rtol=1e-6, atol=1e-7)
