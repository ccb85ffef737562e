"""The NumPy reference is the oracle, so its own gradients are checked by finite differences."""
import numpy as np
import pytest

from fastgru import reference

from conftest import random_gru


def numeric_gradient(f, array, eps=1e-6):
    grad = np.zeros_like(array)
    it = np.nditer(array, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = array[i]
        array[i] = old + eps
        up = f()
        array[i] = old - eps
        down = f()
        array[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("use_h_last", [True, False])
def test_reference_gradients_match_finite_differences(reset_after, use_h_last):
    rng = np.random.default_rng(7)
    x, kernel, recurrent, bias, h0 = random_gru(rng, 2, 4, 3, 5, reset_after)
    d_out = rng.standard_normal((2, 4, 5))
    d_h_last = rng.standard_normal((2, 5)) if use_h_last else None

    def loss():
        out, h_last = reference.gru_forward(x, kernel, recurrent, bias, h0, reset_after)
        value = np.sum(out * d_out)
        if d_h_last is not None:
            value += np.sum(h_last * d_h_last)
        return value

    _, _, tape = reference.gru_forward_train(x, kernel, recurrent, bias, h0, reset_after)
    grads = reference.gru_backward(tape, d_out, d_h_last)
    for name, array in [("dx", x), ("dh0", h0), ("dkernel", kernel),
                        ("drecurrent_kernel", recurrent), ("dbias", bias)]:
        expected = numeric_gradient(loss, array)
        np.testing.assert_allclose(getattr(grads, name), expected, rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def test_reference_matches_hand_computed_single_step():
    # One unit, one step, reset_after=True, written out from the equations.
    x = np.array([[[0.5]]])
    kernel = np.array([[0.1, 0.2, 0.3]])
    recurrent = np.array([[0.4, 0.5, 0.6]])
    bias = np.array([[0.01, 0.02, 0.03], [0.04, 0.05, 0.06]])
    h0 = np.array([[0.7]])
    sig = lambda v: 1 / (1 + np.exp(-v))
    z = sig(0.5 * 0.1 + 0.01 + 0.7 * 0.4 + 0.04)
    r = sig(0.5 * 0.2 + 0.02 + 0.7 * 0.5 + 0.05)
    n = np.tanh(0.5 * 0.3 + 0.03 + r * (0.7 * 0.6 + 0.06))
    expected = z * 0.7 + (1 - z) * n
    out, h_last = reference.gru_forward(x, kernel, recurrent, bias, h0)
    assert out[0, 0, 0] == pytest.approx(expected, rel=1e-15)
    assert h_last[0, 0] == pytest.approx(expected, rel=1e-15)
