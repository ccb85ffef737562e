"""docs/serving.md stays true: its Python blocks run, in order, in one namespace."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "serving.md"


def test_serving_guide_python_blocks_run(tmp_path, monkeypatch):
    for module in ("torch", "keras", "onnx", "onnxruntime"):
        pytest.importorskip(module)
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert len(blocks) >= 4, "the guide lost its examples"
    monkeypatch.chdir(tmp_path)  # the ONNX example writes a file
    namespace: dict = {"__name__": "serving_guide"}
    for k, block in enumerate(blocks):
        exec(compile(block, f"{GUIDE.name}[python block {k}]", "exec"), namespace)
