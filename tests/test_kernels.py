"""Parity of the C++ kernels with fastgru.reference on every SIMD path, dtype, gate variant
and thread count, over shapes that catch edge cases (H below, at and above a vector width,
batch sizes that leave partial row blocks, a single step, input size 1)."""
import functools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastgru
from fastgru import reference

from conftest import random_gru

# (batch, steps, input_size, units, with_h0): every value of each dimension appears.
SHAPES = [
    (1, 100, 1, 50, True),
    (1, 1, 5, 129, False),
    (3, 2, 1, 1, True),
    (3, 100, 5, 7, False),
    (32, 1, 1, 8, True),
    (32, 2, 5, 50, False),
    (32, 100, 1, 129, True),
    (3, 1, 5, 129, True),
    (1, 2, 1, 8, False),
    (32, 100, 5, 1, False),
    (3, 100, 1, 50, True),
    (1, 100, 5, 7, True),
]

# float64: the kernels must agree with NumPy to rounding. float32: the fast activations are
# about 1 ulp (see cpp/simd.h); what remains is float32 accumulation over H and T.
TOLERANCE = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}
GRAD_TOLERANCE = {np.float64: dict(rtol=1e-9, atol=1e-11), np.float32: dict(rtol=1e-3, atol=2e-4)}


@functools.lru_cache(maxsize=None)
def case(shape, reset_after, dtype):
    """Inputs rounded to dtype, and the float64 reference results on exactly those inputs."""
    batch, steps, input_size, units, with_h0 = shape
    rng = np.random.default_rng(abs(hash((shape, reset_after))) % 2**32)
    arrays = random_gru(rng, batch, steps, input_size, units, reset_after, with_h0)
    x, kernel, recurrent, bias, h0 = (None if a is None else a.astype(dtype) for a in arrays)
    d_out = rng.standard_normal((batch, steps, units)).astype(dtype)
    d_h_last = rng.standard_normal((batch, units)).astype(dtype)
    out, h_last, tape = reference.gru_forward_train(x, kernel, recurrent, bias, h0, reset_after)
    grads = reference.gru_backward(tape, d_out, d_h_last)
    return (x, kernel, recurrent, bias, h0, d_out, d_h_last), (out, h_last), grads


def assert_close(actual, expected, tol, name):
    assert actual.shape == expected.shape, name
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale,
                               err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_forward_and_backward_match_reference(simd, threads, reset_after, dtype):
    for shape in SHAPES:
        (x, kernel, recurrent, bias, h0, d_out, d_h_last), (out, h_last), grads = case(
            shape, reset_after, dtype)
        got_out, got_h = fastgru.gru_forward(x, kernel, recurrent, bias, h0, reset_after)
        assert got_out.dtype == dtype and got_h.dtype == dtype
        assert_close(got_out, out, TOLERANCE[dtype], f"outputs {shape}")
        assert_close(got_h, h_last, TOLERANCE[dtype], f"last state {shape}")

        train_out, train_h, tape = fastgru.gru_forward_train(x, kernel, recurrent, bias, h0,
                                                             reset_after)
        np.testing.assert_array_equal(train_out, got_out)  # one kernel, two modes
        np.testing.assert_array_equal(train_h, got_h)
        got = fastgru.gru_backward(tape, d_out, d_h_last)
        for name in grads._fields:
            assert_close(getattr(got, name), getattr(grads, name), GRAD_TOLERANCE[dtype],
                         f"{name} {shape}")


def test_float32_outputs_within_1e5_at_100_steps(simd):
    # The bar, stated on its own: float32 outputs within 1e-5 absolute at T = 100.
    (x, kernel, recurrent, bias, h0, _, _), (out, _), _ = case((32, 100, 1, 129, True), True,
                                                               np.float32)
    got, _ = fastgru.gru_forward(x, kernel, recurrent, bias, h0)
    assert np.max(np.abs(got - out)) < 1e-5


@pytest.mark.parametrize("reset_after", [True, False])
def test_thread_count_does_not_change_results(simd, reset_after):
    rng = np.random.default_rng(3)
    x, kernel, recurrent, bias, h0 = random_gru(rng, 45, 30, 4, 33, reset_after)
    x, kernel, recurrent, bias, h0 = (a.astype(np.float32) for a in (x, kernel, recurrent, bias, h0))
    d_out = rng.standard_normal((45, 30, 33)).astype(np.float32)
    results = []
    previous = fastgru.get_num_threads()
    try:
        for n in (1, 2, 3):
            fastgru.set_num_threads(n)
            out, h, tape = fastgru.gru_forward_train(x, kernel, recurrent, bias, h0, reset_after)
            results.append((out, h) + tuple(fastgru.gru_backward(tape, d_out)))
    finally:
        fastgru.set_num_threads(previous)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)  # bit for bit: fixed-order reductions


def test_non_contiguous_and_fortran_inputs_give_the_same_result():
    rng = np.random.default_rng(5)
    x, kernel, recurrent, bias, h0 = random_gru(rng, 6, 9, 3, 10)
    expected = fastgru.gru_forward(x, kernel, recurrent, bias, h0)
    wide = np.zeros((6, 18, 3))
    wide[:, ::2] = x  # a strided view
    variants = [
        (wide[:, ::2], kernel, recurrent, bias, h0),
        (np.asfortranarray(x), np.asfortranarray(kernel), np.asfortranarray(recurrent),
         np.asfortranarray(bias), np.asfortranarray(h0)),
        (x.tolist(), kernel.tolist(), recurrent.tolist(), bias.tolist(), h0.tolist()),
    ]
    for args in variants:
        got = fastgru.gru_forward(*args)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_packed_gru_reuses_weights_and_matches_free_function():
    rng = np.random.default_rng(9)
    x, kernel, recurrent, bias, _ = random_gru(rng, 4, 12, 2, 16)
    packed = fastgru.PackedGRU(kernel, recurrent, bias, dtype=np.float32)
    ref_out, ref_h = fastgru.gru_forward(x.astype(np.float32), kernel.astype(np.float32),
                                         recurrent.astype(np.float32), bias.astype(np.float32))
    for _ in range(3):
        out, h = packed.forward(x)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(h, ref_h)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_update_in_place_equals_a_fresh_pack_and_need_dx_false_skips_only_dx(simd, reset_after,
                                                                            dtype):
    rng = np.random.default_rng(11)
    x, k1, r1, b1, h0 = random_gru(rng, 9, 7, 3, 21, reset_after)
    _, k2, r2, b2, _ = random_gru(rng, 9, 7, 3, 21, reset_after)
    d_out = rng.standard_normal((9, 7, 21))
    updated = fastgru.PackedGRU(k1, r1, b1, reset_after, dtype)
    updated.forward(x, h0)
    updated.update(k2, r2, b2)
    fresh = fastgru.PackedGRU(k2, r2, b2, reset_after, dtype)
    results = []
    for packed in (updated, fresh):
        out, h, tape = packed.forward_train(x, h0)
        results.append((out, h) + tuple(packed.backward(tape, d_out)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    # The batch-1 path reads its own copy of U: compare it with the batched kernel's row.
    for a, b in zip(updated.forward(x[:1], h0[:1]), results[1][:2]):
        np.testing.assert_allclose(a, b[:1], rtol=1e-5, atol=1e-6)
    _, _, tape = fresh.forward_train(x, h0)
    no_dx = fresh.backward(tape, d_out, need_dx=False)
    assert no_dx.dx is None
    for a, b in zip(no_dx[1:], results[1][3:]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        updated.update(k2[:, :-3], r2, b2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before"])
def test_forward_train_without_outputs_changes_nothing_else(simd, reset_after, dtype):
    # A GRU that returns only its last state skips writing every step's state: the last
    # state, the tape and so the gradients are the same bits.
    rng = np.random.default_rng(12)
    x, kernel, recurrent, bias, h0 = random_gru(rng, 11, 6, 2, 19, reset_after)
    d_h = rng.standard_normal((11, 19))
    packed = fastgru.PackedGRU(kernel, recurrent, bias, reset_after, dtype)
    out, h, tape = packed.forward_train(x, h0)
    none, h_only, tape_only = packed.forward_train(x, h0, outputs=False)
    assert out is not None and none is None
    np.testing.assert_array_equal(h, h_only)
    for name in ("h_prev", "gates", "h_rec"):
        np.testing.assert_array_equal(getattr(tape, name), getattr(tape_only, name))
    for a, b in zip(packed.backward(tape, d_h_last=d_h), packed.backward(tape_only, d_h_last=d_h)):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 20), steps=st.integers(1, 12), input_size=st.integers(1, 9),
    units=st.integers(1, 40), reset_after=st.booleans(), with_h0=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_shapes_match_reference_float64(batch, steps, input_size, units, reset_after,
                                               with_h0, seed):
    rng = np.random.default_rng(seed)
    x, kernel, recurrent, bias, h0 = random_gru(rng, batch, steps, input_size, units,
                                                reset_after, with_h0)
    d_out = rng.standard_normal((batch, steps, units))
    out, h, tape = fastgru.gru_forward_train(x, kernel, recurrent, bias, h0, reset_after)
    ref_out, ref_h, ref_tape = reference.gru_forward_train(x, kernel, recurrent, bias, h0,
                                                           reset_after)
    assert_close(out, ref_out, TOLERANCE[np.float64], "outputs")
    assert_close(h, ref_h, TOLERANCE[np.float64], "last state")
    got = fastgru.gru_backward(tape, d_out)
    expected = reference.gru_backward(ref_tape, d_out)
    for name in expected._fields:
        assert_close(getattr(got, name), getattr(expected, name), GRAD_TOLERANCE[np.float64], name)


# Units that give each layout of the latency path's grouped U (cpp/common.h, grouped_column)
# for 16, 8, 4 and 2 lanes: whole groups only, a tail of 3t <= L lanes ([z r n]), of
# 2t <= L < 3t ([z r][n]), a padded last group; one chunk of registers or several, the last
# with or without a tail (cpp/gru_forward.h, forward_latency_path: 3 or 4 groups a chunk);
# and sizes past the path (256).
LATENCY_UNITS = [1, 2, 3, 4, 5, 7, 8, 11, 12, 13, 16, 17, 20, 23, 32, 33, 40, 44, 50, 64, 70,
                 97, 129, 256]


# (units, vectors on AVX-512 / on AVX2) for float32: 0 is the batched kernel.
LATENCY_VECTORS = [(50, 10, 19), (48, 9, 18), (44, 9, 17), (5, 1, 3), (8, 2, 3), (64, 0, 24),
                   (70, 14, 27), (129, 25, 49), (181, 34, 69), (256, 0, 0)]


@pytest.mark.parametrize("path", ["avx512", "avx2"])
@pytest.mark.parametrize("units, avx512_vectors, avx2_vectors", LATENCY_VECTORS)
def test_the_latency_path_is_taken_where_it_pays(path, units, avx512_vectors, avx2_vectors):
    # The batch-1 kernel keeps h*U in registers, up to 12 AVX-512 float vectors a row in one
    # chunk (PackedWeights' constructor; H = 50 needs 10: [z r n] x 3 groups of 16 + a
    # packed tail), and chunk by chunk beyond, for U up to 512 KiB (AVX2's H = 50: 19).
    from fastgru import _core
    if path not in _core.config()["simd_supported"]:
        pytest.skip(f"this CPU has no {path}")
    previous = _core.config()["simd"]
    _core.set_simd(path)
    try:
        rng = np.random.default_rng(0)
        packed = _core.PackedGRU(*(a.astype(np.float32) for a in random_gru(
            rng, 1, 1, 1, units, True)[1:4]), True)
        assert packed.latency_vectors == (avx512_vectors if path == "avx512" else avx2_vectors)
    finally:
        _core.set_simd(previous)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("units", LATENCY_UNITS)
def test_batch_one_latency_path_matches_the_batched_kernel_and_reference(simd, units, dtype,
                                                                         reset_after):
    # A single row (a window to predict, a stream step) runs its own schedule with U grouped
    # by units for some H (cpp/gru_forward.h, forward_latency_path; reset_after=False in two
    # passes a step); it must give what the batched kernel gives for that row, and what the
    # reference gives.
    rng = np.random.default_rng(units)
    x, kernel, recurrent, bias, h0 = (a.astype(dtype) for a in
                                      random_gru(rng, 2, 40, 3, units, reset_after))
    alone, h_alone = fastgru.gru_forward(x[:1], kernel, recurrent, bias, h0[:1], reset_after)
    batched, h_batched = fastgru.gru_forward(x, kernel, recurrent, bias, h0, reset_after)
    # bit for bit: both schedules share the gate functions and the order of every sum
    np.testing.assert_array_equal(alone, batched[:1])
    np.testing.assert_array_equal(h_alone, h_batched[:1])
    ref, _ = reference.gru_forward(x[:1], kernel, recurrent, bias, h0[:1], reset_after)
    assert_close(alone, ref, TOLERANCE[dtype], f"batch 1, H={units}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 3])
def test_gates_saturate_on_huge_inputs_and_nan_propagates(simd, dtype, batch):
    # The vector exp clamps its argument (cpp/simd.h): pre-activations of +-1e4 and +-1e30
    # must saturate the gates exactly as the float64 reference does, and a NaN that reaches
    # a gate must come out as NaN, on the latency path (batch 1) and the batched one.
    rng = np.random.default_rng(7)
    x, kernel, recurrent, bias, h0 = (a.astype(dtype) for a in
                                      random_gru(rng, batch, 6, 2, 50, True))
    x[:, 1] = 1e4
    x[:, 2] = -1e30
    x[:, 3, 0] = 1e30
    with np.errstate(over="ignore"):
        ref, _ = reference.gru_forward(x.astype(np.float64), kernel, recurrent, bias, h0)
    out, _ = fastgru.gru_forward(x, kernel, recurrent, bias, h0)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)

    recurrent = recurrent.copy()
    recurrent[3, 7] = np.nan  # reaches every unit one step after h[3] is nonzero
    out, h = fastgru.gru_forward(x, kernel, recurrent, bias, h0)
    assert np.isnan(out[:, 1:]).all() and np.isnan(h).all()
