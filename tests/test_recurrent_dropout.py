"""GRU(recurrent_dropout>0): Keras 3's per-gate masks (its implementation=1), trained in C++.

The masked C++ kernels (cpp/gru_masked.cpp) against the masked NumPy oracle on every SIMD
path, the oracle against finite differences, and both against Keras 3 fed the same masks.
"""
import os

import numpy as np
import pytest

import fastgru as fg
import fastgru.layers
from fastgru import gru, reference

from conftest import random_gru, recording_dropout_masks


def _masks(rng, batch, size, rate):
    return ((rng.random((3, batch, size)) >= rate) / (1.0 - rate))


def _case(rng, batch, steps, inputs, units, reset_after, h0=True):
    x, kernel, recurrent, bias, h0 = random_gru(rng, batch, steps, inputs, units, reset_after, h0)
    return x, kernel, recurrent, bias, h0, _masks(rng, batch, inputs, 0.3), _masks(rng, batch, units, 0.4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("units", [1, 13])
def test_masked_kernels_match_the_masked_reference(simd, dtype, reset_after, units):
    rng = np.random.default_rng(units + 2 * reset_after)
    x, kernel, recurrent, bias, h0, mx, mh = _case(rng, 3, 6, 5, units, reset_after)
    out, h_last, tape = reference.gru_forward_train(x, kernel, recurrent, bias, h0, reset_after,
                                                    input_masks=mx, recurrent_masks=mh)
    d_out = rng.standard_normal(out.shape)
    d_last = rng.standard_normal(h_last.shape)
    want = reference.gru_backward(tape, d_out, d_last)

    cast = [a.astype(dtype) for a in (x, kernel, recurrent, bias, mx, mh, h0)]
    got_out, got_last, got_tape = gru.gru_forward_train_masked(*cast, reset_after=reset_after)
    got = gru.gru_backward_masked(got_tape, d_out.astype(dtype), d_last.astype(dtype))
    tol = dict(rtol=1e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert got_out.dtype == dtype and got.dkernel.dtype == dtype
    np.testing.assert_allclose(got_out, out, **tol)
    np.testing.assert_allclose(got_last, h_last, **tol)
    for name in ("dx", "dh0", "dkernel", "drecurrent_kernel", "dbias"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), **tol, err_msg=name)
    assert gru.gru_backward_masked(got_tape, d_out.astype(dtype), need_dx=False).dx is None


@pytest.mark.parametrize("reset_after", [True, False])
def test_unit_masks_give_the_unmasked_kernels_results(reset_after):
    rng = np.random.default_rng(1)
    x, kernel, recurrent, bias, h0 = random_gru(rng, 2, 4, 3, 5, reset_after)
    out, h_last, tape = gru.gru_forward_train(x, kernel, recurrent, bias, h0, reset_after)
    m_out, m_last, m_tape = gru.gru_forward_train_masked(x, kernel, recurrent, bias, h0=h0,
                                                         reset_after=reset_after)
    np.testing.assert_allclose(m_out, out, rtol=1e-12, atol=1e-13)
    d_out = rng.standard_normal(out.shape)
    for a, b in zip(gru.gru_backward_masked(m_tape, d_out), gru.gru_backward(tape, d_out)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_masked_reference_gradients_match_finite_differences(reset_after):
    rng = np.random.default_rng(7)
    x, kernel, recurrent, bias, h0, mx, mh = _case(rng, 2, 3, 2, 3, reset_after)
    d_out = rng.standard_normal((2, 3, 3))
    d_last = rng.standard_normal((2, 3))
    args = [x, h0, kernel, recurrent, bias]

    def loss(x, h0, kernel, recurrent, bias):
        out, h_last, _ = reference.gru_forward_train(x, kernel, recurrent, bias, h0, reset_after,
                                                     input_masks=mx, recurrent_masks=mh)
        return np.sum(out * d_out) + np.sum(h_last * d_last)

    tape = reference.gru_forward_train(x, kernel, recurrent, bias, h0, reset_after,
                                       input_masks=mx, recurrent_masks=mh)[2]
    grads = reference.gru_backward(tape, d_out, d_last)
    analytic = [grads.dx, grads.dh0, grads.dkernel, grads.drecurrent_kernel, grads.dbias]
    eps = 1e-6
    for k, (arg, want) in enumerate(zip(args, analytic)):
        numeric = np.zeros_like(arg)
        for idx in np.ndindex(arg.shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            numeric[idx] = (loss(*plus) - loss(*minus)) / (2 * eps)
        np.testing.assert_allclose(want, numeric, rtol=1e-6, atol=1e-8, err_msg=str(k))


def test_masked_kernels_check_their_arrays():
    rng = np.random.default_rng(0)
    x, kernel, recurrent, bias, h0, mx, mh = _case(rng, 2, 3, 4, 5, True)
    with pytest.raises(ValueError, match="recurrent_masks"):
        gru.gru_forward_train_masked(x, kernel, recurrent, bias, mx, mh[:, :1])
    with pytest.raises(ValueError, match="input_masks"):
        gru.gru_forward_train_masked(x, kernel, recurrent, bias, mx[:2], mh)
    with pytest.raises(ValueError, match="input_masks"):  # the C++ side checks too
        fg._core.gru_masked_forward_train(x, h0, kernel, recurrent, bias, mx[:, :1].copy(), mh,
                                          True)
    with pytest.raises(TypeError, match="recurrent_masks"):
        fg._core.gru_masked_forward_train(x, h0, kernel, recurrent, bias, mx,
                                          mh.astype(np.float32), True)
    with pytest.raises(ValueError, match="C-contiguous"):
        fg._core.gru_masked_forward_train(x, h0, kernel, recurrent, bias, mx,
                                          np.asfortranarray(mh), True)
    _, _, tape = gru.gru_forward_train_masked(x, kernel, recurrent, bias, mx, mh, h0=h0)
    with pytest.raises(ValueError, match="d_out"):
        gru.gru_backward_masked(tape, np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="tape"):
        gru.gru_backward_masked(tape[:3])


def test_fit_with_recurrent_dropout_trains_and_predict_does_not_drop():
    rng = np.random.default_rng(0)
    t = np.arange(300, dtype=np.float32)
    series = np.sin(t / 6.0)
    X = np.stack([series[i : i + 12] for i in range(280)])[..., None]
    y = series[12:292, None]

    def model(recurrent_dropout):
        m = fg.Sequential([fg.GRU(8, input_shape=(12, 1), dropout=0.1,
                                  recurrent_dropout=recurrent_dropout, seed=3), fg.Dense(1, seed=4)])
        m.compile(optimizer=fg.Adam(0.01), loss="mse")
        return m

    plain, dropped = model(0.0), model(0.3)
    dropped.set_weights(plain.get_weights())
    np.testing.assert_array_equal(dropped.predict(X), plain.predict(X))  # inference never drops
    history = dropped.fit(X, y, epochs=8, batch_size=32, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert np.all(np.isfinite(dropped.predict(X)))
    np.testing.assert_array_equal(dropped.predict(X), dropped.predict(X))  # deterministic
    assert fg.GRU(4, recurrent_dropout=0.2).get_config()["recurrent_dropout"] == 0.2
    with pytest.raises(ValueError, match="recurrent_dropout"):
        fg.GRU(4, recurrent_dropout=1.0)


# ------------------------------------------------------------------ Keras 3 golden tests
@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return pytest.importorskip("keras", reason="the Keras golden tests need keras + tensorflow-cpu")


def _inject(keras, monkeypatch, cell, input_masks, recurrent_masks):
    """Make the Keras cell use our masks (lists of three, per gate z, r, h)."""
    def tensors(masks):
        return [keras.ops.convert_to_tensor(g) for g in masks]

    if input_masks is not None:
        monkeypatch.setattr(cell, "get_dropout_mask", lambda inputs: tensors(input_masks))
    monkeypatch.setattr(cell, "get_recurrent_dropout_mask", lambda h: tensors(recurrent_masks))


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_layer_forward_and_gradients_match_keras_with_the_same_masks(
    keras, monkeypatch, reset_after, dropout, return_sequences
):
    """Keras 3 GRU(recurrent_dropout>0, training=True) given the masks our layer drew:
    the same outputs and the same gradients (weights and input), float32, to 1e-5."""
    import tensorflow as tf

    rng = np.random.default_rng(5)
    X = rng.standard_normal((4, 6, 3)).astype(np.float32)
    theirs = keras.layers.GRU(5, dropout=dropout, recurrent_dropout=0.4, reset_after=reset_after,
                              return_sequences=return_sequences)
    theirs.build((None, 6, 3))
    assert theirs.cell.implementation == 1 and theirs.cell.dropout_mask_count == 3
    weights = [w + 0.3 * rng.standard_normal(w.shape).astype(np.float32)
               for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours = fg.GRU(5, dropout=dropout, recurrent_dropout=0.4, reset_after=reset_after,
                  return_sequences=return_sequences, seed=1)
    ours.build((None, 6, 3))
    ours.set_weights(weights)

    masks = recording_dropout_masks(monkeypatch, fastgru.layers)
    out = ours.forward_train(X)
    input_masks, recurrent_masks = masks if dropout > 0 else (None, masks[0])
    assert recurrent_masks.shape == (3, 4, 5)
    assert input_masks is None or input_masks.shape == (3, 4, 3)
    assert not np.array_equal(recurrent_masks[0], recurrent_masks[1])  # one mask per gate
    dy = rng.standard_normal(out.shape).astype(np.float32)
    dx = ours.backward(dy)
    # The weight gradients through the public kernels, fed the masks the layer drew.
    _, _, tape = gru.gru_forward_train_masked(X, *weights, input_masks, recurrent_masks,
                                              reset_after=reset_after)
    grads = gru.gru_backward_masked(tape, *((dy, None) if return_sequences else (None, dy)))
    np.testing.assert_array_equal(grads.dx, dx)

    _inject(keras, monkeypatch, theirs.cell, input_masks, recurrent_masks)
    x_var = tf.Variable(X)
    with tf.GradientTape() as tape_:
        their_out = theirs(x_var, training=True)
        loss = tf.reduce_sum(their_out * dy)
    their_grads = tape_.gradient(loss, [x_var] + list(theirs.trainable_weights))
    np.testing.assert_allclose(out, their_out.numpy(), rtol=0, atol=1e-5)
    for name, a, b in zip(("dx", "kernel", "recurrent_kernel", "bias"),
                          [dx, grads.dkernel, grads.drecurrent_kernel, grads.dbias],
                          their_grads):
        np.testing.assert_allclose(a, np.asarray(b), rtol=0, atol=1e-5, err_msg=name)
    # Inference is unaffected by the setting.
    np.testing.assert_allclose(ours(X), theirs(X, training=False).numpy(), rtol=0, atol=1e-5)


def test_one_sgd_step_lands_on_keras_weights(keras, monkeypatch):
    """The whole training loop (layer, masks, backward, optimizer) against Keras' fit."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 5, 3)).astype(np.float32)
    y = rng.standard_normal((6, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    theirs = keras.Sequential([keras.Input((5, 3)),
                               keras.layers.GRU(4, dropout=0.2, recurrent_dropout=0.5),
                               keras.layers.Dense(1)])
    ours = fg.Sequential([fg.GRU(4, dropout=0.2, recurrent_dropout=0.5, input_shape=(5, 3)),
                          fg.Dense(1)])
    ours.set_weights(theirs.get_weights())
    masks = recording_dropout_masks(monkeypatch, fastgru.layers)
    ours.compile(optimizer=fg.SGD(1.0), loss="mse")
    ours.fit(X, y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    assert len(masks) == 2
    _inject(keras, monkeypatch, theirs.layers[0].cell, masks[0], masks[1])
    theirs.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    theirs.fit(X, y, batch_size=len(X), epochs=1, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
