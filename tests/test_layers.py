"""The package's layers import downwards only: models know nothing of the engine, the engine
(pixels) nothing of batches (files). Checked on every import statement, function-level
imports included, so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jpegfix"


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


@pytest.mark.parametrize("path", sorted((PACKAGE / "models").glob("*.py")), ids=lambda p: p.name)
def test_models_do_not_import_the_engine_or_batches(path):
    assert not {m for m in imported_modules(path) if m.startswith(("jpegfix.engine", "jpegfix.batch"))}


def test_engine_does_not_import_batches():
    assert not {m for m in imported_modules(PACKAGE / "engine.py") if m.startswith("jpegfix.batch")}
