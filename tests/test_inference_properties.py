"""Randomised equivalence of the C++ inference path (fastgru.inference) with the layers' own
forward passes: model.predict(X) equals calling each layer in turn, and stepping a stream
through X[:, t] equals predict's per-step outputs, for random stacks of GRU and Dense layers,
unit counts around every SIMD width, batch sizes that hit the batch-1 path and partial row
blocks, every compiled SIMD path, one or two threads, float32 and float64."""
import contextlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgru as fg
from fastgru import _core

from conftest import layers_forward

UNITS = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 50, 64, 65])
ACTIVATIONS = st.sampled_from([None, "relu", "sigmoid", "tanh", "softmax"])
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@contextlib.contextmanager
def running_on(simd, threads):
    previous_simd, previous_threads = _core.config()["simd"], fg.get_num_threads()
    _core.set_simd(simd)
    fg.set_num_threads(threads)
    try:
        yield
    finally:
        _core.set_simd(previous_simd)
        fg.set_num_threads(previous_threads)


@st.composite
def stacks(draw, sequence_out=False):
    """Layer specs: GRUs (each one that feeds a GRU keeps the sequence), Dense layers between
    and after them. With sequence_out every GRU returns sequences (one output per step)."""
    n_gru = draw(st.integers(1, 3))
    specs = []
    for g in range(n_gru):
        last = g == n_gru - 1
        specs.append(("gru", draw(UNITS), draw(st.booleans()),
                      True if (sequence_out or not last) else draw(st.booleans())))
        if draw(st.integers(0, 3)) == 0:
            specs.append(("dense", draw(st.integers(1, 9)), draw(ACTIVATIONS)))
    if draw(st.booleans()):
        specs.append(("dense", draw(st.integers(1, 9)), draw(ACTIVATIONS)))
    return specs


def make_model(specs, features, dtype, seed):
    layers = []
    for spec in specs:
        if spec[0] == "gru":
            layers.append(fg.GRU(spec[1], reset_after=spec[2], return_sequences=spec[3], dtype=dtype))
        else:
            layers.append(fg.Dense(spec[1], activation=spec[2], dtype=dtype))
    model = fg.Sequential(layers)
    model.build((None, None, features))
    rng = np.random.default_rng(seed)
    model.set_weights([w + 0.3 * rng.standard_normal(w.shape) for w in model.get_weights()])
    return model


def tolerance(dtype):
    return 2e-5 if dtype == "float32" else 1e-12


CASE = dict(
    features=st.sampled_from([1, 2, 3, 8, 40]),
    batch=st.sampled_from([1, 2, 9, 33]),
    steps=st.integers(1, 20),
    dtype=st.sampled_from(["float32", "float64"]),
    simd=st.sampled_from(_core.config()["simd_supported"]),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)


@SETTINGS
@given(specs=stacks(), **CASE)
def test_predict_equals_calling_the_layers(specs, features, batch, steps, dtype, simd, threads, seed):
    with running_on(simd, threads):
        model = make_model(specs, features, dtype, seed)
        X = np.random.default_rng(seed + 1).standard_normal((batch, steps, features)).astype(dtype)
        got = model.predict(X)
        expected = layers_forward(model, X)
    assert got.shape == expected.shape and got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, expected, rtol=tolerance(dtype), atol=tolerance(dtype))


@SETTINGS
@given(specs=stacks(sequence_out=True), **CASE)
def test_stream_steps_equal_predict_at_every_step(specs, features, batch, steps, dtype, simd,
                                                  threads, seed):
    with running_on(simd, threads):
        model = make_model(specs, features, dtype, seed)
        X = np.random.default_rng(seed + 1).standard_normal((batch, steps, features)).astype(dtype)
        expected = model.predict(X)  # (batch, steps, outputs)
        stream = model.stream(batch_size=batch)
        got = np.stack([stream.step(X[:, t]) for t in range(steps)], axis=1)
        if batch == 1:  # a stream of one also takes (features,) and gives (outputs,)
            one = model.stream()
            flat = np.stack([one.step(X[0, t]) for t in range(steps)])
            np.testing.assert_array_equal(flat, got[0])
    np.testing.assert_allclose(got, expected, rtol=tolerance(dtype), atol=tolerance(dtype))
