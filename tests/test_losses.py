"""Losses: values against Keras' definitions written out by hand, gradients against finite differences."""
import numpy as np
import pytest

from fastgru import losses


def _fd_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def test_mse_mae_huber_values_match_keras_definitions(rng):
    y = rng.standard_normal((6, 3))
    p = rng.standard_normal((6, 3)) * 2
    assert losses.get("mse")(y, p) == pytest.approx(np.mean(np.mean((p - y) ** 2, axis=-1)), rel=1e-12)
    assert losses.get("mae")(y, p) == pytest.approx(np.mean(np.abs(p - y)), rel=1e-12)
    e = p - y
    huber = np.where(np.abs(e) <= 1.0, 0.5 * e**2, np.abs(e) - 0.5)
    assert losses.get("huber")(y, p) == pytest.approx(huber.mean(), rel=1e-12)
    h2 = losses.Huber(delta=0.5)
    huber2 = np.where(np.abs(e) <= 0.5, 0.5 * e**2, 0.5 * np.abs(e) - 0.125)
    assert h2(y, p) == pytest.approx(huber2.mean(), rel=1e-12)


def test_targets_without_trailing_axis_are_broadcast_like_keras(rng):
    y = rng.standard_normal(5)
    p = rng.standard_normal((5, 1))
    assert losses.get("mse")(y, p) == pytest.approx(np.mean((p[:, 0] - y) ** 2))
    with pytest.raises(ValueError, match="y has shape"):
        losses.get("mse")(rng.standard_normal(4), p)


def test_binary_crossentropy_clips_like_keras(rng):
    y = np.array([[1.0], [0.0], [1.0], [0.0]])
    p = np.array([[0.9], [0.2], [0.0], [1.0]])  # the last two saturate: clipped to eps, 1-eps
    eps = 1e-7
    pc = np.clip(p, eps, 1 - eps)
    expected = -np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    assert losses.get("binary_crossentropy")(y, p) == pytest.approx(expected, rel=1e-9)


def test_binary_crossentropy_from_logits_equals_probability_form(rng):
    y = (rng.random((7, 2)) > 0.5).astype(float)
    z = rng.standard_normal((7, 2)) * 3
    bce = losses.BinaryCrossentropy()
    from_logits, _ = bce.logits_value_and_grad(y, z, grad=False)
    from_probs = bce(y, 1 / (1 + np.exp(-z)))
    assert from_logits == pytest.approx(from_probs, rel=1e-9)
    # and stays finite where the probabilities saturate
    value, grad = bce.logits_value_and_grad(np.array([[1.0], [0.0]]), np.array([[-800.0], [800.0]]))
    assert value == pytest.approx(800.0)
    np.testing.assert_allclose(grad, [[-0.5], [0.5]])


def test_sparse_categorical_crossentropy_values(rng):
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = -np.mean(np.log(probs[np.arange(5), labels]))
    sce = losses.get("sparse_categorical_crossentropy")
    assert sce(labels, probs) == pytest.approx(expected, rel=1e-9)
    value, _ = sce.logits_value_and_grad(labels, logits, grad=False)
    assert value == pytest.approx(expected, rel=1e-9)
    assert sce(labels.reshape(5, 1).astype(float), probs) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="outside"):
        sce(np.array([0, 4, 1, 1, 2]), probs)
    with pytest.raises(ValueError, match="integer"):
        sce(np.array([0, 0.5, 1, 1, 2]), probs)


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "binary_crossentropy", "sparse_categorical_crossentropy"])
def test_gradient_matches_finite_differences(name, rng):
    loss = losses.get(name)
    if name == "sparse_categorical_crossentropy":
        y = rng.integers(0, 3, size=6)
        p = rng.random((6, 3)) * 0.8 + 0.1
    elif name == "binary_crossentropy":
        y = (rng.random((6, 2)) > 0.5).astype(float)
        p = rng.random((6, 2)) * 0.8 + 0.1
    else:
        y = rng.standard_normal((6, 2))
        p = rng.standard_normal((6, 2)) * 2
    _, g = loss.value_and_grad(y, p.copy())
    fd = _fd_grad(lambda q: loss.value_and_grad(y, q.copy(), grad=False)[0], p.copy())
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", ["binary_crossentropy", "sparse_categorical_crossentropy"])
def test_fused_gradient_matches_finite_differences(name, rng):
    loss = losses.get(name)
    if name == "binary_crossentropy":
        y = (rng.random((5, 2)) > 0.5).astype(float)
        z = rng.standard_normal((5, 2)) * 2
    else:
        y = rng.integers(0, 4, size=5)
        z = rng.standard_normal((5, 4)) * 2
    _, g = loss.logits_value_and_grad(y, z.copy())
    fd = _fd_grad(lambda q: loss.logits_value_and_grad(y, q.copy(), grad=False)[0], z.copy())
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-10)


def test_unknown_loss_raises():
    with pytest.raises(ValueError, match="unknown loss"):
        losses.get("hinge-ish")


def test_serialize_round_trip():
    h = losses.Huber(delta=0.25)
    back = losses.deserialize(losses.serialize(h))
    assert isinstance(back, losses.Huber) and back.delta == 0.25
    for name in ["mse", "mae", "binary_crossentropy", "sparse_categorical_crossentropy"]:
        loss = losses.get(name)
        assert type(losses.deserialize(losses.serialize(loss))) is type(loss)
