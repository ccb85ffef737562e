"""benchmarks/window_floor.py repeats the latency path's layout and chunking (common.h's
grouped_row_width, forward_latency_path's cut): it must agree with what the package packs."""
import importlib.util
from pathlib import Path

import pytest

from test_kernels import LATENCY_VECTORS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "window_floor.py"


def _window_floor():
    spec = importlib.util.spec_from_file_location("window_floor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("units, avx512_vectors, avx2_vectors", LATENCY_VECTORS)
def test_the_floor_script_plans_the_packed_layout(units, avx512_vectors, avx2_vectors):
    plan = _window_floor().plan
    for lanes, expected in ((16, avx512_vectors), (8, avx2_vectors)):
        chunks, vectors = plan(units, lanes)
        if expected:  # 0: the package runs the batched kernel there
            assert vectors == expected
        # every group in exactly one chunk of at most 4, the tail's vectors in the last
        full = vectors // 3
        assert sum(groups for groups, _, _ in chunks) == full
        assert all(groups <= 4 for groups, _, _ in chunks)
        assert [tail for _, tail, _ in chunks][:-1] == [0] * (len(chunks) - 1)
        assert chunks[-1][1] == vectors % 3
        assert [first for _, _, first in chunks] == [sum(g for g, _, _ in chunks[:i])
                                                     for i in range(len(chunks))]
