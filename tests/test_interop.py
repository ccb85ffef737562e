"""Weights to and from PyTorch, Keras and ONNX: golden tests against the frameworks themselves.

Each framework is optional: its tests skip when it is not installed.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import fastgru as fg
from fastgru import interop, reference

F32_TOL = 1e-5

SHAPES = [  # (batch, time, input_size, units)
    (1, 1, 1, 1),
    (2, 7, 3, 5),
    (4, 20, 1, 50),
    (3, 9, 6, 17),
]


def _has_layers() -> bool:
    return importlib.util.find_spec("fastgru.layers") is not None


def _random_torch_gru(torch, input_size, units, seed, **kwargs):
    torch.manual_seed(seed)
    module = torch.nn.GRU(input_size, units, **kwargs)
    with torch.no_grad():  # larger than the default init, so every gate matters
        for p in module.parameters():
            p.uniform_(-0.8, 0.8)
    return module.eval()


def _torch_run(torch, module, x, h0, batch_first):
    xt = torch.from_numpy(x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2)))
    with torch.no_grad():
        out, h = module(xt, None if h0 is None else torch.from_numpy(h0)[None])
    out = out.numpy()
    return (out if batch_first else out.transpose(1, 0, 2)), h[-1].numpy()


# ---------------------------------------------------------------------------- layout

def test_torch_to_keras_swaps_r_and_z_blocks_and_transposes():
    units, inputs = 2, 3
    w_ih = np.concatenate([np.full((units, inputs), g, np.float32) for g in (1, 2, 3)])  # r,z,n
    w_hh = np.concatenate([np.full((units, units), g, np.float32) for g in (4, 5, 6)])
    b_ih = np.repeat(np.float32([7, 8, 9]), units)
    b_hh = np.repeat(np.float32([10, 11, 12]), units)
    kernel, recurrent_kernel, bias = interop.torch_to_keras(w_ih, w_hh, b_ih, b_hh)
    assert kernel.shape == (inputs, 3 * units)
    assert recurrent_kernel.shape == (units, 3 * units)
    assert bias.shape == (2, 3 * units)
    # Keras columns are z | r | h
    np.testing.assert_array_equal(kernel[0], [2, 2, 1, 1, 3, 3])
    np.testing.assert_array_equal(recurrent_kernel[0], [5, 5, 4, 4, 6, 6])
    np.testing.assert_array_equal(bias, [[8, 8, 7, 7, 9, 9], [11, 11, 10, 10, 12, 12]])
    back = interop.keras_to_torch(kernel, recurrent_kernel, bias)
    for a, b in zip(back, (w_ih, w_hh, b_ih, b_hh)):
        np.testing.assert_array_equal(a, b)


def test_missing_torch_biases_become_zeros():
    w_ih = np.ones((6, 1), np.float32)
    w_hh = np.ones((6, 2), np.float32)
    _, _, bias = interop.torch_to_keras(w_ih, w_hh)
    np.testing.assert_array_equal(bias, np.zeros((2, 6)))


def test_keras_to_torch_rejects_reset_after_false():
    with pytest.raises(ValueError, match="reset_after=False"):
        interop.keras_to_torch(np.zeros((1, 6)), np.zeros((2, 6)), np.zeros(6), reset_after=False)


def test_keras_gru_weights_checks_shapes_and_passes_arrays_through():
    k, rk, b = np.zeros((3, 12)), np.zeros((4, 12)), np.zeros((2, 12))
    out = interop.keras_gru_weights([k, rk, b])
    assert [a.shape for a in out] == [(3, 12), (4, 12), (2, 12)]
    assert interop.keras_gru_weights([k, rk, np.zeros(12)])[2].shape == (12,)
    with pytest.raises(ValueError, match="bias must have shape"):
        interop.keras_gru_weights([k, rk, np.zeros(12)], reset_after=True)
    with pytest.raises(ValueError, match="kernel must have shape"):
        interop.keras_gru_weights([np.zeros((3, 9)), rk, b])
    with pytest.raises(TypeError):
        interop.keras_gru_weights("not weights")


# ---------------------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
def test_torch_gru_output_matches_fastgru_and_reference(shape, with_h0, batch_first):
    torch = pytest.importorskip("torch")
    batch, steps, inputs, units = shape
    module = _random_torch_gru(torch, inputs, units, seed=sum(shape), batch_first=batch_first)
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((batch, steps, inputs)).astype(np.float32)
    h0 = rng.standard_normal((batch, units)).astype(np.float32) if with_h0 else None
    want_out, want_h = _torch_run(torch, module, x, h0, batch_first)

    kernel, recurrent_kernel, bias = interop.torch_gru_weights_to_keras(module)
    for impl in (fg.gru_forward, reference.gru_forward):
        out, h_last = impl(x, kernel, recurrent_kernel, bias, h0=h0, reset_after=True)
        np.testing.assert_allclose(out, want_out, rtol=0, atol=F32_TOL)
        np.testing.assert_allclose(h_last, want_h, rtol=0, atol=F32_TOL)


def test_torch_gradients_match_fastgru_backward_after_conversion():
    """Gradients share the weights' layout, so torch_to_keras converts them too."""
    torch = pytest.importorskip("torch")
    batch, steps, inputs, units = 3, 6, 4, 5
    module = _random_torch_gru(torch, inputs, units, seed=1, batch_first=True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, steps, inputs)).astype(np.float32)
    d_out = rng.standard_normal((batch, steps, units)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_(True)
    out, _ = module(xt)
    out.backward(torch.from_numpy(d_out))
    g_kernel, g_recurrent, g_bias = interop.torch_to_keras(
        module.weight_ih_l0.grad, module.weight_hh_l0.grad,
        module.bias_ih_l0.grad, module.bias_hh_l0.grad,
    )
    weights = interop.torch_gru_weights_to_keras(module)
    _, _, tape = fg.gru_forward_train(x, *weights)
    grads = fg.gru_backward(tape, d_out=d_out)
    for got, want in ((grads.dx, xt.grad.numpy()), (grads.dkernel, g_kernel),
                      (grads.drecurrent_kernel, g_recurrent), (grads.dbias, g_bias)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_stacked_torch_gru_layers_chain_to_the_same_output():
    torch = pytest.importorskip("torch")
    module = _random_torch_gru(torch, 2, 4, seed=3, num_layers=3, batch_first=True)
    x = np.random.default_rng(3).standard_normal((2, 5, 2)).astype(np.float32)
    want_out, _ = _torch_run(torch, module, x, None, True)
    seq = x
    for k in range(3):
        seq, _ = fg.gru_forward(seq, *interop.torch_gru_weights_to_keras(module, layer=k))
    np.testing.assert_allclose(seq, want_out, rtol=0, atol=F32_TOL)
    with pytest.raises(IndexError):
        interop.torch_gru_weights_to_keras(module, layer=3)


def test_torch_gru_cell_converts_like_a_one_step_gru():
    torch = pytest.importorskip("torch")
    torch.manual_seed(4)
    cell = torch.nn.GRUCell(3, 6)
    x = np.random.default_rng(4).standard_normal((2, 3)).astype(np.float32)
    h = np.random.default_rng(5).standard_normal((2, 6)).astype(np.float32)
    with torch.no_grad():
        want = cell(torch.from_numpy(x), torch.from_numpy(h)).numpy()
    _, got = fg.gru_forward(x[:, None], *interop.torch_gru_weights_to_keras(cell), h0=h)
    np.testing.assert_allclose(got, want, rtol=0, atol=F32_TOL)


def test_torch_gru_without_bias_converts():
    torch = pytest.importorskip("torch")
    module = _random_torch_gru(torch, 2, 3, seed=6, bias=False, batch_first=True)
    x = np.random.default_rng(6).standard_normal((2, 4, 2)).astype(np.float32)
    want_out, _ = _torch_run(torch, module, x, None, True)
    out, _ = fg.gru_forward(x, *interop.torch_gru_weights_to_keras(module))
    np.testing.assert_allclose(out, want_out, rtol=0, atol=F32_TOL)


def test_bidirectional_torch_gru_is_not_supported():
    torch = pytest.importorskip("torch")
    with pytest.raises(NotImplementedError, match="bidirectional"):
        interop.torch_gru_weights_to_keras(torch.nn.GRU(2, 3, bidirectional=True))
    with pytest.raises(TypeError, match="torch.nn.GRU"):
        interop.torch_gru_weights_to_keras(torch.nn.LSTM(2, 3))


@pytest.mark.parametrize("num_layers", [1, 2])
def test_to_torch_round_trip_gives_equal_weights(num_layers):
    torch = pytest.importorskip("torch")
    module = _random_torch_gru(torch, 3, 4, seed=7, num_layers=num_layers)
    triples = [interop.torch_gru_weights_to_keras(module, k) for k in range(num_layers)]
    back = interop.to_torch(triples[0] if num_layers == 1 else triples)
    assert back.batch_first and back.num_layers == num_layers and not back.training
    assert back.weight_ih_l0.dtype == torch.float32
    got, want = dict(back.named_parameters()), dict(module.named_parameters())
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_to_torch_keeps_float64_and_rejects_reset_after_false():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    k, rk = rng.standard_normal((2, 9)), rng.standard_normal((3, 9))
    assert interop.to_torch((k, rk, rng.standard_normal((2, 9)))).weight_hh_l0.dtype == torch.float64
    with pytest.raises(ValueError, match="no PyTorch equivalent"):
        interop.to_torch((k, rk, rng.standard_normal(9)))


@pytest.mark.skipif(not _has_layers(), reason="fastgru.layers not written yet")
def test_from_torch_builds_fastgru_layers_and_to_torch_reads_them_back():
    torch = pytest.importorskip("torch")
    module = _random_torch_gru(torch, 3, 4, seed=9, batch_first=True)
    layer = interop.from_torch(module)
    assert layer.reset_after
    for got, want in zip(layer.get_weights(), interop.torch_gru_weights_to_keras(module)):
        np.testing.assert_array_equal(got, want)
    back = interop.to_torch(layer)
    for name, p in module.named_parameters():
        assert torch.equal(getattr(back, name), p), name
    stacked = interop.from_torch(_random_torch_gru(torch, 3, 4, seed=9, num_layers=2))
    assert len(stacked) == 2 and stacked[0].return_sequences and not stacked[1].return_sequences


# ---------------------------------------------------------------------------- ONNX

@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("reset_after", [True, False])
def test_onnx_runtime_gru_matches_fastgru(reset_after, batch_first):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    batch, steps, inputs, units = 3, 11, 4, 7
    rng = np.random.default_rng(10 + reset_after)
    kernel = rng.uniform(-0.8, 0.8, (inputs, 3 * units)).astype(np.float32)
    recurrent = rng.uniform(-0.8, 0.8, (units, 3 * units)).astype(np.float32)
    bias = rng.uniform(-0.8, 0.8, (2, 3 * units) if reset_after else (3 * units,)).astype(np.float32)
    dense = (rng.standard_normal((units, 2)).astype(np.float32),
             rng.standard_normal(2).astype(np.float32))
    x = rng.standard_normal((batch, steps, inputs)).astype(np.float32)
    h0 = rng.standard_normal((batch, units)).astype(np.float32)

    proto = interop.to_onnx_gru(kernel, recurrent, bias, reset_after,
                                batch_first=batch_first, dense=dense)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feed_x = x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2))
    out, h_last, prediction = session.run(None, {"x": feed_x, "h0": h0})
    if not batch_first:
        out = out.transpose(1, 0, 2)

    want_out, want_h = fg.gru_forward(x, kernel, recurrent, bias, h0=h0, reset_after=reset_after)
    np.testing.assert_allclose(out, want_out, rtol=0, atol=F32_TOL)
    np.testing.assert_allclose(h_last, want_h, rtol=0, atol=F32_TOL)
    np.testing.assert_allclose(prediction, want_h @ dense[0] + dense[1], rtol=0, atol=F32_TOL)


def test_onnx_export_checks_dense_shapes():
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="dense"):
        interop.to_onnx_gru(np.zeros((1, 6)), np.zeros((2, 6)), np.zeros((2, 6)),
                            dense=(np.zeros((3, 1)), np.zeros(1)))


# ---------------------------------------------------------------------------- Keras

@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_weights_load_as_is(reset_after):
    keras = pytest.importorskip("keras")
    layer = keras.layers.GRU(5, reset_after=reset_after, return_sequences=True)
    x = np.random.default_rng(11).standard_normal((2, 6, 3)).astype(np.float32)
    want = np.asarray(layer(x))
    weights = interop.keras_gru_weights(layer)
    out, _ = fg.gru_forward(x, *weights, reset_after=reset_after)
    np.testing.assert_allclose(out, want, rtol=0, atol=F32_TOL)
