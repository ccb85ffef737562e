"""docs/serving.md stays true: its Python blocks run, in order, in one namespace."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "serving.md"


def test_serving_guide_python_blocks_run(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    for module in ("keras", "onnx", "onnxruntime"):
        pytest.importorskip(module)
    # one torch thread: the training example takes ~1 s so, and ~40 s with threads spinning
    # against other work on a small shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run_blocks(tmp_path, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def _run_blocks(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert len(blocks) >= 4, "the guide lost its examples"
    monkeypatch.chdir(tmp_path)  # the ONNX example writes a file
    namespace: dict = {"__name__": "serving_guide"}
    for k, block in enumerate(blocks):
        exec(compile(block, f"{GUIDE.name}[python block {k}]", "exec"), namespace)
