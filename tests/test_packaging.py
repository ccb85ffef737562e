"""What a wheel ships beside the code: the type stub of the compiled module, py.typed, LICENSE."""
from __future__ import annotations

import ast
import importlib.metadata
import pathlib

import pytest

import fastgru
from fastgru import _core

PACKAGE = pathlib.Path(fastgru.__file__).parent


def _stub_names():
    tree = ast.parse((PACKAGE / "_core.pyi").read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)
                                and not n.name.startswith("__")}
        elif isinstance(node, ast.FunctionDef):
            names[node.name] = None
    return names


def test_the_stub_names_what_the_compiled_module_has():
    stub = _stub_names()
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert set(stub) == public
    for name, members in stub.items():
        if members is None:
            continue
        real = {n for n in dir(getattr(_core, name)) if not n.startswith("_")}
        assert members == real, name


def test_the_package_says_it_is_typed():
    assert (PACKAGE / "py.typed").is_file()


def test_an_installed_distribution_carries_its_license():
    try:
        dist = importlib.metadata.distribution("fastgru")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastgru runs from the source tree here, not from an installed wheel")
    files = [str(f) for f in dist.files or []]
    assert any(f.endswith("LICENSE") for f in files), files
    license = (dist.metadata.get("License-Expression") or "") + (dist.metadata.get("License") or "")
    assert "MIT" in license
