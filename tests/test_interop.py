"""Weights to and from PyTorch, Keras and ONNX: golden tests against the frameworks themselves.

Each framework is optional: its tests skip when it is not installed.
"""
from __future__ import annotations


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


@pytest.mark.parametrize("cell", [False, True], ids=["GRU", "GRUCell"])
def test_from_torch_keeps_float64_for_a_single_layer(cell):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = (torch.nn.GRUCell(2, 5) if cell else torch.nn.GRU(2, 5, batch_first=True)).double()
    layer = interop.from_torch(module, return_sequences=not cell)
    assert layer.dtype == np.float64 and layer.get_weights()[0].dtype == np.float64
    x = np.random.default_rng(0).standard_normal((3, 1 if cell else 40, 2))
    with torch.no_grad():
        want = (module(torch.from_numpy(x[:, 0])) if cell else module(torch.from_numpy(x))[0]).numpy()
    got = fg.Sequential([layer]).predict(x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert interop.to_torch(layer).weight_hh_l0.dtype == torch.float64


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


# ============================================================================ whole models
# Random weights at a scale where every gate matters, random inputs of several shapes
# (batch 1 and >1, one step and many); float32 agreement to F32_TOL.

INPUT_SHAPES = [(1, 1), (1, 9), (4, 1), (3, 12)]  # (batch, time)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")  # imports TensorFlow once for the module


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def _inputs(features, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((b, t, features)).astype(np.float32) for b, t in INPUT_SHAPES]


def _randomize(module_or_model, torch=None, seed=0):
    """Uniform(-0.8, 0.8) weights: larger than default inits, so every gate matters."""
    if torch is not None:
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in module_or_model.parameters():
                p.uniform_(-0.8, 0.8)
        return module_or_model.eval()
    rng = np.random.default_rng(seed)
    module_or_model.set_weights([rng.uniform(-0.8, 0.8, np.shape(w)).astype(np.float32)
                                 for w in module_or_model.get_weights()])
    return module_or_model


def _fastgru_model(layers, features, seed=0):
    model = fg.Sequential(layers)
    model.build((None, None, features))
    return _randomize(model, seed=seed)


def _torch_chain_forward(torch, modules, x, return_sequences=False):
    """What the chain convention of interop.torch means, written out in torch."""
    h = torch.from_numpy(x)
    grus = [i for i, m in enumerate(modules) if isinstance(m, torch.nn.GRU)]
    with torch.no_grad():
        for i, m in enumerate(modules):
            if isinstance(m, torch.nn.GRU):
                out, _ = m(h if m.batch_first else h.transpose(0, 1))
                h = out if m.batch_first else out.transpose(0, 1)
                if i == grus[-1] and not return_sequences:
                    h = h[:, -1]
            else:
                h = m(h)
    return h.numpy()


def _torch_models(torch):
    nn = torch.nn
    return {
        "gru+linear": [nn.GRU(4, 6, batch_first=True), nn.Linear(6, 3)],
        "2layer-timemajor+mlp-softmax": [nn.GRU(4, 5, num_layers=2), nn.Linear(5, 7), nn.ReLU(),
                                         nn.Dropout(0.5), nn.Linear(7, 2), nn.Softmax(dim=-1)],
        "grus-of-different-units+sigmoid": [nn.GRU(4, 3, batch_first=True), nn.Identity(),
                                            nn.GRU(3, 8, batch_first=True, bias=False),
                                            nn.Linear(8, 1), nn.Sigmoid()],
        "gru+tanh-no-linear": [nn.GRU(4, 5, batch_first=True), nn.Tanh()],
    }


@pytest.mark.parametrize("name", ["gru+linear", "2layer-timemajor+mlp-softmax",
                                  "grus-of-different-units+sigmoid", "gru+tanh-no-linear"])
def test_from_torch_chain_gives_a_model_equal_to_torch_and_back(torch, name):
    modules = _torch_models(torch)[name]
    seq = _randomize(torch.nn.Sequential(*modules), torch, seed=len(name))
    model = fg.from_torch(seq)
    assert isinstance(model, fg.Sequential)
    from_list = fg.from_torch(list(seq)).get_weights()
    assert len(from_list) == len(model.get_weights())
    for got, want in zip(from_list, model.get_weights()):
        np.testing.assert_array_equal(got, want)
    regressor = fg.to_torch(model)
    assert isinstance(regressor, fg.TorchGRURegressor) and not regressor.training
    again = fg.from_torch(regressor)
    for x in _inputs(4, seed=len(name)):
        want = _torch_chain_forward(torch, list(seq), x)
        got = model.predict(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=F32_TOL)
        with torch.no_grad():
            np.testing.assert_allclose(regressor(torch.from_numpy(x)).numpy(), want,
                                       rtol=0, atol=F32_TOL)
        np.testing.assert_allclose(again.predict(x), got, rtol=0, atol=0)


def test_a_nested_regressor_keeps_its_return_sequences_or_is_refused(torch):
    # Its parts do not carry the flag: converting it inside a chain with the other value
    # would build a model that computes something else.
    model = _fastgru_model([fg.GRU(4, return_sequences=True), fg.Dense(2)], 3)
    regressor = fg.to_torch(model)
    x = _inputs(3, seed=5)[0]
    with torch.no_grad():
        want = regressor(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(fg.from_torch(torch.nn.Sequential(regressor),
                                             return_sequences=True).predict(x), want,
                               rtol=0, atol=F32_TOL)
    with pytest.raises(NotImplementedError, match="return_sequences=True inside a chain"):
        fg.from_torch(torch.nn.Sequential(regressor))


def test_from_torch_return_sequences_applies_the_head_to_every_step(torch):
    nn = torch.nn
    modules = [nn.GRU(2, 4, num_layers=2, batch_first=True), nn.Linear(4, 3), nn.Softmax(dim=2)]
    seq = _randomize(nn.Sequential(*modules), torch, seed=21)
    model = fg.from_torch(seq, return_sequences=True)
    assert model.layers[1].return_sequences
    regressor = fg.to_torch(model)
    assert regressor.return_sequences
    for x in _inputs(2, seed=21):
        want = _torch_chain_forward(torch, list(seq), x, return_sequences=True)
        np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=F32_TOL)
        with torch.no_grad():
            np.testing.assert_allclose(regressor(torch.from_numpy(x)).numpy(), want,
                                       rtol=0, atol=F32_TOL)


def test_to_torch_stacks_equal_units_in_one_gru_and_different_units_in_a_module_list(torch):
    equal = _fastgru_model([fg.GRU(5, return_sequences=True), fg.GRU(5), fg.Dense(2)], 3)
    different = _fastgru_model([fg.GRU(5, return_sequences=True), fg.GRU(7), fg.Dense(2)], 3)
    assert isinstance(fg.to_torch(equal).gru, torch.nn.GRU)
    assert fg.to_torch(equal).gru.num_layers == 2
    assert isinstance(fg.to_torch(different).gru, torch.nn.ModuleList)
    for model in (equal, different):
        for x in _inputs(3, seed=22):
            with torch.no_grad():
                got = fg.to_torch(model)(torch.from_numpy(x)).numpy()
            np.testing.assert_allclose(got, model.predict(x), rtol=0, atol=F32_TOL)


def test_to_torch_refuses_models_torch_cannot_express(torch):
    with pytest.raises(ValueError, match="reset_after=False"):
        fg.to_torch(_fastgru_model([fg.GRU(3, reset_after=False), fg.Dense(1)], 2))
    with pytest.raises(NotImplementedError, match="between GRU layers"):
        fg.to_torch(_fastgru_model(
            [fg.GRU(3, return_sequences=True), fg.Dense(4), fg.GRU(2)], 2))
    with pytest.raises(RuntimeError, match="no weights"):
        fg.to_torch(fg.Sequential([fg.GRU(3), fg.Dense(1)]))


@pytest.mark.parametrize("bad, match", [
    (lambda nn: [nn.GRU(3, 4, bidirectional=True), nn.Linear(8, 1)], "bidirectional"),
    (lambda nn: [nn.LSTM(3, 4), nn.Linear(4, 1)], "LSTM"),
    (lambda nn: [nn.GRU(3, 4), nn.LeakyReLU(), nn.Linear(4, 1)], "LeakyReLU"),
    (lambda nn: [nn.GRU(3, 4), nn.Linear(4, 2), nn.Softmax(dim=0)], "Softmax"),
    (lambda nn: [nn.Linear(3, 3)], "no nn.GRU"),
    (lambda nn: [nn.GRU(3, 4), nn.Linear(5, 1)], "takes 5 inputs"),
])
def test_from_torch_names_what_it_cannot_convert(torch, bad, match):
    with pytest.raises((NotImplementedError, ValueError), match=match):
        fg.from_torch(bad(torch.nn))


def test_from_torch_asks_for_the_parts_of_a_custom_module(torch):
    class Forecaster(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.fc = torch.nn.GRU(2, 3, batch_first=True), torch.nn.Linear(3, 1)

    with pytest.raises(TypeError, match=r"from_torch\(\[model.gru, model.fc\]\)"):
        fg.from_torch(Forecaster())
    assert isinstance(fg.from_torch([Forecaster().gru, Forecaster().fc]), fg.Sequential)


# ---------------------------------------------------------------------------- Keras models

def _keras_models(keras):
    L = keras.layers
    functional_in = keras.Input((None, 4))
    h = L.GRU(3, return_sequences=True, reset_after=False)(functional_in)
    h = L.Dropout(0.3)(h)
    h = L.GRU(6, use_bias=False)(h)
    h = L.Dense(5)(h)
    h = L.Activation("tanh")(h)
    functional = keras.Model(functional_in, L.Dense(2, activation="softmax")(h))
    return {
        "sequential": keras.Sequential([keras.Input((None, 4)), L.GRU(7), L.Dense(3)]),
        "functional-stacked-reset_after-false": functional,
        "sequences-out": keras.Sequential([keras.Input((None, 4)),
                                           L.GRU(5, return_sequences=True),
                                           L.Dense(2, activation="relu")]),
        "stacked-sigmoid": keras.Sequential([keras.Input((None, 4)),
                                             L.GRU(4, return_sequences=True),
                                             L.GRU(2, reset_after=False), L.ReLU(),
                                             L.Dense(1, activation="sigmoid")]),
    }


@pytest.mark.parametrize("name", ["sequential", "functional-stacked-reset_after-false",
                                  "sequences-out", "stacked-sigmoid"])
def test_from_keras_model_and_to_keras_agree_with_keras(keras, name):
    keras_model = _randomize(_keras_models(keras)[name], seed=len(name))
    model = fg.from_keras(keras_model)
    back = fg.to_keras(model)
    for x in _inputs(4, seed=len(name)):
        want = np.asarray(keras_model(x))
        np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=F32_TOL)
        np.testing.assert_allclose(np.asarray(back(x)), want, rtol=0, atol=F32_TOL)


@pytest.mark.parametrize("reset_after", [True, False])
def test_to_keras_takes_a_single_fastgru_layer(keras, reset_after):
    layer = _fastgru_model([fg.GRU(4, return_sequences=True, reset_after=reset_after)], 3).layers[0]
    keras_model = fg.to_keras(layer)
    for x in _inputs(3, seed=23):
        np.testing.assert_allclose(np.asarray(keras_model(x)), layer(x), rtol=0, atol=F32_TOL)
    assert isinstance(fg.from_keras(keras_model.layers[0]), fg.GRU)


@pytest.mark.parametrize("bad, match", [
    (lambda L: [L.Bidirectional(L.GRU(3))], "Bidirectional"),
    (lambda L: [L.GRU(3, go_backwards=True)], "go_backwards"),
    (lambda L: [L.GRU(3, activation="relu")], "activation='relu'"),
    (lambda L: [L.GRU(3, recurrent_activation="hard_sigmoid")], "recurrent_activation"),
    (lambda L: [L.GRU(3, stateful=True)], "stateful"),
    (lambda L: [L.LSTM(3)], "LSTM"),
    (lambda L: [L.GRU(3), L.Dense(2, activation="gelu")], "gelu"),
    (lambda L: [L.Dense(3)], "no GRU"),
])
def test_from_keras_names_what_it_cannot_convert(keras, bad, match):
    batch = 2 if "stateful" in match else None
    model = keras.Sequential([keras.Input((None, 3), batch_size=batch)] + bad(keras.layers))
    with pytest.raises((NotImplementedError, ValueError), match=match):
        fg.from_keras(model)


def test_from_keras_refuses_branches(keras):
    inp = keras.Input((None, 3))
    merged = keras.layers.Add()([keras.layers.GRU(2)(inp), keras.layers.GRU(2)(inp)])
    with pytest.raises(NotImplementedError, match="not a chain"):
        fg.from_keras(keras.Model(inp, merged))


# ---------------------------------------------------------------------------- ONNX models

def _fastgru_models():
    return {
        "gru+dense": ([fg.GRU(6), fg.Dense(3)], 4),
        "stacked-different-units-softmax": (
            [fg.GRU(5, return_sequences=True), fg.GRU(9), fg.Dense(4, activation="tanh"),
             fg.Dense(3, activation="softmax")], 4),
        "reset_after-false-relu": (
            [fg.GRU(4, return_sequences=True, reset_after=False), fg.GRU(3, reset_after=False),
             fg.Dense(2, activation="relu")], 4),
        "sequences-out-sigmoid": ([fg.GRU(5, return_sequences=True),
                                   fg.Dense(2, activation="sigmoid")], 4),
        "dense-between-grus": ([fg.GRU(5, return_sequences=True), fg.Dense(3, activation="tanh"),
                                fg.GRU(2)], 4),
    }


@pytest.mark.parametrize("name", list(_fastgru_models()))
def test_to_onnx_runs_in_onnx_runtime_like_predict_and_from_onnx_reads_it_back(ort, name,
                                                                              tmp_path):
    layers, features = _fastgru_models()[name]
    model = _fastgru_model(layers, features, seed=len(name))
    path = tmp_path / "model.onnx"
    proto = fg.to_onnx(model, path)
    assert path.exists()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    grus = [n for n in proto.graph.node if n.op_type == "GRU"]
    assert [next(a.i for a in n.attribute if a.name == "linear_before_reset") for n in grus] == \
        [int(l.reset_after) for l in model.layers if isinstance(l, fg.GRU)]
    back = fg.from_onnx(path)
    assert len(back.get_weights()) == len(model.get_weights())
    for got, want in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    for x in _inputs(features, seed=len(name)):  # one session: batch and time are dynamic
        want = model.predict(x)
        (got,) = session.run(None, {"x": x})
        np.testing.assert_allclose(got, want, rtol=0, atol=F32_TOL)
        np.testing.assert_allclose(back.predict(x), want, rtol=0, atol=F32_TOL)


def test_to_onnx_exports_a_float64_model_as_float32_for_onnx_runtime(ort):
    model = _fastgru_model([fg.GRU(5, dtype="float64"), fg.Dense(2, dtype="float64")], 3, seed=5)
    assert fg.to_onnx(model).graph.input[0].type.tensor_type.elem_type == 11  # DOUBLE
    proto = fg.to_onnx(model, dtype="float32")
    assert proto.graph.input[0].type.tensor_type.elem_type == 1  # FLOAT
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for x in _inputs(3, seed=5):
        (got,) = session.run(None, {"x": x.astype(np.float32)})
        np.testing.assert_allclose(got, model.predict(x), rtol=0, atol=F32_TOL)
    assert model.get_weights()[0].dtype == np.float64  # the model itself is unchanged
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        fg.to_onnx(model, dtype="int32")


@pytest.mark.parametrize("target", ["model.npz", None, 42, [None]])
def test_converters_name_a_wrong_argument_type(target):
    pytest.importorskip("onnx")
    with pytest.raises(TypeError, match="expected a fastgru Sequential"):
        fg.to_onnx(target)


@pytest.mark.parametrize("reset_after", [True, False])
def test_from_onnx_reads_to_onnx_gru_graphs_with_a_state_input(reset_after):
    pytest.importorskip("onnx")
    rng = np.random.default_rng(24)
    kernel, recurrent = rng.uniform(-0.8, 0.8, (3, 12)), rng.uniform(-0.8, 0.8, (4, 12))
    bias = rng.uniform(-0.8, 0.8, (2, 12) if reset_after else 12)
    dense = rng.standard_normal((4, 2)), rng.standard_normal(2)
    proto = interop.to_onnx_gru(kernel, recurrent, bias, reset_after, dense=dense)
    with pytest.raises(ValueError, match="output=NAME"):
        interop.from_onnx(proto)
    head = interop.from_onnx(proto, output="prediction")
    sequences = interop.from_onnx(proto, output="output")
    for x in _inputs(3, seed=24):
        out, h = fg.gru_forward(x, kernel.astype(np.float32), recurrent.astype(np.float32),
                                bias.astype(np.float32), reset_after=reset_after)
        np.testing.assert_allclose(sequences.predict(x), out, rtol=0, atol=F32_TOL)
        np.testing.assert_allclose(head.predict(x), h @ dense[0] + dense[1], rtol=0, atol=F32_TOL)


@pytest.mark.parametrize("reads", ["output[-1]", "h_n[-1]"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_from_onnx_reads_torch_onnx_export_of_gru_and_linear(torch, ort, batch_first, reads):
    import io
    import warnings

    nn = torch.nn
    seq = _randomize(nn.Sequential(nn.GRU(3, 5, num_layers=2, batch_first=batch_first),
                                   nn.Linear(5, 2)), torch, seed=25)

    class LastStep(nn.Module):  # the usual hand-written forecaster
        def __init__(self):
            super().__init__()
            self.gru, self.fc = seq[0], seq[1]

        def forward(self, x):
            out, h_n = self.gru(x)
            if reads == "h_n[-1]":  # the last layer's state, from a Concat of both layers'
                return self.fc(h_n[-1])
            return self.fc(out[:, -1] if batch_first else out[-1])

    example = torch.zeros((2, 4, 3)) if batch_first else torch.zeros((4, 2, 3))
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter warns that it is legacy
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(LastStep().eval(), example, buffer, dynamo=False, input_names=["x"],
                              output_names=["y"],
                              dynamic_axes={"x": {0: "a", 1: "b"}, "y": {0: "batch"}})
        except ImportError as exc:  # an exporter that needs packages not installed here
            pytest.skip(f"torch.onnx.export unavailable here: {exc}")
    model = fg.from_onnx(buffer.getvalue())
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for x in _inputs(3, seed=25):
        want = _torch_chain_forward(torch, list(seq), x)
        feed = x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2))
        np.testing.assert_allclose(session.run(None, {"x": feed})[0], want, rtol=0, atol=F32_TOL)
        np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=F32_TOL)


@pytest.mark.parametrize("layers", [1, 2])
def test_from_onnx_reads_a_torch_export_with_an_h0_input(torch, ort, layers):
    # torch feeds each layer its slice of h0 ((layers, B, H)): each slice is an initial state,
    # which predict (like a fresh stream) takes as zeros
    import io
    import warnings

    nn = torch.nn
    gru, fc = _randomize(nn.Sequential(nn.GRU(3, 5, num_layers=layers, batch_first=True),
                                       nn.Linear(5, 2)), torch, seed=27)

    class WithState(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru, self.fc = gru, fc

        def forward(self, x, h0):
            return self.fc(self.gru(x, h0)[0][:, -1])

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter warns that it is legacy
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(WithState().eval(), (torch.zeros(2, 4, 3), torch.zeros(layers, 2, 5)),
                              buffer, dynamo=False, input_names=["x", "h0"], output_names=["y"],
                              dynamic_axes={"x": {0: "b", 1: "t"}, "h0": {1: "b"}})
        except ImportError as exc:
            pytest.skip(f"torch.onnx.export unavailable here: {exc}")
    model = fg.from_onnx(buffer.getvalue())
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for x in _inputs(3, seed=27):
        zeros = np.zeros((layers, len(x), 5), np.float32)
        want = session.run(None, {"x": x.astype(np.float32), "h0": zeros})[0]
        np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=F32_TOL)


def _gru_graph(**gru_attrs):
    """A hand-made ONNX model: x (B, T, 2) -> GRU(layout=1 or 0 with Transpose) -> Y_h -> y."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(26)
    units, layout = 3, gru_attrs.pop("layout", 0)
    inits = [numpy_helper.from_array(rng.uniform(-0.8, 0.8, s).astype(np.float32), n)
             for n, s in (("W", (1, 9, 2)), ("R", (1, 9, 3)), ("B", (1, 18)))]
    inits.append(numpy_helper.from_array(np.array([layout], np.int64), "dir_axis"))
    extra_inputs = gru_attrs.pop("extra_inputs", [])
    nodes = [] if layout else [helper.make_node("Transpose", ["x"], ["x_tm"], perm=[1, 0, 2])]
    nodes += [
        helper.make_node("GRU", ["x" if layout else "x_tm", "W", "R", "B"] + extra_inputs,
                         ["Y", "Y_h"], hidden_size=units, layout=layout, **gru_attrs),
        helper.make_node("Squeeze", ["Y_h", "dir_axis"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", units])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("layout", [0, 1])
def test_from_onnx_reads_both_gru_layouts(layout):
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    proto = _gru_graph(layout=layout, linear_before_reset=1)
    model = fg.from_onnx(proto)
    for x in _inputs(2, seed=26):
        (want,) = ReferenceEvaluator(proto).run(None, {"x": x})
        np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=F32_TOL)


def test_from_onnx_names_what_it_cannot_convert():
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    cases = {
        "bidirectional": dict(direction="bidirectional"),
        "reverse": dict(direction="reverse"),
        "activations": dict(activations=["Sigmoid", "Relu"]),
        "activation_alpha": dict(activations=["Sigmoid", "Tanh"], activation_alpha=[0.5, 0.5]),
        "clip": dict(clip=3.0),
        "sequence_lens": dict(extra_inputs=["lens"]),
    }
    for match, attrs in cases.items():
        proto = _gru_graph(**attrs)
        if match == "sequence_lens":
            proto.graph.input.append(
                helper.make_tensor_value_info("lens", onnx.TensorProto.INT32, ["b"]))
        with pytest.raises(NotImplementedError, match=match):
            fg.from_onnx(proto)
    unknown = _gru_graph()
    unknown.graph.node[-1].output[0] = "h"
    unknown.graph.node.append(helper.make_node("LeakyRelu", ["h"], ["y"]))
    with pytest.raises(NotImplementedError, match="LeakyRelu"):
        fg.from_onnx(unknown)
    nonzero_state = _gru_graph(extra_inputs=["", "h0"])
    nonzero_state.graph.initializer.append(
        onnx.numpy_helper.from_array(np.ones((1, 1, 3), np.float32), "h0"))
    with pytest.raises(NotImplementedError, match="initial_h is not zero"):
        fg.from_onnx(nonzero_state)
    middle_step = _gru_graph()
    middle_step.graph.node[-1].op_type = "Gather"
    middle_step.graph.node[-1].input[0] = "Y"
    middle_step.graph.initializer.append(
        onnx.numpy_helper.from_array(np.array(2, np.int64), "two"))
    middle_step.graph.node[-1].input[1] = "two"
    with pytest.raises(NotImplementedError, match="index 2"):
        fg.from_onnx(middle_step)


def test_new_converters_are_exported_and_fastgru_imports_no_framework():
    import subprocess
    import sys

    for name in ("from_torch", "to_torch", "from_keras", "to_keras", "to_onnx", "from_onnx",
                 "to_onnx_gru", "keras_gru_weights"):
        assert name in fg.__all__ and getattr(fg, name) is getattr(interop, name)
    code = ("import sys, fastgru; "
            "print([m for m in ('torch', 'keras', 'tensorflow', 'onnx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_from_keras_single_layer_without_bias_gets_zero_biases(keras):
    layer = keras.layers.GRU(3, use_bias=False, return_sequences=True)
    x = _inputs(2, seed=27)[-1]
    want = np.asarray(layer(x))
    converted = fg.from_keras(layer)
    np.testing.assert_array_equal(converted.bias, np.zeros((2, 9)))
    np.testing.assert_allclose(converted(x), want, rtol=0, atol=F32_TOL)


# ---------------------------------------------------------------- subclasses that compute else
def _torch_subclasses(torch):
    nn = torch.nn

    class ScaledLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 1.5

    class NoisyGRU(nn.GRU):
        def forward(self, x, h=None):
            out, h = super().forward(x, h)
            return out + 0.05, h

    class ClippedSequential(nn.Sequential):
        def forward(self, x):
            return torch.clamp(super().forward(x), -0.1, 0.1)

    class ReLU(nn.ReLU):  # the same name as torch's: only the override tells them apart
        def forward(self, x):
            return torch.where(x > 0, x, 0.1 * x)

    def gru():
        return nn.GRU(3, 4, batch_first=True)

    return {
        "Linear": lambda: [gru(), ScaledLinear(4, 2)],
        "GRU": lambda: [NoisyGRU(3, 4, batch_first=True), nn.Linear(4, 2)],
        "Sequential": lambda: ClippedSequential(gru()),
        "nested-Sequential": lambda: [ClippedSequential(gru()), nn.Linear(4, 1)],
        "ReLU": lambda: [gru(), nn.Linear(4, 2), ReLU()],
        "bare-GRU": lambda: NoisyGRU(3, 4, batch_first=True),
    }


@pytest.mark.parametrize("name", ["Linear", "GRU", "Sequential", "nested-Sequential", "ReLU",
                                  "bare-GRU"])
def test_from_torch_refuses_subclasses_that_override_forward(torch, name):
    module = _torch_subclasses(torch)[name]()
    with pytest.raises(NotImplementedError, match="overrides forward"):
        fg.from_torch(module)


def test_from_torch_converts_subclasses_that_only_add_methods(torch):
    class NamedLinear(torch.nn.Linear):
        def describe(self):
            return "head"

    modules = _randomize(torch.nn.Sequential(torch.nn.GRU(3, 4, batch_first=True),
                                             NamedLinear(4, 2)), torch)
    model = fg.from_torch(list(modules))
    x = _inputs(3)[1]
    with torch.no_grad():
        out, _ = modules[0](torch.from_numpy(x))
        want = modules[1](out[:, -1]).numpy()
    np.testing.assert_allclose(model.predict(x), want, rtol=0, atol=F32_TOL)


def test_from_keras_refuses_subclasses_that_override_call(keras):
    L = keras.layers

    class ScaledDense(L.Dense):
        def call(self, inputs):
            return super().call(inputs) * 1.5

    class NoisyGRU(L.GRU):
        def call(self, sequences, initial_state=None, mask=None, training=False):
            return super().call(sequences, initial_state, mask, training) + 0.05

    class HardCell(L.GRUCell):
        def call(self, inputs, states, training=False):
            h, new = super().call(inputs, states, training=training)
            return h * 0.5, new

    class Doubling(keras.Sequential):
        def call(self, inputs, training=None, mask=None):
            return super().call(inputs, training=training, mask=mask) * 2

    cases = [
        keras.Sequential([keras.Input((None, 3)), L.GRU(4), ScaledDense(2)]),
        keras.Sequential([keras.Input((None, 3)), NoisyGRU(4), L.Dense(2)]),
        keras.Sequential([keras.Input((None, 3)), L.RNN(HardCell(4)), L.Dense(2)]),
        Doubling([keras.Input((None, 3)), L.GRU(4), L.Dense(2)]),
    ]
    with pytest.raises(NotImplementedError, match="overrides call"):
        fg.from_keras(cases[0])
    with pytest.raises(NotImplementedError, match="overrides call"):
        fg.from_keras(cases[1])
    with pytest.raises(NotImplementedError, match="overrides call|RNN"):
        fg.from_keras(cases[2])  # a plain RNN of a GRU cell is not a GRU layer either
    with pytest.raises(NotImplementedError, match="overrides call"):
        fg.from_keras(cases[3])
    with pytest.raises(NotImplementedError, match="overrides call"):
        fg.from_keras(cases[1].layers[0])  # the single-layer path too
