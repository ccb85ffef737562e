"""Property tests over the public entry points, bounded in time (few examples, small shapes):
valid input gives what the NumPy reference gives; any other input gives a ValueError or
TypeError (KeyError for a missing column), never a crash, a hang or silent garbage. The
sanitizer job (test_sanitizers.py) runs the kernel and stream properties under ASan/UBSan."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastgru as fg
from fastgru import reference

from conftest import at_byte_offset

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REFUSED = (ValueError, TypeError)
DTYPES = st.sampled_from([np.float32, np.float64])
TOL = {np.float32: 2e-4, np.float64: 1e-9}


@st.composite
def arrays_of_any_kind(draw, max_dims=4):
    """Arrays a careless caller might pass: any rank, empty axes, odd dtypes, NaN/inf,
    non-contiguous or misaligned layouts."""
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=max_dims)))
    kind = draw(st.sampled_from(["f4", "f8", "f2", "i4", "u1", "?", "c8", "U3", "O"]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    a = (rng.standard_normal(shape) * 3).astype(kind) if kind not in ("U3", "O") \
        else np.full(shape, "1.5", dtype=kind)
    if kind in ("f4", "f8") and a.size and draw(st.booleans()):
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    layout = draw(st.sampled_from(["c", "fortran", "strided", "misaligned"]))
    if layout == "fortran":
        a = np.asfortranarray(a)
    elif layout == "strided" and a.ndim:
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    elif layout == "misaligned" and a.dtype != object:
        a = at_byte_offset(a, 1)
    return a


# -- kernels -----------------------------------------------------------------------------
@st.composite
def gru_problems(draw):
    dtype = draw(DTYPES)
    b, t, i, h = (draw(st.integers(1, n)) for n in (5, 6, 5, 19))
    reset_after = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    x = rng.standard_normal((b, t, i)).astype(dtype)
    k = (rng.standard_normal((i, 3 * h)) * 0.4).astype(dtype)
    rk = (rng.standard_normal((h, 3 * h)) * 0.4).astype(dtype)
    bias = (rng.standard_normal((2, 3 * h) if reset_after else (3 * h,)) * 0.1).astype(dtype)
    h0 = rng.standard_normal((b, h)).astype(dtype) if draw(st.booleans()) else None
    byte_offset = draw(st.sampled_from([0, 0, 1, 4]))
    if byte_offset:
        x, k = at_byte_offset(x, byte_offset), at_byte_offset(k, byte_offset)
    return x, k, rk, bias, h0, reset_after


@SETTINGS
@given(gru_problems(), st.data())
def test_kernels_match_the_reference_for_any_layout(problem, data):
    x, k, rk, bias, h0, reset_after = problem
    tol = TOL[x.dtype.type]
    out, h_last, tape = fg.gru_forward_train(x, k, rk, bias, h0, reset_after)
    ref_out, ref_h, ref_tape = reference.gru_forward_train(x, k, rk, bias, h0, reset_after)
    np.testing.assert_allclose(out, ref_out, rtol=tol, atol=tol)
    np.testing.assert_allclose(h_last, ref_h, rtol=tol, atol=tol)
    d_out = np.random.default_rng(data.draw(st.integers(0, 99))).standard_normal(out.shape)
    got = fg.gru_backward(tape, d_out.astype(x.dtype))
    want = reference.gru_backward(ref_tape, d_out)
    for name in want._fields:
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=20 * tol,
                                   atol=20 * tol, err_msg=name)


@SETTINGS
@given(arrays_of_any_kind(), arrays_of_any_kind(max_dims=3), arrays_of_any_kind(max_dims=3),
       arrays_of_any_kind(max_dims=3), st.booleans())
def test_kernels_refuse_what_they_cannot_run(x, k, rk, bias, reset_after):
    try:
        out, h_last = fg.gru_forward(x, k, rk, bias, reset_after=reset_after)
    except REFUSED:
        return
    ref_out, _ = reference.gru_forward(x, k, rk, bias, reset_after=reset_after)
    np.testing.assert_allclose(out, ref_out, rtol=1e-3, atol=1e-3, equal_nan=True)


# -- layers --------------------------------------------------------------------------------
@SETTINGS
@given(gru_problems(), st.booleans())
def test_a_gru_layer_computes_the_reference(problem, return_sequences):
    x, k, rk, bias, _, reset_after = problem
    layer = fg.GRU(rk.shape[0], return_sequences=return_sequences, reset_after=reset_after,
                   dtype=x.dtype)
    layer.set_weights([k, rk, bias])
    ref_out, ref_h = reference.gru_forward(x, k, rk, bias, reset_after=reset_after)
    tol = TOL[x.dtype.type]
    np.testing.assert_allclose(layer(x), ref_out if return_sequences else ref_h, rtol=tol, atol=tol)


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), st.sampled_from([None, "relu", "sigmoid", "tanh",
                                                                 "softmax"]),
       arrays_of_any_kind(max_dims=3), arrays_of_any_kind(max_dims=2), st.integers(0, 2 ** 16))
def test_a_dense_layer_computes_numpy_or_refuses(inputs, units, activation, kernel, bias, seed):
    layer = fg.Dense(units, activation=activation)
    try:
        layer.set_weights([kernel, bias])
    except REFUSED:
        assert layer.built is False or kernel.shape != (layer.input_size, units) \
            or bias.shape != (units,) or kernel.dtype.kind not in "fiu" \
            or not (np.isfinite(kernel.astype(np.float32)).all()
                    and np.isfinite(bias.astype(np.float32)).all())
        return
    x = np.random.default_rng(seed).standard_normal((3, kernel.shape[0])).astype(np.float32)
    z = x @ kernel.astype(np.float32) + bias.astype(np.float32)
    want = {None: z, "relu": np.maximum(z, 0), "tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z)),
            "softmax": np.exp(z - z.max(-1, keepdims=True))
            / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)}[activation]
    np.testing.assert_allclose(layer(x), want, rtol=1e-4, atol=1e-5)


# -- model ---------------------------------------------------------------------------------
def small_model(features=2, units=5, seed=0):
    model = fg.Sequential([fg.GRU(units, seed=seed), fg.Dense(1, seed=seed)])
    model.build((None, None, features))
    model.compile(optimizer=fg.Adam(1e-2), loss="mse")
    return model


MODEL = small_model()


@SETTINGS
@given(arrays_of_any_kind())
def test_predict_refuses_or_agrees_with_the_layers(X):
    try:
        got = MODEL.predict(X)
    except REFUSED:
        return
    a = np.asarray(X, np.float32)
    for layer in MODEL.layers:
        a = layer(a)
    np.testing.assert_allclose(got, a, rtol=1e-5, atol=1e-6)


@settings(SETTINGS, max_examples=15)
@given(st.integers(1, 12), st.integers(1, 6), st.integers(1, 3), st.integers(1, 8),
       st.integers(1, 3), st.booleans(), st.integers(0, 2 ** 16))
def test_fit_on_any_small_problem_keeps_predict_and_evaluate_consistent(
        n, steps, features, batch_size, epochs, shuffle, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, steps, features)).astype(np.float32)
    y = rng.standard_normal((n, 1)).astype(np.float32)
    model = small_model(features, seed=seed % 7)
    hist = model.fit(X, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle, verbose=0,
                     seed=seed)
    assert len(hist.history["loss"]) == epochs
    pred = model.predict(X)
    assert pred.shape == (n, 1) and np.isfinite(pred).all()
    np.testing.assert_allclose(model.evaluate(X, y), np.mean((pred - y) ** 2), rtol=1e-4)


@SETTINGS
@given(arrays_of_any_kind(max_dims=3), arrays_of_any_kind(max_dims=2))
def test_fit_refuses_bad_data_and_leaves_the_weights_alone(X, y):
    model = small_model()
    before = model.get_weights()
    try:
        model.fit(X, y, epochs=1, verbose=0)
    except REFUSED:
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
        return
    assert all(np.isfinite(w).all() for w in model.get_weights())


# -- stream --------------------------------------------------------------------------------
@SETTINGS
@given(st.lists(arrays_of_any_kind(max_dims=2), min_size=1, max_size=6), st.integers(1, 2))
def test_a_stream_refuses_bad_readings_and_keeps_its_state(readings, batch_size):
    stream = MODEL.stream(batch_size)
    for x_t in readings:
        before = stream.state
        try:
            y = stream.step(x_t)
        except REFUSED:
            for a, b in zip(stream.state, before):
                np.testing.assert_array_equal(a, b)
            continue
        assert np.isfinite(y).all()


@SETTINGS
@given(st.integers(1, 8), st.integers(0, 2 ** 16))
def test_a_stream_steps_to_what_predict_gives(steps, seed):
    X = np.random.default_rng(seed).standard_normal((1, steps, 2)).astype(np.float32)
    stream = MODEL.stream()
    for t in range(steps):
        y = stream.step(at_byte_offset(X[0, t], 1 + t % 3))  # any alignment
    np.testing.assert_allclose(y, MODEL.predict(X)[0], rtol=1e-5, atol=1e-6)


# -- scalers and windows -------------------------------------------------------------------
FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(st.sampled_from(["minmax", "standard"]), st.integers(1, 12), st.integers(1, 3),
       st.data())
def test_scalers_round_trip(kind, n, features, data):
    values = np.array(data.draw(st.lists(FINITE, min_size=n * features, max_size=n * features)))
    X = values.reshape(n, features)
    scaler = fg.MinMaxScaler() if kind == "minmax" else fg.StandardScaler()
    Z = scaler.fit_transform(X)
    assert Z.shape == X.shape and np.isfinite(Z).all()
    np.testing.assert_allclose(scaler.inverse_transform(Z), X, rtol=1e-9, atol=1e-6)


@SETTINGS
@given(st.sampled_from(["minmax", "standard"]), arrays_of_any_kind(max_dims=3))
def test_scalers_refuse_or_transform(kind, X):
    scaler = fg.MinMaxScaler() if kind == "minmax" else fg.StandardScaler()
    try:
        Z = scaler.fit_transform(X)
    except REFUSED:
        return
    # scikit-learn's rule: NaN is ignored when fitting and kept; everything else is finite
    missing = np.isnan(np.asarray(X, np.float64))
    assert Z.shape == X.shape and np.array_equal(np.isnan(Z), missing)
    assert np.isfinite(Z[~missing]).all()


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 3), st.integers(1, 6), st.integers(1, 4),
       st.integers(1, 3), st.integers(0, 2 ** 16))
def test_make_windows_cuts_exact_windows(n, features, window, horizon, stride, seed):
    values = np.random.default_rng(seed).standard_normal((n, features))
    if n < window + horizon:
        with pytest.raises(ValueError):
            fg.make_windows(values, window, horizon, stride=stride)
        return
    X, y = fg.make_windows(values, window, horizon, stride=stride)
    samples = (n - window - horizon) // stride + 1
    assert X.shape == (samples, window, features)
    for i in range(samples):
        s = i * stride
        np.testing.assert_array_equal(X[i], values[s:s + window])
        target = values[s + window:s + window + horizon]
        np.testing.assert_array_equal(y[i].reshape(target.shape), target)


@SETTINGS
@given(arrays_of_any_kind(max_dims=3), st.integers(-2, 5), st.integers(-2, 3))
def test_make_windows_refuses_what_it_cannot_cut(values, window, horizon):
    try:
        X, y = fg.make_windows(values, window, horizon)
    except REFUSED:
        return
    assume(X.size)
    assert np.isfinite(X).all() and np.isfinite(y).all()
