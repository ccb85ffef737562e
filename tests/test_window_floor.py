"""benchmarks/window_floor.py repeats forward_latency_path's cut of a step into chunks: it must
agree with the kernel's, and find the gates in the compiled step."""
import importlib.util
import platform
import shutil
from pathlib import Path

import pytest

from test_kernels import LATENCY_VECTORS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "window_floor.py"


def _window_floor():
    spec = importlib.util.spec_from_file_location("window_floor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vectors(units, lanes):
    """PackedGRU.latency_vectors for GRU(units) on the path with `lanes` float lanes."""
    row = next(r for r in LATENCY_VECTORS if r[0] == units)
    return row[1] if lanes == 16 else row[2]


@pytest.mark.parametrize("units, avx512_vectors, avx2_vectors", LATENCY_VECTORS)
def test_the_floor_script_puts_every_group_in_one_chunk(units, avx512_vectors, avx2_vectors):
    window_floor = _window_floor()
    for vectors in (avx512_vectors, avx2_vectors):
        if vectors:  # 0: the package runs the batched kernel there
            chunks = window_floor.plan(vectors, 4)
            assert sum(groups for groups, _, _ in chunks) == vectors // 3


# (units, lanes) -> forward_latency_path's chunks (groups, tail vectors, first group): at most
# 4 groups each (both paths' FASTGRU_LATENCY_GROUPS), balanced, the first chunks one group
# larger, the tail in the last
CHUNKS = [
    (50, 16, [(3, 1, 0)]),
    (50, 8, [(3, 0, 0), (3, 1, 3)]),
    (5, 16, [(0, 1, 0)]),
    (70, 16, [(4, 2, 0)]),
    (129, 8, [(4, 0, 0), (4, 0, 4), (4, 0, 8), (4, 1, 12)]),
    (181, 8, [(4, 0, 0), (4, 0, 4), (4, 0, 8), (4, 0, 12), (4, 0, 16), (3, 0, 20)]),
]


@pytest.mark.parametrize("units, lanes, chunks", CHUNKS)
def test_the_floor_script_cuts_chunks_as_the_kernel(units, lanes, chunks):
    window_floor = _window_floor()
    for isa in ("avx512", "avx2"):
        assert window_floor.isa_defines(isa)["FASTGRU_LATENCY_GROUPS"] == "4"
    assert window_floor.plan(_vectors(units, lanes), 4) == chunks


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or not shutil.which("g++")
                    or not shutil.which("objdump"), reason="needs x86-64, g++ and objdump")
def test_the_floor_script_finds_the_gates_after_the_product(tmp_path):
    # GRU(50) on avx2: 19 vectors a row of U, two chunks. The gates' multiply-adds are a few
    # per unit; picking the wrong loop would count none, or the whole product (950).
    chunks, gates = _window_floor().count_step("avx2", _vectors(50, 8), tmp_path)
    assert len(chunks) == 2
    assert 100 < gates < 400
