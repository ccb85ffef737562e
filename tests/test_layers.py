"""Layers: Keras weight shapes, initialisers, forward against the NumPy reference, seeding."""
import numpy as np
import pytest

from fastgru import reference
from fastgru.layers import GRU, Dense, glorot_uniform, orthogonal
from fastgru.model import Sequential


def test_gru_weights_have_keras_shapes_and_initialisers():
    layer = GRU(5, seed=0)
    layer.build((None, 7, 3))
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (3, 15) and recurrent.shape == (5, 15) and bias.shape == (2, 15)
    assert kernel.dtype == np.float32
    limit = np.sqrt(6 / (3 + 15))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit
    # orthogonal (H, 3H): orthonormal rows, as Keras' Orthogonal transposes wide matrices
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(5), atol=1e-6)
    assert not bias.any()
    assert layer.count_params() == 3 * 15 + 5 * 15 + 30

    old = GRU(5, reset_after=False, seed=0)
    old.build((None, 7, 3))
    assert old.get_weights()[2].shape == (15,)


def test_initialisers_are_seedable():
    a = GRU(4, seed=3)
    b = GRU(4, seed=3)
    c = GRU(4, seed=4)
    for layer in (a, b, c):
        layer.build((None, 2, 2))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    rng = np.random.default_rng(0)
    q = orthogonal((6, 4), rng, dtype=np.float64)
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    assert glorot_uniform((10, 30), rng).dtype == np.float32


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_gru_forward_matches_reference(reset_after, return_sequences):
    rng = np.random.default_rng(1)
    layer = GRU(6, return_sequences=return_sequences, reset_after=reset_after, seed=2, dtype="float64")
    x = rng.standard_normal((4, 5, 3))
    layer.build(x.shape)
    bias = rng.standard_normal(layer.get_weights()[2].shape) * 0.1
    layer.set_weights([layer.get_weights()[0], layer.get_weights()[1], bias])
    out = layer(x)
    ref_out, ref_h = reference.gru_forward(x, *layer.get_weights(), reset_after=reset_after)
    np.testing.assert_allclose(out, ref_out if return_sequences else ref_h, rtol=1e-10, atol=1e-12)


def test_set_weights_repacks_and_checks_shapes():
    rng = np.random.default_rng(2)
    layer = GRU(3, seed=0)
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    first = layer(x)
    ws = [w * 0.5 for w in layer.get_weights()]
    layer.set_weights(ws)
    second = layer(x)
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, reference.gru_forward(x, *ws)[1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        layer.set_weights([ws[0].T, ws[1], ws[2]])
    with pytest.raises(ValueError, match="expects 3 weight arrays"):
        layer.set_weights(ws[:2])
    with pytest.raises(ValueError, match="features"):
        layer(rng.standard_normal((2, 4, 3)).astype(np.float32))


def test_dense_activations_and_shapes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4))
    for act, fn in [
        (None, lambda z: z),
        ("linear", lambda z: z),
        ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
        ("tanh", np.tanh),
        ("relu", lambda z: np.maximum(z, 0)),
        ("softmax", lambda z: np.exp(z) / np.exp(z).sum(-1, keepdims=True)),
    ]:
        d = Dense(3, activation=act, seed=1, dtype="float64")
        out = d(x)
        kernel, bias = d.get_weights()
        assert kernel.shape == (4, 3) and bias.shape == (3,)
        np.testing.assert_allclose(out, fn(x @ kernel + bias), rtol=1e-12)
    # on 3-D input Dense acts on the last axis, like Keras
    d = Dense(2, seed=0)
    x3 = rng.standard_normal((2, 3, 4)).astype(np.float32)
    assert d(x3).shape == (2, 3, 2)
    with pytest.raises(ValueError, match="unknown activation"):
        Dense(1, activation="gelu-ish")
    with pytest.raises(ValueError, match="units"):
        Dense(0)
    with pytest.raises(ValueError, match="units"):
        GRU(-1)


def test_sigmoid_does_not_overflow():
    d = Dense(1, activation="sigmoid", dtype="float64")
    d.build((None, 1))
    d.set_weights([np.array([[1.0]]), np.array([0.0])])
    out = d(np.array([[-1000.0], [1000.0], [0.0]]))
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 0.5])


def test_gru_rejects_non_3d_input():
    with pytest.raises(ValueError, match="3-D"):
        GRU(2)(np.zeros((3, 4), np.float32))


def test_layer_config_round_trip():
    g = GRU(7, return_sequences=True, reset_after=False, seed=5, dtype="float64", name="enc")
    g2 = GRU.from_config(g.get_config())
    assert g2.get_config() == g.get_config()
    d = Dense(3, activation="softmax", name="head")
    assert Dense.from_config(d.get_config()).get_config() == d.get_config()


def test_dense_activations_are_the_same_set_and_values_in_python_and_cpp():
    """Each Dense activation exists twice (NumPy for training, C++ for inference): one set of
    names, and the C++ predict equals the NumPy call for each."""
    from fastgru import _core
    from fastgru.layers import ACTIVATIONS

    assert sorted(_core.activation_names()) == sorted(ACTIVATIONS)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 7, 2))
    for name in ACTIVATIONS:
        model = Sequential([GRU(4, dtype="float64"), Dense(3, activation=name, dtype="float64")])
        model.build(X.shape)
        model.set_weights([rng.normal(size=w.shape) for w in model.get_weights()])
        h = model.layers[0](X)
        expected = model.layers[1](h)  # the layers' own NumPy call
        np.testing.assert_allclose(model.predict(X), expected, rtol=1e-12, atol=1e-12)
