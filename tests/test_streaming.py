import gc

import numpy as np
import pytest

import fastgru as fg

from conftest import Scale


def trained_model(stacked=False, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((64, 20, 3)).astype(np.float32)
    y = X[:, -5:, 0].mean(axis=1, keepdims=True)
    layers = ([fg.GRU(8, return_sequences=True, seed=1)] if stacked else []) + [fg.GRU(12, seed=2), fg.Dense(1, seed=3)]
    model = fg.Sequential(layers)
    model.compile(optimizer=fg.Adam(1e-2), loss="mse")
    model.fit(X, y, epochs=2, batch_size=16, verbose=0, seed=0)
    return model, X


@pytest.mark.parametrize("stacked", [False, True])
def test_streaming_a_window_reading_by_reading_equals_predict(stacked):
    model, X = trained_model(stacked)
    st = model.stream()
    for t in range(X.shape[1]):
        y_t = st.step(X[0, t])
    np.testing.assert_allclose(y_t, model.predict(X[:1])[0], rtol=1e-6, atol=1e-6)
    st.reset()
    assert all(np.all(s == 0) for s in st.state)
    for t in range(X.shape[1]):
        y_t = st.step(X[1, t])
    np.testing.assert_allclose(y_t, model.predict(X[1:2])[0], rtol=1e-6, atol=1e-6)


def test_streaming_batches_and_state_round_trip():
    model, X = trained_model()
    st = model.stream(batch_size=4)
    for t in range(10):
        st.step(X[:4, t])
    saved = st.state
    a = st.step(X[:4, 10])
    st.reset(saved)
    np.testing.assert_array_equal(st.step(X[:4, 10]), a)


def test_streaming_rejects_bad_input():
    model, X = trained_model()
    st = model.stream()
    with pytest.raises(ValueError, match="x_t must have shape"):
        st.step(np.zeros(4))
    with pytest.raises(ValueError, match="states must hold 1 arrays"):
        st.reset([np.zeros((1, 12)), np.zeros((1, 12))])
    with pytest.raises(RuntimeError, match="built model"):
        fg.Sequential([fg.GRU(3), fg.Dense(1)]).stream()
    with pytest.raises(ValueError, match="batch_size=1000000000000 streams need"):
        model.stream(batch_size=10 ** 12)  # more than any machine's memory: said, not bad_alloc
    before = st.state
    for bad in (np.full((1, 12), 1 + 5j), np.full((1, 12), "a"), np.full((1, 12), None)):
        with pytest.raises(TypeError, match="must hold real numbers"):
            st.reset([bad])
        with pytest.raises(TypeError, match="must hold real numbers"):
            st.state = [bad]
    np.testing.assert_array_equal(st.state[0], before[0])


def sequence_model(dtype="float32", activation="tanh", seed=0):
    """GRU(return_sequences) -> GRU(return_sequences) -> Dense: one output per step."""
    model = fg.Sequential([
        fg.GRU(7, return_sequences=True, seed=seed, dtype=dtype),
        fg.GRU(5, return_sequences=True, reset_after=False, seed=seed + 1, dtype=dtype),
        fg.Dense(3, activation=activation, seed=seed + 2, dtype=dtype),
    ])
    model.build((None, None, 2))
    rng = np.random.default_rng(seed)
    model.set_weights([w + 0.1 * rng.standard_normal(w.shape) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_step_of_a_stream_equals_predict_with_return_sequences(dtype):
    model = sequence_model(dtype)
    X = np.random.default_rng(1).standard_normal((4, 30, 2)).astype(dtype)
    expected = model.predict(X)  # (4, 30, 3)
    st = model.stream(batch_size=4)
    got = np.stack([st.step(X[:, t]) for t in range(X.shape[1])], axis=1)
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    assert got.dtype == np.dtype(dtype)


def test_step_writes_into_out_and_takes_numbers_lists_and_other_dtypes():
    model, X = trained_model()
    st, ref = model.stream(), model.stream()
    out = np.empty(1, np.float32)
    for t in range(5):
        expected = ref.step(X[0, t])
        assert st.step(X[0, t].tolist(), out=out) is out
        np.testing.assert_array_equal(out, expected)
    one = fg.Sequential([fg.GRU(4, seed=0), fg.Dense(2, seed=1)])
    one.build((None, None, 1))
    a, b = one.stream(), one.stream()
    np.testing.assert_array_equal(a.step(0.5), b.step(np.array([0.5], np.float64)))
    with pytest.raises(ValueError, match="out must have shape"):
        a.step(0.5, out=np.empty((1, 2), np.float32))
    with pytest.raises(TypeError, match="out must have dtype"):
        a.step(0.5, out=np.empty(2, np.float64))


def test_step_rejects_nan_and_leaves_the_state_alone():
    model, X = trained_model()
    st = model.stream()
    st.step(X[0, 0])
    before = st.state
    with pytest.raises(ValueError, match="NaN or inf"):
        st.step(np.array([np.nan, 0, 0], np.float32))
    np.testing.assert_array_equal(st.state[0], before[0])
    with pytest.raises(ValueError, match="one row per stream"):
        model.stream(batch_size=2).step(X[0, 0])
    with pytest.raises(TypeError, match="number"):
        st.step("abc")
    with pytest.raises(ValueError, match=r"must have shape \(1, 12\)"):
        st.reset([np.zeros((2, 12))])


def test_a_stream_keeps_its_weights_and_predict_follows_new_ones():
    model, X = trained_model()
    st = model.stream()
    before = model.predict(X[:1])
    model.set_weights([w * 0.5 for w in model.get_weights()])
    after = model.predict(X[:1])
    assert not np.allclose(before, after)
    for t in range(X.shape[1]):
        y = st.step(X[0, t])
    np.testing.assert_allclose(y, before[0], rtol=1e-6, atol=1e-6)  # the old weights
    model.layers[-1].set_weights([np.zeros((12, 1)), np.ones(1)])  # one layer, directly
    np.testing.assert_array_equal(model.predict(X[:2]), np.ones((2, 1), np.float32))


def test_a_model_with_a_custom_layer_streams_like_predict():
    model = fg.Sequential([fg.GRU(4, return_sequences=True, seed=0), Scale(), fg.GRU(3, seed=1),
                           fg.Dense(2, seed=2)])
    model.build((None, None, 2))
    X = np.random.default_rng(6).standard_normal((2, 7, 2)).astype(np.float32)
    st = model.stream(batch_size=2)
    for t in range(X.shape[1]):
        y = st.step(X[:, t])
    np.testing.assert_allclose(y, model.predict(X), rtol=1e-6, atol=1e-6)
    saved = st.state
    assert [s.shape for s in saved] == [(2, 4), (2, 3)]
    st.reset()
    assert all(np.all(s == 0) for s in st.state)
    st.reset(saved)
    np.testing.assert_array_equal(st.state[1], saved[1])
    with pytest.raises(ValueError, match="NaN or inf"):
        st.step(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="x_t must have shape"):
        st.step(np.zeros(2))


def test_step_into_a_read_only_out_names_out_and_leaves_the_state_alone():
    model, X = trained_model()
    st = model.stream()
    st.step(X[0, 0])
    before = st.state
    out = np.empty(1, np.float32)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="out must be writeable"):
        st.step(X[0, 1], out=out)
    np.testing.assert_array_equal(st.state[0], before[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_plain_array_and_any_other_form_of_a_reading_step_to_the_same_bits(dtype):
    # step takes a native, C-ordered, aligned array as it is (its fast path); every other form
    # goes through a conversion. Both must feed the kernel the same numbers.
    model = fg.Sequential([fg.GRU(5, return_sequences=True, seed=0, dtype=dtype),
                           fg.GRU(6, seed=1, dtype=dtype), fg.Dense(2, seed=2, dtype=dtype)])
    model.build((None, None, 3))
    X = np.random.default_rng(8).standard_normal((2, 9, 3)).astype(dtype)
    plain, other = model.stream(batch_size=2), model.stream(batch_size=2)
    out = np.empty((2, 2), dtype)
    for t in range(X.shape[1]):
        x = np.ascontiguousarray(X[:, t])
        forms = [x.astype(x.dtype.newbyteorder(">")), np.repeat(x, 2, axis=1)[:, ::2],
                 np.asfortranarray(x), x.tolist()]
        y = plain.step(x)
        assert other.step(forms[t % len(forms)], out=out) is out
        np.testing.assert_array_equal(out, y)
    one = fg.Sequential([fg.GRU(4, seed=0, dtype=dtype), fg.Dense(2, seed=1, dtype=dtype)])
    one.build((None, None, 1))
    a, b = one.stream(), one.stream()
    np.testing.assert_array_equal(a.step(np.array(0.25, dtype)), b.step(0.25))  # 0-d, flat


def test_step_binds_its_arguments_like_a_method_and_checks_out_as_before():
    model, X = trained_model()
    st, ref = model.stream(), model.stream()
    out = np.empty(1, np.float32)
    assert st.step(x_t=X[0, 0], out=out) is out
    np.testing.assert_array_equal(out, ref.step(X[0, 0]))
    np.testing.assert_array_equal(st.step(X[0, 1], out=None), ref.step(X[0, 1]))
    with pytest.raises(TypeError, match="missing required argument 'x_t'"):
        st.step()
    with pytest.raises(TypeError, match="multiple values for argument 'x_t'"):
        st.step(X[0, 2], x_t=X[0, 2])
    with pytest.raises(TypeError, match="unexpected keyword argument 'y'"):
        st.step(X[0, 2], y=1)
    with pytest.raises(TypeError, match="at most 2 arguments"):
        st.step(X[0, 2], out, None)
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        model.stream(batch_size=2).step(X[:2, 2], out=np.empty((2, 2), np.float32)[:, ::2])
    with pytest.raises(TypeError, match="out must have dtype"):
        st.step(X[0, 2], out=np.empty(1, ">f4"))
    with pytest.raises(TypeError, match="number"):
        st.step(np.array([1j, 0, 0]))
    np.testing.assert_array_equal(st.state[0], ref.state[0])  # refused calls changed nothing


def test_a_step_taken_from_a_stream_keeps_the_stream_alive():
    model, X = trained_model()
    step = model.stream().step  # the stream object itself is gone
    gc.collect()
    ref = model.stream()
    for t in range(3):
        np.testing.assert_array_equal(step(X[0, t]), ref.step(X[0, t]))
