"""Bad input gets a TypeError/ValueError naming the argument and the expected shape."""
import numpy as np
import pytest

import fastgru
from fastgru import reference

B, T, I, H = 2, 3, 4, 5


def args(reset_after=True, **override):
    rng = np.random.default_rng(0)
    values = dict(
        x=rng.standard_normal((B, T, I)),
        kernel=rng.standard_normal((I, 3 * H)),
        recurrent_kernel=rng.standard_normal((H, 3 * H)),
        bias=rng.standard_normal((2, 3 * H) if reset_after else (3 * H,)),
        h0=None,
        reset_after=reset_after,
    )
    values.update(override)
    return values


BAD = [
    (dict(x=np.zeros((B, T))), ValueError, r"x must be 3-D \(batch, time, input_size\)"),
    (dict(x=np.zeros((0, T, I))), ValueError, "x must have batch, time and input_size all > 0"),
    (dict(x=np.zeros((B, 0, I))), ValueError, "x must have batch, time and input_size all > 0"),
    (dict(x=np.zeros((B, T, I + 1))), ValueError, r"kernel must have shape \(input_size, 3\*units\) = \(5, 15\)"),
    (dict(kernel=np.zeros((I, 3 * H + 1))), ValueError, r"kernel must have shape .* = \(4, 15\)"),
    (dict(recurrent_kernel=np.zeros((H, 2 * H))), ValueError, r"recurrent_kernel must be 2-D \(units, 3\*units\)"),
    (dict(bias=np.zeros(3 * H)), ValueError, r"bias must have shape \(2, 15\) for reset_after=True"),
    (dict(reset_after=False, bias=np.zeros((2, 3 * H))), ValueError, r"bias must have shape \(15,\) for reset_after=False"),
    (dict(h0=np.zeros((B, H + 1))), ValueError, r"h0 must have shape \(batch, units\) = \(2, 5\)"),
    (dict(h0=np.zeros(H)), ValueError, r"h0 must have shape \(batch, units\) = \(2, 5\)"),
    (dict(x=np.zeros((B, T, I), dtype=np.int64)), TypeError, "x must be a floating-point array"),
    (dict(kernel=np.zeros((I, 3 * H), dtype=np.int32)), TypeError, "kernel must be a floating-point array"),
    (dict(x=np.array([[["a"] * I] * T] * B, dtype=object)), TypeError, "x must be a floating-point array"),
    (dict(bias=np.zeros((2, 3 * H), dtype=np.complex128)), TypeError, "bias must be a floating-point array"),
    (dict(reset_after="yes"), TypeError, "reset_after must be a bool"),
]


@pytest.mark.parametrize("impl", [fastgru, reference], ids=["fast", "reference"])
@pytest.mark.parametrize("override, error, message", BAD)
def test_bad_arguments_raise_clear_errors(impl, override, error, message):
    with pytest.raises(error, match=message):
        impl.gru_forward(**args(**override))


def test_backward_checks_upstream_gradient_shapes():
    out, h, tape = fastgru.gru_forward_train(**args())
    with pytest.raises(ValueError, match=r"d_out must have shape \(batch, time, units\) = \(2, 3, 5\)"):
        fastgru.gru_backward(tape, np.zeros((B, T, H + 1)))
    with pytest.raises(ValueError, match=r"d_h_last must have shape \(batch, units\) = \(2, 5\)"):
        fastgru.gru_backward(tape, None, np.zeros((B + 1, H)))
    with pytest.raises(TypeError, match="tape must be"):
        fastgru.gru_backward({"x": 1}, np.zeros((B, T, H)))


def test_packed_gru_checks_x_against_its_weights():
    packed = fastgru.PackedGRU(**{k: v for k, v in args().items() if k not in ("x", "h0")})
    with pytest.raises(ValueError, match=r"x must be 3-D \(batch, time, input_size=4\)"):
        packed.forward(np.zeros((B, T, I + 2)))
    with pytest.raises(TypeError, match="x must be a floating-point array"):
        packed.forward(np.zeros((B, T, I), dtype=np.int8))


def test_core_checks_shapes_itself():
    # The C++ side is the second line of defence: wrong dtype, order or shape never reach a kernel.
    from fastgru import _core
    a = args()
    core = _core.PackedGRU(a["kernel"], a["recurrent_kernel"], a["bias"], True)
    with pytest.raises(ValueError, match=r"x must have shape \(2, 3, 4\)"):
        core.forward(np.zeros((B, T, I + 1)), None)
    with pytest.raises(TypeError, match="x must have dtype float64"):
        core.forward(np.zeros((B, T, I), dtype=np.float32), None)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        core.forward(np.asfortranarray(np.zeros((B, T, I))), None)
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 5\)"):
        core.forward(np.zeros((B, T, I)), np.zeros((B, H + 1)))
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 15\)"):
        _core.PackedGRU(a["kernel"], a["recurrent_kernel"], np.zeros(3 * H), True)


def test_nan_in_the_input_propagates_to_the_output():
    # Documented behaviour (fastgru.gru): NaN in, NaN out, no crash; other rows unaffected.
    a = args()
    a["x"][0, 1, 2] = np.nan
    out, h = fastgru.gru_forward(**a)
    assert np.isnan(out[0, 1:]).all() and not np.isnan(out[0, 0]).any()
    assert np.isfinite(out[1]).all()
    a["x"][1, 0, 0] = np.inf  # saturates the gates instead
    out, _ = fastgru.gru_forward(**a)
    assert np.isfinite(out[1]).all()


def test_mixed_precision_computes_in_float64_and_float16_in_float32():
    a = args()
    a["x"] = a["x"].astype(np.float32)
    out, _ = fastgru.gru_forward(**a)
    assert out.dtype == np.float64
    a = {k: (v.astype(np.float16) if isinstance(v, np.ndarray) else v) for k, v in args().items()}
    out, _ = fastgru.gru_forward(**a)
    assert out.dtype == np.float32


def test_inference_model_checks_its_layer_specs():
    # The private C++ entry point still refuses what would read out of bounds.
    from fastgru import _core
    from fastgru.specs import DenseSpec, GRUSpec
    f32 = np.float32
    with pytest.raises(TypeError, match="must be NumPy arrays"):
        _core.InferenceModelFloat32([GRUSpec([[1.0]], np.zeros((1, 3), f32), np.zeros((2, 3), f32))])
    with pytest.raises(ValueError, match="must be > 0"):
        _core.InferenceModelFloat32([GRUSpec(np.zeros((1, 0), f32), np.zeros((0, 0), f32), np.zeros((2, 0), f32))])
    gru = GRUSpec(np.zeros((1, 6), f32), np.zeros((2, 6), f32), np.zeros((2, 6), f32))
    with pytest.raises(ValueError, match="must be > 0"):
        _core.InferenceModelFloat32([gru, DenseSpec(np.zeros((2, 0), f32), np.zeros(0, f32), "softmax")])
    with pytest.raises(ValueError, match="takes 3 inputs but layer 0 gives 2"):
        _core.InferenceModelFloat32([gru, DenseSpec(np.zeros((3, 1), f32), np.zeros(1, f32), "linear")])
    with pytest.raises(TypeError, match="fastgru.specs"):
        _core.InferenceModelFloat32([("gru", *gru.weights, True, False)])


@pytest.mark.parametrize("make", [
    lambda v: fastgru.GRU(4, reset_after=v),
    lambda v: fastgru.GRU(4, return_sequences=v),
    lambda v: fastgru.GRU(4, return_state=v),
    lambda v: setattr(fastgru.GRU(4), "return_sequences", v),
    lambda v: setattr(fastgru.GRU(4), "reset_after", v),
    lambda v: fastgru.PackedGRU(np.zeros((1, 6)), np.zeros((2, 6)), np.zeros((2, 6) if v else 6), v),
    lambda v: fastgru.Adam(amsgrad=v),
    lambda v: fastgru.SGD(0.1, momentum=0.9, nesterov=v),
    lambda v: fastgru.RMSprop(centered=v),
], ids=["reset_after", "return_sequences", "return_state", "set_return_sequences",
        "set_reset_after", "PackedGRU", "amsgrad", "nesterov", "centered"])
def test_flags_must_be_bools_not_truthy_values(make):
    # "False" would be True by truthiness; NumPy bools are bools
    for bad in ("False", 0.5, None, [0], 1):
        with pytest.raises(TypeError, match="must be a bool"):
            make(bad)
    make(np.bool_(False))
    make(True)


@pytest.mark.parametrize("make", [
    lambda s: fastgru.GRU(4, seed=s),
    lambda s: fastgru.Dense(1, seed=s),
    lambda s: fastgru.Dropout(0.1, seed=s),
    lambda s: fastgru.GRUForecaster(seed=s).fit(np.sin(np.arange(80.0))),
    lambda s: _compiled_model().fit(np.zeros((8, 4, 1)), np.zeros((8, 1)), verbose=0, seed=s),
], ids=["GRU", "Dense", "Dropout", "GRUForecaster", "fit"])
def test_seeds_are_none_or_non_negative_ints_named_when_not(make):
    with pytest.raises(ValueError, match="seed must be None or an int >= 0"):
        make(-1)
    for bad in (1.5, "abc", True):
        with pytest.raises(TypeError, match="seed must be None or an int >= 0"):
            make(bad)


def _compiled_model():
    model = fastgru.Sequential([fastgru.GRU(3), fastgru.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def _tiny_forecaster(**params):
    return fastgru.GRUForecaster(window=4, units=2, epochs=1, calibration_size=None,
                                 **params).fit(np.sin(np.arange(40.0)) + 2)


def test_fit_also_takes_a_numpy_generator_or_seed_sequence_as_seed():
    X, y = np.zeros((8, 4, 1)), np.zeros((8, 1))
    for seed in (np.random.default_rng(0), np.random.SeedSequence(0)):
        _compiled_model().fit(X, y, verbose=0, seed=seed)
    with pytest.raises(TypeError, match="a numpy Generator or SeedSequence"):
        _compiled_model().fit(X, y, verbose=0, seed="0")
    with pytest.raises(TypeError, match="seed must be None or an int >= 0; got Generator"):
        fastgru.GRU(3, seed=np.random.default_rng(0))  # a layer's seed is saved: an int


@pytest.mark.parametrize("make", [
    lambda v: _tiny_forecaster(reset_after=v),
    lambda v: _tiny_forecaster(shuffle=v),
    lambda v: _tiny_forecaster(log=v),
    lambda v: _compiled_model().fit(np.zeros((8, 4, 1)), np.zeros((8, 1)), verbose=0, shuffle=v),
], ids=["forecaster-reset_after", "forecaster-shuffle", "forecaster-log", "fit-shuffle"])
def test_more_flags_must_be_bools(make):
    for bad in ("False", 0, None):
        with pytest.raises(TypeError, match="must be a bool"):
            make(bad)
    make(False)


def test_validation_split_must_be_a_number():
    with pytest.raises(TypeError, match="validation_split must be a number"):
        _compiled_model().fit(np.zeros((8, 4, 1)), np.zeros((8, 1)), verbose=0,
                              validation_split="0.5")
