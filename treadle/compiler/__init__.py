"""The compiler: `.flow` text → checked Graph IR (`treadle.runtime.ir.Program`).

    compile_file(path) -> Program            raises CompileError with every diagnostic
    compile_source(text, filename) -> Program
    check_source(text, filename) -> list[Diagnostic]   errors and warnings, never raises
    check_file(path) -> list[Diagnostic]

Operators come from the registry unless `operators=` gives a mapping of name → Operator
(tests register small ones); a fresh process reads their signatures from a cached table
(`op_table`) instead of importing every operator. Imports stay light: lark, pydantic and the
IR, no runtime.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treadle.compiler.diagnostics import CODES, Diagnostic, render_all, summary
from treadle.compiler.driver import CompiledFile, Compiler
from treadle.compiler.ir_nodes import ir_node
from treadle.compiler.parsing import parse
from treadle.errors import CompileError
from treadle.runtime.ir import Program

__all__ = [
    "CODES",
    "CompileError",
    "Diagnostic",
    "check_file",
    "check_source",
    "compile_file",
    "compile_source",
    "parse",
]


def _operators(operators: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if operators is not None:
        return operators
    from treadle.compiler import op_table

    return op_table.operators()


def _compile(
    text: str,
    filename: str | None,
    path: Path | None,
    operators: Mapping[str, Any] | None,
    base_dir: Path | None,
) -> CompiledFile:
    root = base_dir or (path.parent if path is not None else Path.cwd())
    # the compiler allocates tens of thousands of small acyclic objects per file; the cyclic
    # garbage collector's passes over them cost a third of the time of a large file
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return Compiler(_operators(operators), root).compile(text, filename, path)
    finally:
        if paused:
            gc.enable()


def _program(result: CompiledFile, text: str) -> Program:
    errors = [d for d in result.all_diags if d.is_error]
    if errors:
        name = result.file or "<input>"
        diags: list[object] = [*result.all_diags]
        raise CompileError(f"{name}: {summary(result.all_diags)}\n\n{render_all(errors)}", diags)
    entry = result.entry
    assert entry is not None  # E105 otherwise
    return ir_node(Program, entry=entry, workflows=result.workflows, source=text)


def check_source(
    text: str,
    filename: str | None = None,
    *,
    operators: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> list[Diagnostic]:
    """Every diagnostic of a source text (and the errors of the files it uses)."""
    return _compile(text, filename, None, operators, base_dir).all_diags


def check_file(path: str | Path, *, operators: Mapping[str, Any] | None = None) -> list[Diagnostic]:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    return _compile(text, str(path), p.resolve(), operators, None).all_diags


def compile_source(
    text: str,
    filename: str | None = None,
    *,
    operators: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> Program:
    """The Program of a source text; raises CompileError listing every diagnostic."""
    return _program(_compile(text, filename, None, operators, base_dir), text)


def compile_file(path: str | Path, *, operators: Mapping[str, Any] | None = None) -> Program:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    return _program(_compile(text, str(path), p.resolve(), operators, None), text)
