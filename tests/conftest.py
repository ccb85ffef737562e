import numpy as np
import pytest

import fastgru
from fastgru import _core


@pytest.fixture(params=_core.config()["simd_supported"])
def simd(request):
    """Run a test once on every SIMD path this CPU supports, then restore the default."""
    previous = _core.config()["simd"]
    _core.set_simd(request.param)
    yield request.param
    _core.set_simd(previous)


def random_gru(rng, batch, steps, input_size, units, reset_after=True, with_h0=True):
    """Inputs and weights at the scale a trained model has (PyTorch's uniform init)."""
    scale = 1.0 / np.sqrt(units)
    x = rng.standard_normal((batch, steps, input_size))
    kernel = rng.uniform(-scale, scale, (input_size, 3 * units)) * 2
    recurrent = rng.uniform(-scale, scale, (units, 3 * units)) * 2
    bias = rng.uniform(-scale, scale, (2, 3 * units) if reset_after else (3 * units,))
    h0 = rng.uniform(-0.5, 0.5, (batch, units)) if with_h0 else None
    return x, kernel, recurrent, bias, h0


class Scale(fastgru.layers.Layer):
    """A user-defined parameter-free layer: no C++ inference path knows it."""

    def weight_shapes(self):
        return []

    def build(self, input_shape, rng=None):
        self.input_size = int(input_shape[-1])
        self._finish_build([])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def call(self, x):
        return 2 * x


def built_model(layers, features=3, seed=0):
    """A built Sequential of ``layers`` with its initial weights shaken by seeded noise."""
    model = fastgru.Sequential(layers)
    model.build((None, None, features))
    rng = np.random.default_rng(seed)
    model.set_weights([w + 0.2 * rng.standard_normal(w.shape) for w in model.get_weights()])
    return model


def layers_forward(model, X):
    """The reference for predict: each layer's Python-side call in turn (the training forward path)."""
    a = np.ascontiguousarray(X, dtype=model.dtype)
    for layer in model.layers:
        a = layer.call(a)
    return a


def loss_and_gradients(model, X, y, loss):
    """The loss on ``(X, y)`` as one batch and its gradient, one array per weight, through
    the public API only: one full-batch step of plain SGD with learning rate 1 moves each
    weight by exactly minus its gradient. Leaves the weights as they were."""
    before = model.get_weights()
    model.compile(optimizer=fastgru.SGD(learning_rate=1.0), loss=loss)
    history = model.fit(X, y, epochs=1, batch_size=len(X), shuffle=False, verbose=0)
    after = model.get_weights()
    model.set_weights(before)
    return history.history["loss"][0], [b - a for b, a in zip(before, after)]


def at_byte_offset(a, offset=1):
    """A C-contiguous copy of ``a`` starting ``offset`` bytes past an aligned address
    (misaligned when ``offset`` is not a multiple of the item size)."""
    raw = np.empty(a.nbytes + offset, np.uint8)
    view = raw[offset:].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


def recording_dropout_masks(monkeypatch, module):
    """Spy on ``module.dropout_mask``: the returned list fills with every mask it draws."""
    masks = []
    original = module.dropout_mask

    def record(*args, **kwargs):
        m = original(*args, **kwargs)
        masks.append(m)
        return m

    monkeypatch.setattr(module, "dropout_mask", record)
    return masks
