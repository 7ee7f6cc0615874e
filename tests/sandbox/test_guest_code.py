"""The guest code ships as package data and is found through importlib.resources, in the
source tree and in a built wheel."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from treadle.runtime.sandbox import guest_code

ROOT = Path(__file__).resolve().parents[2]
GUEST_FILES = ("agent.py", "harness.py")


def test_guest_files_are_found_through_importlib_resources() -> None:
    folder = resources.files("treadle.runtime.sandbox") / guest_code.GUEST
    for name in GUEST_FILES:
        text = (folder / name).read_text(encoding="utf-8")
        assert text == guest_code.guest_source(name)
        ast.parse(text)  # whole, valid Python
    assert guest_code.AGENT_SOURCE.startswith('"""The in-container agent')
    assert "def main()" in guest_code.HARNESS_SOURCE


def test_marker_and_command_are_read_from_the_guest() -> None:
    assert guest_code.MARKER == "\x1etreadle-result "
    assert guest_code.HARNESS_COMMAND == ["python3", "-I", "-S", "-X", "utf8", "harness.py"]
    with pytest.raises(LookupError):
        guest_code.guest_constant("harness.py", "NO_SUCH_CONSTANT")


def test_guest_code_imports_nothing_of_treadle() -> None:
    for name in GUEST_FILES:
        for node in ast.walk(ast.parse(guest_code.guest_source(name))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.startswith("treadle") for n in names), (name, names)


def test_the_wheel_ships_the_guest_files(tmp_path: Path) -> None:
    """The package-data pattern matches the guest files: a wheel built from a copy of this
    tree (setuptools writes build/ and egg-info beside the sources) holds them."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "treadle", src / "treadle", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(src)],
        check=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("treadle-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in GUEST_FILES:
        assert f"treadle/runtime/sandbox/guest/{name}" in names, sorted(names)
