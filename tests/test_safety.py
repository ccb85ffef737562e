"""Embedding guarantees that need no threads: weights cannot go stale, layers are not shared
silently, the training tape owns its input, and every argument is bounded or refused."""
import copy
import subprocess
import sys

import numpy as np
import pytest

import fastgru as fg
from fastgru import _core

from conftest import Scale, at_byte_offset, built_model


# -- weights cannot go stale --------------------------------------------------------------
def test_live_weight_arrays_are_read_only_so_predict_and_evaluate_agree():
    model = built_model([fg.GRU(5), fg.Dense(1)])
    model.compile(loss="mse")
    for array in (model.layers[1].bias, model.layers[0].kernel, model.layers[0].recurrent_kernel,
                  *model.layers[0].weights):
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 100
    X = np.random.default_rng(1).standard_normal((4, 6, 3)).astype(np.float32)
    y = np.zeros((4, 1), np.float32)
    old_bias = model.layers[1].bias.item()
    before = model.predict(X)
    model.layers[1].set_weights([model.layers[1].kernel, np.full(1, 100.0)])  # the way to write
    after = model.predict(X)
    np.testing.assert_allclose(after, before - old_bias + 100, rtol=1e-5)
    np.testing.assert_allclose(float(model.evaluate(X, y)), float(np.mean(after ** 2)), rtol=1e-5)


# -- shared layers --------------------------------------------------------------------------
def test_a_layer_cannot_be_shared_between_two_models():
    first = built_model([fg.GRU(4), fg.Dense(1)])
    with pytest.raises(ValueError, match="already belongs to model 'sequential'"):
        fg.Sequential([first.layers[0], fg.Dense(2)])
    # two unbuilt models holding one layer: the second build is refused, nothing rebound
    gru = fg.GRU(3)
    a, b = fg.Sequential([gru]), fg.Sequential([gru, fg.Dense(1)])
    a.build((None, None, 2))
    with pytest.raises(ValueError, match="cannot be shared"):
        b.build((None, None, 2))
    assert gru.owner is a


def test_copies_and_rebuilt_layers_are_free_to_join_a_new_model():
    first = built_model([fg.GRU(4), fg.Dense(1)])
    X = np.random.default_rng(2).standard_normal((2, 5, 3)).astype(np.float32)
    clone = copy.deepcopy(first)
    np.testing.assert_array_equal(clone.predict(X), first.predict(X))
    moved = fg.Sequential([copy.deepcopy(first.layers[0]), fg.Dense(1)])
    moved.build((None, None, 3))
    assert moved.layers[0].owner is moved


def test_a_fit_trains_every_layer_of_the_model_that_fits():
    model = built_model([fg.GRU(4), fg.Dense(1)])
    model.compile(optimizer=fg.Adam(1e-2), loss="mse")
    before = [layer.get_weights() for layer in model.layers]
    X = np.random.default_rng(3).standard_normal((16, 5, 3)).astype(np.float32)
    model.fit(X, X[:, -1, :1], epochs=2, batch_size=8, verbose=0)
    for layer, old in zip(model.layers, before):
        assert not np.allclose(layer.get_weights()[0], old[0])


# -- the training tape ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_tape_does_not_see_later_writes_to_the_callers_x(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6, 2)).astype(dtype)
    w = [rng.standard_normal(s).astype(dtype) * 0.3 for s in [(2, 12), (4, 12), (2, 12)]]
    d_h = rng.standard_normal((3, 4)).astype(dtype)
    _, _, tape = fg.gru_forward_train(x, *w)
    want = fg.gru_backward(tape, d_h_last=d_h)
    _, _, tape = fg.gru_forward_train(x, *w)
    x[...] = 7.0  # the caller refills its batch buffer before backward
    got = fg.gru_backward(tape, d_h_last=d_h)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


# -- every argument bounded or refused ------------------------------------------------------
def test_thread_counts_are_bounded():
    limit = _core.thread_limit()
    assert limit >= 64
    previous = fg.get_num_threads()
    try:
        for n in (limit + 1, 40000, 100000, 2 ** 40):
            with pytest.raises(ValueError, match=f"between 1 and {limit}"):
                fg.set_num_threads(n)
        with pytest.raises(ValueError, match=f"between 1 and {limit}"):
            _core.set_num_threads(100000)  # the native entry point checks too
        assert fg.get_num_threads() == previous
        fg.set_num_threads(limit)  # the most allowed still trains (threads capped by rows)
        model = built_model([fg.GRU(3), fg.Dense(1)])
        model.compile(loss="mse")
        X = np.zeros((4, 3, 3), np.float32)
        model.fit(X, np.zeros((4, 1)), epochs=1, verbose=0)
    finally:
        fg.set_num_threads(previous)


def test_cli_refuses_a_huge_thread_count_in_one_line(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("y\n" + "\n".join(str(i % 7) for i in range(60)) + "\n")
    run = subprocess.run([sys.executable, "-m", "fastgru.cli", "fit", str(csv), "--target", "y",
                          "-o", str(tmp_path / "m.npz"), "--threads", "100000", "--window", "5",
                          "--epochs", "1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.count("\n") == 1 and "--threads" in run.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_misaligned_arrays_are_copied_before_the_kernels_read_them(dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 3)).astype(dtype)
    w = [rng.standard_normal(s).astype(dtype) * 0.3 for s in [(3, 15), (5, 15), (2, 15)]]
    want = fg.gru_forward(x, *w)
    got = fg.gru_forward(at_byte_offset(x), *[at_byte_offset(a) for a in w])
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    packed = fg.PackedGRU(*w)
    np.testing.assert_array_equal(packed.forward(at_byte_offset(x))[0], want[0])

    model = built_model([fg.GRU(5, dtype=dtype), fg.Dense(2, dtype=dtype)])
    np.testing.assert_array_equal(model.predict(at_byte_offset(x)), model.predict(x))
    st, ref = model.stream(), model.stream()
    for t in range(x.shape[1]):
        np.testing.assert_array_equal(st.step(at_byte_offset(x[0, t])), ref.step(x[0, t]))
    st.reset([at_byte_offset(np.ones((1, 5), dtype))])
    np.testing.assert_array_equal(st.state[0], np.ones((1, 5)))


def test_the_native_entry_points_refuse_misaligned_arrays():
    f32 = np.float32
    w = [np.zeros(s, f32) for s in [(3, 15), (5, 15), (2, 15)]]
    with pytest.raises(ValueError, match="aligned"):
        _core.PackedGRU(at_byte_offset(w[0]), w[1], w[2], True)
    packed = _core.PackedGRU(*w, True)
    with pytest.raises(ValueError, match="aligned"):
        packed.forward(at_byte_offset(np.zeros((1, 2, 3), f32)), None)
    model = built_model([fg.GRU(5), fg.Dense(1)])
    with pytest.raises(ValueError, match="aligned"):
        model.inference_snapshot().runner.predict(at_byte_offset(np.zeros((1, 2, 3), f32)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e300])
def test_set_weights_refuses_values_that_are_not_finite_in_the_models_dtype(bad):
    model = built_model([fg.GRU(3), fg.Dense(1)])
    before = model.get_weights()
    weights = model.get_weights()
    weights[2] = weights[2].astype(np.float64)
    weights[2][0, 0] = bad
    with pytest.raises(ValueError, match="weight 2 contains NaN or inf"):
        model.set_weights(weights)
    with pytest.raises(ValueError, match="weight 2 contains NaN or inf"):
        model.layers[0].set_weights(weights[:3])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    model64 = built_model([fg.GRU(3, dtype="float64"), fg.Dense(1, dtype="float64")])
    ws = model64.get_weights()
    ws[0][0, 0] = 1e300  # finite in float64
    model64.set_weights(ws)


@pytest.mark.parametrize("path", ["cpp", "python"])
@pytest.mark.parametrize("reading", [1 + 2j, np.array([1 + 0j]), "1.5", np.array(["1.5"]),
                                     np.array([b"1.5"]), object()])
def test_stream_step_refuses_what_predict_refuses(path, reading):
    layers = [fg.GRU(3), fg.Dense(1)]
    if path == "python":
        layers.insert(1, Scale())
    model = built_model(layers, features=1)
    with pytest.raises(TypeError, match="number"):
        model.stream().step(reading)
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.asarray(reading).reshape(1, 1, -1))
