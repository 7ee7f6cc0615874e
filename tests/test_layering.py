"""Imports point one way, lowest layer first:

    errors → grammar → runtime → stdlib_ops → compiler → flow → eval → {studies, generation}
    → optimization → train → cli / api

(`optimization` composes studies and generation: the search loop; `train` may use `generation`'s
prompts: an SFT pair is a generation prompt and its flow.)
A layer imports only the ones below it, in module bodies and inside functions alike; every
module under `treadle/` belongs to exactly one layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "treadle"

#: each layer and the treadle modules it may import (its own included)
ALLOWED: dict[str, tuple[str, ...]] = {
    "version": ("version",),
    "errors": ("errors",),
    "grammar": ("errors", "grammar"),
    "runtime": ("errors", "grammar", "runtime"),
    "stdlib_ops": ("errors", "grammar", "runtime", "stdlib_ops"),
    "compiler": ("errors", "grammar", "runtime", "stdlib_ops", "compiler"),
    "flow": ("errors", "grammar", "runtime", "stdlib_ops", "compiler", "flow"),
    "eval": ("errors", "grammar", "runtime", "stdlib_ops", "compiler", "flow", "eval"),
    "studies": ("errors", "grammar", "runtime", "stdlib_ops", "compiler", "flow", "eval",
                "studies"),
    "generation": ("errors", "grammar", "runtime", "stdlib_ops", "compiler", "flow", "eval",
                   "generation"),
    "optimization": ("errors", "grammar", "runtime", "stdlib_ops", "compiler", "flow", "eval",
                 "studies", "generation", "optimization"),
    "train": ("errors", "grammar", "runtime", "stdlib_ops", "compiler", "flow", "eval",
              "studies", "generation", "optimization", "train"),
    # reads what evaluations, studies and traces wrote, to show it
    "view": ("errors", "grammar", "runtime", "stdlib_ops", "compiler", "flow", "eval", "studies",
             "view"),
    # the editor's server: the compiler's checks and generation's scope and vocabulary
    "lsp": ("errors", "grammar", "runtime", "stdlib_ops", "compiler", "flow", "eval",
            "generation", "lsp"),
    # the public faces: they gather names from every layer
    "rewards": ("train",),
    "api": ("flow", "runtime", "eval", "studies", "generation", "optimization", "train"),
    "__init__": ("flow", "runtime", "eval", "studies", "generation", "optimization", "train",
                 "rewards"),
    "cli": ("errors", "grammar", "runtime", "stdlib_ops", "compiler", "flow", "eval", "studies",
            "generation", "optimization", "train", "cli", "api", "rewards", "lsp", "view"),
}  # fmt: skip


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def _layer(path: Path, root: Path) -> str:
    first = path.relative_to(root).parts[0]
    return first.removesuffix(".py")


def violations(root: Path) -> list[str]:
    """Every import under `root` (a `treadle/` tree) that reaches a layer it may not."""
    bad = []
    for f in sorted(root.rglob("*.py")):
        layer = _layer(f, root)
        allowed = ALLOWED.get(layer)
        if allowed is None:
            bad.append(f"{f.relative_to(root.parent)}: belongs to no layer (add it to ALLOWED)")
            continue
        for line, name in _imports(f):
            if name.startswith("."):
                bad.append(f"{f.relative_to(root.parent)}:{line}: relative import {name}")
                continue
            if name != "treadle" and not name.startswith("treadle."):
                continue
            target = name.split(".")[1] if "." in name else "__init__"
            if target not in allowed and target != "version":
                bad.append(f"{f.relative_to(root.parent)}:{line}: {layer} imports {name}")
    return bad


def test_imports_point_down() -> None:
    bad = violations(ROOT)
    assert not bad, "imports pointing up the layers:\n" + "\n".join(bad)


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in ROOT.glob("*.py")}
    assert packages | modules <= set(ALLOWED)
    assert {"eval", "studies", "train", "generation", "flow"} <= packages | modules


@pytest.mark.parametrize(
    ("where", "line"),
    [
        ("eval/planted.py", "from treadle.cli import main\n"),
        ("eval/planted.py", "def f():\n    from treadle.api import Flow\n"),
        ("runtime/deep/planted.py", "def f():\n    import treadle.compiler.parsing\n"),
        ("generation/planted.py", "from treadle.train.rewards import FlowReward\n"),
        ("studies/planted.py", "from treadle.generation import generate\n"),
        ("compiler/planted.py", "async def f():\n    from treadle.flow import Flow\n"),
        ("stdlib_ops/planted.py", "from treadle.compiler import compile_source\n"),
        ("newpkg/planted.py", "x = 1\n"),
    ],
)
def test_a_planted_upward_import_is_caught(tmp_path: Path, where: str, line: str) -> None:
    tree = tmp_path / "treadle"
    target = tree / where
    target.parent.mkdir(parents=True)
    target.write_text(line)
    assert len(violations(tree)) == 1


def test_no_package_shadows_a_public_function() -> None:
    """`treadle/generate/` would replace the function `treadle.generate` once imported."""
    import importlib
    import pkgutil

    import treadle

    for info in pkgutil.walk_packages(treadle.__path__, "treadle."):
        if info.ispkg:
            importlib.import_module(info.name)
    for name in ("evaluate", "evaluate_sync", "attribute", "rank", "generate"):
        assert callable(getattr(treadle, name)) and not isinstance(
            getattr(treadle, name), type(treadle)
        ), name
