"""Builds the extension again with AddressSanitizer + UndefinedBehaviorSanitizer and runs a
subset of the parity, bad-input, predict, stream and fuzzing suites on it in a subprocess: any
out-of-bounds access or undefined behaviour in a kernel aborts that run and fails this test.
(Peak-memory tests are left out: the sanitizers' shadow memory and quarantine skew them.)"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def runtime_library(name):
    try:
        path = subprocess.run(["g++", f"-print-file-name={name}"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return path if os.path.isabs(path) and os.path.exists(path) else None


def test_parity_subset_is_clean_under_asan_and_ubsan(tmp_path):
    asan, ubsan = runtime_library("libasan.so"), runtime_library("libubsan.so")
    cmake = shutil.which("cmake")
    if not (asan and ubsan and cmake and (ROOT / "CMakeLists.txt").exists()):
        pytest.skip("needs g++ with libasan/libubsan, cmake and the source tree")
    import pybind11

    build = tmp_path / "build"
    configure = [cmake, "-S", str(ROOT), "-B", str(build), "-DFASTGRU_SANITIZE=ON",
                 "-DCMAKE_BUILD_TYPE=RelWithDebInfo", f"-DPython_EXECUTABLE={sys.executable}",
                 f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    subprocess.run(configure, check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build), "-j", "2"], check=True, capture_output=True)

    package = tmp_path / "site" / "fastgru"
    shutil.copytree(ROOT / "python" / "fastgru", package,
                    ignore=shutil.ignore_patterns("_core*.so", "__pycache__"))
    (built,) = build.glob("_core*.so")
    shutil.copy(built, package / built.name)

    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(package.parent),
        LD_PRELOAD=f"{asan}:{ubsan}",
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",  # CPython itself is not leak-clean
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
    )
    # The run must use the sanitized build, not an installed fastgru: check what it imports.
    where = subprocess.run([sys.executable, "-c", "import fastgru._core as c; print(c.__file__)"],
                           env=env, capture_output=True, text=True, cwd=tmp_path)
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.strip() == str(package / built.name)

    selection = [
        str(ROOT / "tests" / "test_kernels.py") + "::test_forward_and_backward_match_reference",
        str(ROOT / "tests" / "test_kernels.py") + "::test_thread_count_does_not_change_results",
        str(ROOT / "tests" / "test_kernels.py")
        + "::test_batch_one_latency_path_matches_the_batched_kernel_and_reference",
        str(ROOT / "tests" / "test_bad_input.py"),
        # the C++ inference model behind predict and stream (cpp/inference.cpp, bindings)
        str(ROOT / "tests" / "test_predict_path.py"),
        str(ROOT / "tests" / "test_streaming.py"),
        str(ROOT / "tests" / "test_inference_properties.py"),
        # property tests that feed the kernels and streams any array a caller might pass
        # (odd dtypes and ranks, NaN, misaligned and strided layouts), and the thread and
        # alignment guards
        str(ROOT / "tests" / "test_fuzz.py") + "::test_kernels_match_the_reference_for_any_layout",
        str(ROOT / "tests" / "test_fuzz.py") + "::test_kernels_refuse_what_they_cannot_run",
        str(ROOT / "tests" / "test_fuzz.py") + "::test_predict_refuses_or_agrees_with_the_layers",
        str(ROOT / "tests" / "test_fuzz.py")
        + "::test_a_stream_refuses_bad_readings_and_keeps_its_state",
        str(ROOT / "tests" / "test_fuzz.py") + "::test_a_stream_steps_to_what_predict_gives",
        str(ROOT / "tests" / "test_safety.py"),
        # the per-gate masked kernels of GRU(recurrent_dropout>0) (cpp/gru_masked.cpp)
        str(ROOT / "tests" / "test_recurrent_dropout.py")
        + "::test_masked_kernels_match_the_masked_reference",
        str(ROOT / "tests" / "test_recurrent_dropout.py")
        + "::test_masked_kernels_check_their_arrays",
        # predicts from several threads on one model: a call may run on scratch of its own
        str(ROOT / "tests" / "test_concurrency.py")
        + "::test_concurrent_predicts_on_one_model_each_get_their_own_answer",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
         "--rootdir", str(tmp_path), "-k", "not scratch_beyond and not cli_refuses", *selection],
        env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "passed" in result.stdout
