"""One model used from several real threads at once: predict and streams read one immutable
snapshot per weight version (old weights or new, never a mix), fit / set_weights / evaluate
serialise on the model's lock instead of failing inside the layers."""
import sys
import threading

import numpy as np
import pytest

import fastgru as fg

from conftest import Scale, built_model, layers_forward


@pytest.fixture(autouse=True)
def switch_threads_often():
    # Hand the GIL over every few microseconds, so that threads interleave inside the
    # library's Python code (the default 5 ms would hide most races).
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def run_together(*targets, timeout=60.0):
    """Run each target in its own thread; re-raise the first exception any of them raised."""
    errors = []

    def guarded(fn):
        try:
            fn()
        except BaseException as exc:  # noqa: B902 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread did not finish: deadlock?"
    if errors:
        raise errors[0]


def two_weight_sets(model, seed=1):
    a = model.get_weights()
    rng = np.random.default_rng(seed)
    b = [w * -0.7 + 0.3 * rng.standard_normal(w.shape) for w in a]
    return a, b


def readers_see_old_or_new(model, read, swaps=60):
    """Swap two weight sets in one thread while two threads read; every read must equal one
    of the two sets' outputs exactly."""
    a, b = two_weight_sets(model)
    model.set_weights(a)
    out_a = read()
    model.set_weights(b)
    out_b = read()
    assert not np.allclose(out_a, out_b)
    done = threading.Event()
    mixed = []

    def writer():
        try:
            for i in range(swaps):
                model.set_weights(a if i % 2 else b)
        finally:
            done.set()

    def reader():
        while not done.is_set():
            out = read()
            if not (np.array_equal(out, out_a) or np.array_equal(out, out_b)):
                mixed.append(out)

    run_together(writer, reader, reader)
    assert not mixed, f"{len(mixed)} reads mixed the two weight sets"


@pytest.mark.parametrize("path", ["cpp", "python"])
def test_predict_during_set_weights_sees_the_old_or_the_new_weights(path):
    # weights large enough that NumPy releases the GIL while copying them
    layers = [fg.GRU(128, return_sequences=True), fg.GRU(128), fg.Dense(4)]
    if path == "python":  # a user-defined layer: predict runs the layers' own call
        layers.insert(1, Scale())
    model = built_model(layers)
    X = np.random.default_rng(2).standard_normal((2, 5, 3)).astype(np.float32)
    readers_see_old_or_new(model, lambda: model.predict(X), swaps=60 if path == "cpp" else 200)


def test_evaluate_during_set_weights_sees_the_old_or_the_new_weights():
    model = built_model([fg.GRU(128), fg.Dense(2)])
    model.compile(loss="mse")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((16, 5, 3)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    readers_see_old_or_new(model, lambda: np.float64(model.evaluate(X, y, batch_size=8)), swaps=150)


def test_stream_keeps_its_snapshot_while_weights_change_in_another_thread():
    model = built_model([fg.GRU(12), fg.Dense(2)])
    X = np.random.default_rng(4).standard_normal((1, 40, 3)).astype(np.float32)
    a, b = two_weight_sets(model)
    model.set_weights(a)
    want = model.predict(X)[0]
    stream = model.stream()
    got = []
    half = threading.Event()

    def stepper():
        for t in range(X.shape[1]):
            got.append(stream.step(X[0, t]))
            if t == X.shape[1] // 2:
                half.set()

    def writer():
        half.wait(30)
        for i in range(50):
            model.set_weights(b if i % 2 == 0 else a)
        model.set_weights(b)

    run_together(stepper, writer)
    np.testing.assert_array_equal(got[-1], want)  # all 40 steps ran on the weights of stream()
    fresh = model.stream()
    for t in range(X.shape[1]):
        last = fresh.step(X[0, t])
    np.testing.assert_array_equal(last, model.predict(X)[0])  # a new stream runs the new ones


def fit_in_thread(model, X, y, epochs=2):
    # batches big enough that each kernel call gives the other thread time to interfere
    return lambda: model.fit(X, y, epochs=epochs, batch_size=16, verbose=0, shuffle=True)


def small_training_set(seed=5, n=192):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 40, 3)).astype(np.float32)
    return X, X[:, -1, :1] * 0.5


@pytest.mark.parametrize("other", ["evaluate", "set_weights", "fit", "predict", "layer_set_weights"])
def test_fit_works_alongside_other_calls_on_the_same_model(other):
    model = built_model([fg.GRU(64), fg.Dense(1)])
    model.compile(optimizer=fg.Adam(1e-3), loss="mse")
    X, y = small_training_set()
    weights = model.get_weights()
    done = threading.Event()
    results = []

    def fit():
        try:
            fit_in_thread(model, X, y)()
        finally:
            done.set()

    def alongside():
        while not done.is_set():
            if other == "evaluate":
                results.append(model.evaluate(X[:32], y[:32]))
            elif other == "set_weights":
                model.set_weights(weights)
            elif other == "fit":
                model.fit(X[:32], y[:32], epochs=1, batch_size=16, verbose=0)
            elif other == "predict":
                results.append(model.predict(X[:5]))
            else:
                model.layers[1].set_weights(model.layers[1].get_weights())

    run_together(fit, alongside)
    assert all(np.isfinite(r).all() for r in results)
    # afterwards the model is whole: predict (snapshot) and evaluate (layers) agree
    np.testing.assert_allclose(model.predict(X), layers_forward(model, X), rtol=2e-6, atol=2e-6)


def test_one_gru_layer_called_from_many_threads_while_its_weights_are_set():
    # No model: the layer's own packed-kernel cache must not hand a thread None or a tape
    # from another PackedGRU (the unlocked check-then-set in GRU.packed).
    layer = fg.GRU(8)
    x = np.random.default_rng(6).standard_normal((4, 6, 3)).astype(np.float32)
    layer(x)
    weights = layer.get_weights()
    done = threading.Event()

    def setter():
        try:
            for _ in range(300):
                layer.set_weights(weights)
        finally:
            done.set()

    def caller():
        while not done.is_set():
            assert layer(x).shape == (4, 8)

    run_together(setter, caller, caller)


def test_concurrent_predicts_on_one_model_each_get_their_own_answer():
    # Each call borrows inter-layer scratch from the C++ model's pool instead of waiting for
    # another thread's, so the calls overlap and must not share a buffer.
    # Every answer must equal the one-thread answer for the same input, bit for bit.
    model = built_model([fg.GRU(16, return_sequences=True), fg.GRU(8), fg.Dense(2)])
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((batch, 20, 3)).astype(np.float32)
              for batch in (1, 2, 5, 1, 9, 3, 1, 17)]
    want = [model.predict(x) for x in inputs]
    wrong = []

    def reader(offset):
        def run():
            for i in range(150):
                k = (i + offset) % len(inputs)
                if not np.array_equal(model.predict(inputs[k]), want[k]):
                    wrong.append(k)
        return run

    run_together(*(reader(j) for j in range(4)))
    assert not wrong, f"{len(wrong)} concurrent predicts answered wrongly"


def test_predict_scratch_is_reused_and_the_idle_pool_stays_bounded():
    # A call gives its scratch back for the next one (no allocation and zero-fill per call);
    # however many threads call at once, at most 4 idle buffers are kept afterwards
    # (ScratchPool::kMaxIdle; these are far below its 256 MiB).
    model = built_model([fg.GRU(16, return_sequences=True), fg.GRU(8), fg.Dense(2)])
    runner = model.inference_snapshot().runner
    # long calls (the kernel runs without the GIL), so that many overlap
    x = np.random.default_rng(3).standard_normal((512, 60, 3)).astype(np.float32)
    assert runner.idle_scratch_buffers == 0
    for _ in range(3):
        runner.predict(x)
    assert runner.idle_scratch_buffers == 1

    def caller():
        for _ in range(6):
            runner.predict(x)

    run_together(*(caller for _ in range(12)))
    assert 1 <= runner.idle_scratch_buffers <= 4
