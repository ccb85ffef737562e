"""Fixtures shared by tests/ and benchmarks/ (pytest loads this file for both)."""
import pytest

import fastgru


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """Run at 1 and at 2 kernel threads, then restore the previous count."""
    previous = fastgru.get_num_threads()
    fastgru.set_num_threads(request.param)
    yield request.param
    fastgru.set_num_threads(previous)
