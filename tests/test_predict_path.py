"""model.predict runs the C++ inference model (fastgru.inference); it must give what the
layers' own forward passes give, for every layer kind, activation, dtype and input form."""
import numpy as np
import pytest

import fastgru as fg

from conftest import Scale, built_model, layers_forward


MODELS = {
    "gru-dense": lambda d: [fg.GRU(50, dtype=d), fg.Dense(1, dtype=d)],
    "stacked-mixed-variants": lambda d: [
        fg.GRU(9, return_sequences=True, reset_after=False, dtype=d),
        fg.GRU(17, dtype=d), fg.Dense(6, activation="relu", dtype=d), fg.Dense(4, activation="softmax", dtype=d)],
    "sequence-out": lambda d: [fg.GRU(13, return_sequences=True, dtype=d), fg.Dense(2, activation="sigmoid", dtype=d)],
    "gru-only": lambda d: [fg.GRU(33, return_sequences=True, dtype=d)],
    "dense-between-grus": lambda d: [
        fg.GRU(8, return_sequences=True, dtype=d), fg.Dense(5, activation="tanh", dtype=d), fg.GRU(3, dtype=d)],
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 1), (1, 100), (40, 3)])
def test_predict_equals_the_layers_forward(name, dtype, shape, simd, threads):
    features = 3
    model = built_model(MODELS[name](dtype), features)
    X = np.random.default_rng(2).standard_normal(shape + (features,)).astype(dtype)
    got = model.predict(X)
    expected = layers_forward(model, X)
    assert got.shape == expected.shape and got.dtype == np.dtype(dtype)
    tol = 2e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def test_predict_takes_lists_other_dtypes_strided_arrays_and_chunks():
    model = built_model(MODELS["stacked-mixed-variants"]("float32"), 3)
    X = np.random.default_rng(3).standard_normal((9, 12, 3))
    expected = layers_forward(model, X)
    np.testing.assert_allclose(model.predict(X), expected, rtol=2e-6, atol=2e-6)  # float64 in
    np.testing.assert_allclose(model.predict(X.tolist()), expected, rtol=2e-6, atol=2e-6)
    wide = np.zeros((9, 12, 6))
    wide[..., ::2] = X
    np.testing.assert_allclose(model.predict(wide[..., ::2]), expected, rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(model.predict(X, batch_size=2), model.predict(X))
    # float32 but not C-contiguous: C++ refuses it as is, predict converts it
    wide32 = wide.astype(np.float32)
    np.testing.assert_allclose(model.predict(wide32[..., ::2]), expected, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(model.predict(np.asfortranarray(X.astype(np.float32))), expected,
                               rtol=2e-6, atol=2e-6)


def test_predict_rejects_bad_input_clearly():
    model = built_model(MODELS["gru-dense"]("float32"), 1)
    X = np.zeros((2, 10, 1), np.float32)
    X[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        model.predict(X)
    with pytest.raises(ValueError, match="3 features .* built for 1 features"):
        model.predict(np.zeros((2, 10, 3), np.float32))
    with pytest.raises(ValueError, match="must be 3-D"):
        model.predict(np.zeros((2, 10), np.float32))
    with pytest.raises(ValueError, match="must not be empty"):
        model.predict(np.zeros((0, 10, 1), np.float32))


def test_predict_follows_training():
    model = built_model(MODELS["gru-dense"]("float32"), 1)
    model.compile(optimizer=fg.Adam(1e-2), loss="mse")
    X = np.random.default_rng(4).standard_normal((32, 10, 1)).astype(np.float32)
    before = model.predict(X)
    model.fit(X, X[:, -1], epochs=1, batch_size=8, verbose=0, seed=0)
    after = model.predict(X)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, layers_forward(model, X), rtol=2e-6, atol=2e-6)


def test_predict_sees_every_weight_write_of_its_own_model_only():
    # predict runs the model's current inference snapshot; every way of writing weights must
    # publish a new one, and another model's writes must not change this model's answers.
    model = built_model(MODELS["gru-dense"]("float32"), 1)
    other = built_model(MODELS["gru-dense"]("float32"), 1, seed=1)
    X = np.random.default_rng(5).standard_normal((3, 7, 1)).astype(np.float32)
    first = model.predict(X)

    other.layers[1].set_weights([w + 1 for w in other.layers[1].get_weights()])
    other.compile(optimizer=fg.Adam(1e-2), loss="mse")
    other.fit(X, X[:, -1], epochs=1, batch_size=3, verbose=0)
    np.testing.assert_array_equal(model.predict(X), first)
    np.testing.assert_allclose(first, layers_forward(model, X), rtol=2e-6, atol=2e-6)

    writes = [
        lambda: model.layers[1].set_weights([w * 2 for w in model.layers[1].get_weights()]),
        lambda: model.layers[0].set_weights([w * 0.5 for w in model.layers[0].get_weights()]),
        lambda: model.set_weights([w + 0.1 for w in model.get_weights()]),
    ]
    for write in writes:
        before = model.predict(X)
        write()
        after = model.predict(X)
        assert not np.allclose(before, after)
        np.testing.assert_allclose(after, layers_forward(model, X), rtol=2e-6, atol=2e-6)


def test_predict_after_a_diverged_fit_sees_the_restored_weights():
    # A callback's predict mid-fit reads a snapshot; the rollback after divergence rewrites
    # the weights outside the optimizer step and must publish too. Divergence is forced by
    # huge weights set after batch 1 (an inf loss at batch 2, then the restore of the
    # weights set_weights wrote, the last ones the fit saw).
    model = built_model(MODELS["gru-dense"]("float32"), 1)
    X = np.random.default_rng(7).standard_normal((32, 10, 1)).astype(np.float32)

    def predict_then_poison(batch, logs):
        model.predict(X)
        if batch == 1:  # finite, but the next batch's loss overflows
            model.layers[1].set_weights([np.full((50, 1), 1e30, np.float32), np.zeros(1)])

    watch = fg.callbacks.LambdaCallback(on_train_batch_end=predict_then_poison)
    model.compile(optimizer=fg.Adam(1e-2), loss="mse")
    with pytest.warns(RuntimeWarning, match="diverged"):
        model.fit(X, X[:, -1], epochs=1, batch_size=8, verbose=0, seed=0, callbacks=[watch])
    after = model.predict(X)
    assert np.isfinite(after).all()
    np.testing.assert_allclose(after, layers_forward(model, X), rtol=2e-6, atol=2e-6)


def test_a_built_models_layers_cannot_be_swapped_in_place():
    # The flat weight buffer, the optimizer state and the C++ copy belong to the built layers.
    model = built_model(MODELS["gru-dense"]("float32"), 1)
    with pytest.raises(TypeError):
        model.layers[1] = fg.Dense(1)


def test_predict_follows_a_changed_activation_or_return_sequences():
    # The C++ copy holds these too: changing them after predict must not leave it stale.
    model = built_model([fg.GRU(6, return_sequences=True), fg.GRU(5), fg.Dense(3)], 2)
    X = np.random.default_rng(6).standard_normal((4, 9, 2)).astype(np.float32)
    linear = model.predict(X)
    model.layers[-1].activation = "sigmoid"
    np.testing.assert_allclose(model.predict(X), 1 / (1 + np.exp(-linear)), rtol=1e-5, atol=1e-6)
    model.layers[1].return_sequences = True
    assert model.predict(X).shape == (4, 9, 3)
    np.testing.assert_allclose(model.predict(X), layers_forward(model, X), rtol=2e-6, atol=2e-6)
    with pytest.raises(ValueError, match="unknown activation"):
        model.layers[-1].activation = "swish"
    with pytest.raises(ValueError, match="reset_after cannot change"):
        model.layers[0].reset_after = False


def test_predict_runs_a_model_with_a_custom_layer_through_the_layers():
    model = built_model([fg.GRU(4, return_sequences=True), Scale(), fg.GRU(3), fg.Dense(2)], 2)
    X = np.random.default_rng(5).standard_normal((3, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(model.predict(X), layers_forward(model, X), rtol=2e-6, atol=2e-6)


PEAK_MEMORY_SCRIPT = """
import resource, sys
import numpy as np
import fastgru as fg
layers = [fg.GRU(64, return_sequences=True, seed=0)]
if sys.argv[1] == "dense":
    layers.append(fg.Dense(1, seed=1))
model = fg.Sequential(layers)
model.build((None, None, 8))
model.predict(np.zeros((1, 2, 8), np.float32))  # warm: imports, the C++ model
X = np.zeros((1024, 256, 8), np.float32)  # 8 MiB in; a (1024, 256, 64) sequence is 64 MiB
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
y = model.predict(X)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.parametrize("head", ["none", "dense"])
def test_predict_needs_no_scratch_beyond_the_intermediate_sequences(head):
    # The last layer writes the result: scratch holds only what earlier layers give, once.
    # GRU(64, seq) alone needs its 64 MiB output and nothing else; with a Dense(1) head the
    # GRU's 64 MiB sequence is the one intermediate (it was 128 and 192 MiB).
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    run = subprocess.run([sys.executable, "-c", PEAK_MEMORY_SCRIPT, head], capture_output=True,
                         text=True, env=env, check=True)
    grew_mib = float(run.stdout.strip())
    assert grew_mib < 64 * 1.4, f"peak memory grew by {grew_mib:.0f} MiB"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("units", [1, 13, 50, 129])
def test_one_window_and_one_stream_give_the_batched_rows_bit_for_bit(simd, units, reset_after,
                                                                     dtype):
    # A single window (predict) and a stream of one run the batch-1 latency path on every
    # SIMD path (cpp/gru_forward.h: one chunk of registers for few units, several beyond; H =
    # 50 is 19 AVX2 vectors, 38 SSE2/NEON ones); the batched kernel runs the rows of a batch.
    # Both sum in the same order, so the row must come out the same to the last bit.
    model = built_model([fg.GRU(units, reset_after=reset_after, dtype=dtype), fg.Dense(2, dtype=dtype)],
                        2, seed=units)
    X = np.random.default_rng(units).standard_normal((3, 12, 2)).astype(dtype)
    batched = model.predict(X)
    np.testing.assert_array_equal(model.predict(X[:1]), batched[:1])
    one, three = model.stream(), model.stream(batch_size=3)
    for t in range(X.shape[1]):
        np.testing.assert_array_equal(one.step(X[0, t]), three.step(X[:, t])[0])
