"""Imports point one way: cli/api → analysis → {compiler, stdlib_ops} → runtime → errors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "treadle"

#: for each layer, the treadle packages it must never import (directly or inside a function)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "runtime": ("treadle.compiler", "treadle.stdlib_ops", "treadle.analysis", "treadle.cli",
                "treadle.api"),
    "grammar": ("treadle.compiler", "treadle.stdlib_ops", "treadle.analysis", "treadle.cli",
                "treadle.runtime", "treadle.api"),
    "stdlib_ops": ("treadle.compiler", "treadle.analysis", "treadle.cli", "treadle.api"),
    "compiler": ("treadle.analysis", "treadle.cli", "treadle.api"),
    "analysis": ("treadle.cli",),
}  # fmt: skip


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer: str) -> None:
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"no modules found under treadle/{layer}"
    bad = [
        f"{f.relative_to(ROOT.parent)}:{line}: imports {name}"
        for f in files
        for line, name in _imports(f)
        if any(name == p or name.startswith(p + ".") for p in FORBIDDEN[layer])
    ]
    assert not bad, "imports pointing up the layers:\n" + "\n".join(bad)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from treadle.compiler import compile_source\n")
    assert _imports(bad) == [(2, "treadle.compiler")]
