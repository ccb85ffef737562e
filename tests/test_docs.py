"""README.md and docs/*.md stay true: every Python block runs, in order, one namespace per file;
docs/ARCHITECTURE.md names every module.

docs/serving.md is run by tests/test_serving_guide.py (it needs PyTorch, Keras and ONNX and
pins torch to one thread); every other page is run here, including pages added later.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_ELSEWHERE = {"serving.md": "tests/test_serving_guide.py"}
# README's Use block trains the seed recipe (8,000 days, GRU(50), 10 epochs) three times
PAGES = [pytest.param(ROOT / "README.md", marks=pytest.mark.slow, id="README.md")] + [
    pytest.param(p, id=f"docs/{p.name}") for p in sorted((ROOT / "docs").glob("*.md"))
    if p.name not in RUN_ELSEWHERE]


def python_blocks(page: Path):
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)


def test_pages_run_elsewhere_have_their_test():
    for page, test in RUN_ELSEWHERE.items():
        if (ROOT / "docs" / page).exists():
            assert (ROOT / test).exists(), f"docs/{page} is run by {test}, which is gone"


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    blocks = python_blocks(page)
    if page.name in ("README.md", "forecasting.md"):
        assert blocks, f"{page.name} lost its examples"
    if any("matplotlib" in block for block in blocks):
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # examples may write files (a plot, a model)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for k, block in enumerate(blocks):
        exec(compile(block, f"{page.name}[python block {k}]", "exec"), namespace)


def test_architecture_names_every_module():
    # The map is only useful while it is whole: a new module gets its row in the same change.
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    files = [p for p in (ROOT / "python" / "fastgru").rglob("*.py")]
    files += [p for p in (ROOT / "cpp").iterdir() if p.is_file()]
    assert files
    missing = sorted({p.name for p in files
                      if not re.search(r"(?<![\w.])" + re.escape(p.name) + r"(?!\w)", text)})
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"
