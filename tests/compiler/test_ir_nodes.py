"""The compiler makes IR nodes without validation (`treadle.compiler.ir_nodes`): they must equal
what validation makes, field types included, and a check must not build the IR's schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from treadle.compiler import compile_file, compile_source
from treadle.compiler.ir_nodes import ir_node
from treadle.runtime import ir

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.flow"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from compile_speed import flow  # noqa: E402


def assert_as_validated(program: ir.Program) -> None:
    data = program.model_dump(mode="python")
    validated = ir.Program.model_validate(data)
    assert validated == program
    # == tells a tuple from a list but not 5 from 5.0; the JSON does
    assert validated.model_dump_json() == program.model_dump_json()
    assert validated.content_hash() == program.content_hash()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_example_programs_equal_their_validated_copies(path: Path) -> None:
    assert_as_validated(compile_file(path))


def test_a_large_program_equals_its_validated_copy() -> None:
    text = flow(40).replace(
        "with temperature 0.7", "with temperature 0.7, timeout 5, retries 2, samples 2"
    )
    assert_as_validated(compile_source(text))


def test_mutable_defaults_are_not_shared() -> None:
    a = ir_node(ir.Step, id="a", name="a", op="vote")
    b = ir_node(ir.Step, id="b", name="b", op="vote")
    assert a.args == {} and a.args is not b.args
    assert a == ir.Step(id="a", name="a", op="vote")


def test_check_builds_no_ir_schema() -> None:
    files = [str(p) for p in EXAMPLES]
    code = (
        "import sys; from treadle.compiler import check_file; "
        f"[check_file(f) for f in {files!r}]; from treadle.runtime import ir; "
        "print(sum(m.__pydantic_complete__ for m in (ir.Step, ir.Graph, ir.Workflow, ir.Ref)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"
