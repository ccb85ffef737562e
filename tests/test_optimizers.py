"""Optimizers against update sequences computed by hand from Keras 3's rules."""
import math

import numpy as np
import pytest

from fastgru.optimizers import SGD, Adam, RMSprop, get


def _grads(t, p):
    """A deterministic gradient that depends on the step and the parameters."""
    return np.array([0.5 * p[0] - 0.1 * t, -2.0 + p[1], 3.0 * math.sin(t + 1.0)])


def test_adam_matches_hand_computed_sequence():
    lr, b1, b2, eps = 0.05, 0.8, 0.95, 1e-7
    opt = Adam(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps)
    p = np.array([1.0, -0.5, 0.25])
    opt.build(p)
    # by hand, element by element, textbook form (bias-corrected learning rate)
    q = [1.0, -0.5, 0.25]
    m = [0.0] * 3
    v = [0.0] * 3
    for t in range(1, 8):
        g = _grads(t - 1, np.array(q))
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        for i in range(3):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            q[i] -= alpha * m[i] / (math.sqrt(v[i]) + eps)
        opt.step(p, _grads(t - 1, p.copy()))
        np.testing.assert_allclose(p, q, rtol=1e-13, atol=1e-15)
    assert opt.iterations == 7


def test_adam_first_step_moves_each_parameter_by_lr():
    opt = Adam(learning_rate=0.01)
    p = np.zeros(4)
    opt.step(p, np.array([3.0, -0.2, 0.1, 50.0]))
    np.testing.assert_allclose(p, [-0.01, 0.01, -0.01, -0.01], rtol=1e-4)


def test_adam_float32_keeps_dtype_and_matches_float64_closely():
    g = np.random.default_rng(0).standard_normal((5, 10))
    p32 = np.ones(10, np.float32)
    p64 = np.ones(10)
    o32, o64 = Adam(0.01), Adam(0.01)
    for row in g:
        o32.step(p32, row.astype(np.float32))
        o64.step(p64, row)
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=1e-5)


def test_amsgrad_uses_max_of_second_moments():
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    opt = Adam(learning_rate=lr, amsgrad=True)
    p = np.array([0.0])
    gs = [10.0, 0.1, 0.1]
    m = v = vhat = 0.0
    q = 0.0
    for t, g in enumerate(gs, 1):
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        vhat = max(vhat, v)
        q -= lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (math.sqrt(vhat) + eps)
        opt.step(p, np.array([g]))
        assert p[0] == pytest.approx(q, rel=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_keras_rule(nesterov):
    lr, mom = 0.1, 0.9
    opt = SGD(learning_rate=lr, momentum=mom, nesterov=nesterov)
    p = np.array([1.0, 2.0, 3.0])
    q = [1.0, 2.0, 3.0]
    m = [0.0] * 3
    for t in range(5):
        g = _grads(t, np.array(q))
        for i in range(3):
            m[i] = m[i] * mom - g[i] * lr
            q[i] += (m[i] * mom - g[i] * lr) if nesterov else m[i]
        opt.step(p, _grads(t, p.copy()))
        np.testing.assert_allclose(p, q, rtol=1e-14)


def test_plain_sgd():
    p = np.array([1.0, -1.0])
    SGD(learning_rate=0.5).step(p, np.array([2.0, 4.0]))
    np.testing.assert_array_equal(p, [0.0, -3.0])


def test_clipnorm_clips_each_weight_separately_and_global_clipnorm_jointly():
    opt = SGD(learning_rate=1.0, clipnorm=1.0)
    p = np.zeros(4)
    opt.build(p, segments=[(0, 2), (2, 4)])
    opt.step(p, np.array([3.0, 4.0, 0.3, 0.4]))  # norms 5 (clipped to 1) and 0.5 (kept)
    np.testing.assert_allclose(p, [-0.6, -0.8, -0.3, -0.4])
    opt = SGD(learning_rate=1.0, global_clipnorm=1.0)
    p = np.zeros(4)
    opt.step(p, np.array([3.0, 4.0, 0.0, 0.0]))
    np.testing.assert_allclose(p, [-0.6, -0.8, 0.0, 0.0])


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        Adam(learning_rate=-1)
    with pytest.raises(ValueError):
        Adam(beta_1=1.0)
    with pytest.raises(ValueError):
        SGD(momentum=2.0)
    with pytest.raises(ValueError):
        SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        get("adagrad-ish")
    assert isinstance(get("adam"), Adam) and get("sgd").learning_rate == 0.01


def _two_adams(seed, n, dtype, **adam_args):
    """Two equal Adams on two equal random parameter vectors, and the random generator."""
    rng = np.random.default_rng(seed)
    start = rng.standard_normal(n).astype(dtype)
    fused, numpy_path = start.copy(), start.copy()
    opts = (Adam(0.01, **adam_args), Adam(0.01, **adam_args))
    opts[0].build(fused)
    opts[1].build(numpy_path)
    return rng, opts, fused, numpy_path


def _step_fused_and_numpy(opts, fused, numpy_path, g):
    """One step of opts[0] on ``fused`` and of opts[1] on ``numpy_path``: C-contiguous gradients
    take Adam's fused C++ step, a strided view of the same values the NumPy one."""
    strided = np.empty(2 * g.size, g.dtype)[::2]
    strided[:] = g
    opts[0].step(fused, g)
    opts[1].step(numpy_path, strided)


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_fused_step_rounds_exactly_as_the_numpy_path(dtype, amsgrad):
    rng, opts, fused, numpy_path = _two_adams(4, 257, dtype, amsgrad=amsgrad)
    for _ in range(20):
        _step_fused_and_numpy(opts, fused, numpy_path, rng.standard_normal(257).astype(dtype) * 3)
    np.testing.assert_array_equal(fused, numpy_path)
    np.testing.assert_array_equal(opts[0].v, opts[1].v)


def _subnormal_count(a):
    return int(np.count_nonzero((a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)))


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_moments_that_decay_to_subnormal_are_stored_as_zero_on_both_paths(dtype, amsgrad):
    # Zero gradients for half the weights (a saturated unit's): with beta 0.5 their moments
    # halve each step, through the subnormal range in ~130 (float32) or ~1,080 (float64) steps.
    # Unflushed, they would stick at the smallest subnormal (m - m/2 rounds back to it) and slow
    # every later step. The fused C++ step and the NumPy one must flush the same values.
    rng, opts, fused, numpy_path = _two_adams(5, 64, dtype, beta_1=0.5, beta_2=0.5,
                                              amsgrad=amsgrad)
    saw_subnormal_range = False
    for step in range(1200):
        g = rng.standard_normal(64).astype(dtype)
        if step > 0:
            g[:32] = 0
        _step_fused_and_numpy(opts, fused, numpy_path, g)
        m = np.abs(opts[0].m[:32])
        saw_subnormal_range |= bool(np.any((m > 0) & (m < np.finfo(dtype).tiny * 4)))
        for opt in opts:
            states = [opt.m, opt.v] + ([opt.v_hat] if amsgrad else [])
            assert all(_subnormal_count(s) == 0 for s in states), step
    assert saw_subnormal_range  # the moments did reach the edge of the normal range
    assert np.all(opts[0].m[:32] == 0) and np.all(opts[0].v[:32] == 0)
    np.testing.assert_array_equal(fused, numpy_path)
    np.testing.assert_array_equal(opts[0].m, opts[1].m)
    np.testing.assert_array_equal(opts[0].v, opts[1].v)


@pytest.mark.parametrize("make, names", [
    (lambda: SGD(0.01, momentum=0.5), ["m"]),
    (lambda: SGD(0.01, momentum=0.5, nesterov=True), ["m"]),
    (lambda: RMSprop(0.01, rho=0.5, momentum=0.5, centered=True), ["velocity", "m", "average_grad"]),
])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_sgd_and_rmsprop_state_that_decays_to_subnormal_is_stored_as_zero(make, names, layout):
    opt = make()
    p = np.ones((4, 2), np.float32, order=layout)  # "F": state not C-contiguous, NumPy's flush
    opt.build(p)
    opt.step(p, np.full((4, 2), 0.5, np.float32))
    for _ in range(300):  # halving each step: through the float32 subnormal range
        opt.step(p, np.zeros((4, 2), np.float32))
        for name in names:
            assert _subnormal_count(getattr(opt, name)) == 0
    assert all(np.all(getattr(opt, name) == 0) for name in names)
    assert np.all(np.isfinite(p))


def test_step_refuses_arrays_its_state_was_not_built_for():
    # A silent rebuild would drop the moments and restart the bias correction.
    opt = Adam(0.01)
    p = np.zeros(4)
    opt.step(p, np.ones(4))
    with pytest.raises(ValueError, match="built for 4 values of dtype float64"):
        opt.step(np.zeros(5), np.ones(5))
    with pytest.raises(ValueError, match="call build"):
        opt.step(np.zeros(4, np.float32), np.ones(4, np.float32))
    assert opt.iterations == 1
    opt.build(np.zeros(5))
    opt.step(np.zeros(5), np.ones(5))
    assert opt.iterations == 1


@pytest.mark.parametrize("other", [dict(units=4), dict(units=3, dtype="float64")],
                         ids=["other-size", "same-size-other-dtype"])
def test_one_optimizer_moves_between_models(other):
    # fit starts the optimizer over for a model whose flat buffer it was not built for (size
    # or dtype), also for a model that is already built and was fitted with it before.
    import fastgru as fg
    opt = Adam(0.01)
    X = np.random.default_rng(0).standard_normal((8, 5, 1))
    models = []
    for spec in (dict(units=3), other):
        dtype = spec.get("dtype", "float32")
        model = fg.Sequential([fg.GRU(spec["units"], dtype=dtype), fg.Dense(1, dtype=dtype)])
        model.compile(optimizer=opt, loss="mse")
        models.append(model)
    for model in models + models[:1]:
        model.fit(X, X[:, -1], epochs=1, batch_size=4, verbose=0)
    assert opt.iterations == 2


@pytest.mark.parametrize("make, state_arrays", [(lambda: Adam(0.01), 2),
                                                (lambda: SGD(0.01, momentum=0.9, nesterov=True), 1)],
                         ids=["adam", "sgd-nesterov"])
def test_a_pickled_optimizer_carries_its_state_but_not_its_scratch(make, state_arrays):
    import pickle
    rng = np.random.default_rng(3)
    opt, p = make(), np.ones(1000)
    opt.step(p, rng.standard_normal(1000))
    g = rng.standard_normal((1000, 2))[:, 0]  # strided: the NumPy update, which uses scratch
    opt.step(p, g)
    size = len(pickle.dumps(opt))
    assert 8 * 1000 * state_arrays < size < 8 * 1000 * (state_arrays + 0.5)
    clone, q = pickle.loads(pickle.dumps(opt)), p.copy()
    opt.step(p, g)
    clone.step(q, g)
    np.testing.assert_array_equal(q, p)
