import numpy as np
import pytest

import fastgru as fg


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
