"""`treadle check`, `treadle compile` and `treadle fmt`.

These stay fast: they import the compiler (lark, pydantic, the IR) and the operator registry,
never the model backends or the sandbox. Exit codes: 0 ok (warnings allowed), 1 errors in a
file, 2 a usage error (no such file, bad option). No traceback reaches the user for bad input;
a bug in treadle prints one paragraph (TREADLE_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_USAGE = 2


class Format(StrEnum):
    text = "text"
    json = "json"


class Emit(StrEnum):
    json = "json"
    mermaid = "mermaid"
    dot = "dot"


def register(app: typer.Typer) -> None:
    """Add `check`, `compile` and `fmt` to the `treadle` app."""
    app.command("check")(check)
    app.command("compile")(compile_)
    app.command("fmt")(fmt)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _usage(f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as e:
        _usage(f"{path}: cannot read it ({e})")


def _usage(message: str) -> NoReturn:
    typer.echo(f"treadle: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _bug(e: BaseException) -> NoReturn:
    if os.environ.get("TREADLE_DEBUG"):
        raise e
    typer.echo(
        f"treadle: internal error ({type(e).__name__}: {e}). This is a bug in treadle; "
        "run with TREADLE_DEBUG=1 for the traceback and report it.",
        err=True,
    )
    raise typer.Exit(EXIT_ERRORS)


def check(
    files: Annotated[list[Path], typer.Argument(help=".flow files to check")],
    format: Annotated[
        Format, typer.Option("--format", help="text for people, json for programs")
    ] = Format.text,
) -> None:
    """Check .flow files and print every diagnostic; exit 1 if any file has errors."""
    from treadle.compiler import check_file
    from treadle.compiler.diagnostics import Diagnostic, render_all, summary

    everything: list[Diagnostic] = []
    for f in files:
        _read(f)
        try:
            diags = check_file(f)
        except Exception as e:  # a bug, not bad input: one paragraph, no traceback
            _bug(e)
        everything.extend(diags)
        if format == Format.text and diags:
            typer.echo(render_all(diags) + "\n", err=False)
    failed = any(d.is_error for d in everything)
    if format == Format.json:
        import json

        typer.echo(json.dumps([d.model_dump(mode="json") for d in everything], indent=2))
    else:
        status = "failed" if failed else "ok"
        n = len(files)
        typer.echo(f"{status}: {n} file{'s' * (n != 1)}, {summary(everything)}", err=failed)
    raise typer.Exit(EXIT_ERRORS if failed else EXIT_OK)


def compile_(
    file: Annotated[Path, typer.Argument(help="the .flow file to compile")],
    emit: Annotated[
        Emit, typer.Option("--emit", help="json (Graph IR), mermaid or dot (drawings)")
    ] = Emit.json,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here instead of stdout")
    ] = None,
) -> None:
    """Compile a .flow file to Graph IR JSON, or draw its graph as Mermaid or dot."""
    from treadle.compiler import compile_file
    from treadle.compiler.diagnostics import render_all
    from treadle.errors import CompileError

    _read(file)
    try:
        program = compile_file(file)
    except CompileError as e:
        diags = [d for d in e.diagnostics if getattr(d, "is_error", True)]
        typer.echo(render_all(diags), err=True)  # type: ignore[arg-type]
        typer.echo(f"failed: {file} has errors", err=True)
        raise typer.Exit(EXIT_ERRORS) from None
    except Exception as e:
        _bug(e)
    if emit == Emit.json:
        text = program.model_dump_json(indent=2) + "\n"
    elif emit == Emit.mermaid:
        from treadle.compiler.render_graph import to_mermaid

        text = to_mermaid(program)
    else:
        from treadle.compiler.render_graph import to_dot

        text = to_dot(program)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def fmt(
    files: Annotated[list[Path], typer.Argument(help=".flow files to format in place")],
    check_only: Annotated[
        bool, typer.Option("--check", help="change nothing; exit 1 if a file would change")
    ] = False,
) -> None:
    """Format .flow files canonically (in place), or with --check report those that differ."""
    from treadle.compiler.diagnostics import render_all
    from treadle.compiler.formatter import format_module
    from treadle.compiler.parser import parse

    status = EXIT_OK
    for f in files:
        text = _read(f)
        try:
            module, diags = parse(text, str(f))
        except Exception as e:
            _bug(e)
        errors = [d for d in diags if d.is_error]
        if errors:
            typer.echo(render_all(errors), err=True)
            typer.echo(f"{f}: not formatted (syntax errors)", err=True)
            status = EXIT_ERRORS
            continue
        out = format_module(module)
        if out == text:
            continue
        if check_only:
            typer.echo(f"would reformat {f}")
            status = EXIT_ERRORS
        else:
            f.write_text(out, encoding="utf-8")
            typer.echo(f"formatted {f}")
    raise typer.Exit(status)
