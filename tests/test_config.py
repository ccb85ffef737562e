"""Run-time configuration: SIMD path choice, threads, GIL release."""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastgru
from fastgru import _core


def test_show_config_names_path_compiler_openmp_and_threads(capsys):
    fastgru.show_config()
    text = capsys.readouterr().out
    for key in ("simd", "compiler", "openmp", "threads"):
        assert key in text
    assert _core.config()["simd"] in _core.config()["simd_supported"]


def test_show_config_returns_the_printed_settings_as_a_dict(capsys):
    settings = fastgru.show_config(mode="dicts")
    assert capsys.readouterr().out == ""
    assert settings["simd"] == _core.config()["simd"]
    assert settings["threads"] == fastgru.get_num_threads()
    assert "openmp_wait" in settings
    fastgru.show_config()
    printed = capsys.readouterr().out
    assert all(key in printed for key in settings)
    with pytest.raises(ValueError, match="mode"):
        fastgru.show_config(mode="json")


def test_best_supported_path_is_the_default():
    env = {k: v for k, v in os.environ.items() if k != "FASTGRU_SIMD"}
    code = "from fastgru import _core; c = _core.config(); print(c['simd'], c['simd_supported'][0])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == out[1]


@pytest.mark.parametrize("path", _core.config()["simd_supported"])
def test_environment_variable_forces_a_path(path):
    code = "from fastgru import _core; print(_core.config()['simd'])"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "FASTGRU_SIMD": path},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == path


def test_unknown_path_is_refused():
    with pytest.raises(ValueError, match="unknown SIMD path 'avx9000'"):
        _core.set_simd("avx9000")
    code = "import fastgru"
    result = subprocess.run([sys.executable, "-c", code],
                            env={**os.environ, "FASTGRU_SIMD": "avx9000"}, capture_output=True,
                            text=True)
    assert result.returncode != 0 and "unknown SIMD path" in result.stderr


def test_thread_setting_round_trips_and_rejects_nonsense():
    previous = fastgru.get_num_threads()
    try:
        fastgru.set_num_threads(3)
        assert fastgru.get_num_threads() == 3
        with pytest.raises(ValueError):
            fastgru.set_num_threads(0)
        with pytest.raises(TypeError):
            fastgru.set_num_threads(1.5)
    finally:
        fastgru.set_num_threads(previous)


def longest_pause_of_python_during(call):
    """Run ``call`` in a thread (on one kernel thread, leaving this one a core) and return
    (the longest gap between this thread's loop iterations meanwhile, the time it all took):
    with the GIL held for the whole call, the gap is about the whole call."""
    previous = fastgru.get_num_threads()
    fastgru.set_num_threads(1)
    done = threading.Event()

    def work():
        call()
        done.set()

    try:
        worker = threading.Thread(target=work)
        start = last = time.perf_counter()
        gap = 0.0
        worker.start()
        while not done.is_set():
            now = time.perf_counter()
            gap, last = max(gap, now - last), now
        worker.join()
        return gap, time.perf_counter() - start
    finally:
        fastgru.set_num_threads(previous)


def test_kernels_release_the_gil():
    # While one thread runs a long kernel, this thread keeps running Python.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 400, 8)).astype(np.float32)
    packed = fastgru.PackedGRU(rng.standard_normal((8, 384)) * 0.1,
                               rng.standard_normal((128, 384)) * 0.1, np.zeros((2, 384)),
                               dtype=np.float32)
    packed.forward(x)  # warm up
    gap, took = longest_pause_of_python_during(lambda: [packed.forward(x) for _ in range(3)])
    assert gap < took / 4, (gap, took)


def test_concurrent_calls_from_python_threads_are_correct():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 50, 3))
    packed = fastgru.PackedGRU(rng.standard_normal((3, 60)) * 0.3,
                               rng.standard_normal((20, 60)) * 0.3, np.zeros((2, 60)))
    expected = packed.forward(x)[0]
    results = [None] * 4

    def work(i):
        results[i] = packed.forward(x)[0]

    workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_predict_releases_the_gil_and_concurrent_calls_agree():
    # model.predict runs the C++ inference model; two Python threads may call it at once
    # (its buffers are locked, not shared unsafely) and Python keeps running meanwhile.
    rng = np.random.default_rng(1)
    model = fastgru.Sequential([fastgru.GRU(128), fastgru.Dense(3)])
    model.build((None, None, 8))
    x = rng.standard_normal((64, 400, 8)).astype(np.float32)
    expected = model.predict(x)
    results = []

    def work():
        for _ in range(2):
            results.append(model.predict(x))

    workers = [threading.Thread(target=work) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(results) == 4
    for got in results:
        np.testing.assert_array_equal(got, expected)
    gap, took = longest_pause_of_python_during(lambda: model.predict(x))
    assert gap < took / 4, (gap, took)


def _import_fastgru_and_show_openmp(extra_env):
    """libgomp's own report of its settings (OMP_DISPLAY_ENV) from a fresh interpreter."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "FASTGRU_ADAPTIVE_THREADS")}
    code = ("import os, fastgru; c = fastgru._config.config(); "
            "print(c['openmp_wait'], '|', c['adaptive_threads'], '|', 'GOMP_SPINCOUNT' in os.environ)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**env, "OMP_DISPLAY_ENV": "VERBOSE", **extra_env}, check=True)
    return result.stdout.strip().split(" | "), result.stderr


def test_idle_openmp_threads_spin_briefly_unless_the_user_chose():
    # Shared cores: libgomp's default spin (300,000 pauses) slowed 2-thread epochs 2-7x on a
    # busy machine; fastgru bounds it for its own libgomp only (python/fastgru/_openmp.py).
    (wait, adaptive, leaked), stderr = _import_fastgru_and_show_openmp({})
    assert "GOMP_SPINCOUNT = '1000'" in stderr and wait.startswith("GOMP_SPINCOUNT=1000")
    assert adaptive == "True" and leaked == "False"  # not left for children or other libraries

    (wait, _, leaked), stderr = _import_fastgru_and_show_openmp({"OMP_WAIT_POLICY": "active"})
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in stderr and "GOMP_SPINCOUNT = '1000'" not in stderr
    assert wait == "OMP_WAIT_POLICY=active (set by the user)" and leaked == "False"

    (wait, _, _), stderr = _import_fastgru_and_show_openmp({"GOMP_SPINCOUNT": "77"})
    assert "GOMP_SPINCOUNT = '77'" in stderr and "set by the user" in wait


def test_adaptive_threads_can_be_turned_off():
    (_, adaptive, _), _ = _import_fastgru_and_show_openmp({"FASTGRU_ADAPTIVE_THREADS": "0"})
    assert adaptive == "False"
    previous = _core.config()["adaptive_threads"]
    try:
        _core.set_adaptive_threads(not previous)
        assert _core.config()["adaptive_threads"] is (not previous)
    finally:
        _core.set_adaptive_threads(previous)
