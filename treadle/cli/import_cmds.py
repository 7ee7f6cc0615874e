"""`treadle import core FILE -o OUT.flow`: an AutoFlow CoRE program as a checked workflow.

Every malformed or unknown line is an error written `FILE:LINE: error: ...` (exit 1);
unreachable steps are reported as warnings the same way.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    imp = typer.Typer(help="Import workflows written in other formats.", no_args_is_help=True)
    imp.command("core")(core)
    app.add_typer(imp, name="import")


def core(
    file: Annotated[
        Path, typer.Argument(help="a CoRE program (Step:::type:::instruction:::branches)")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the .flow here (default: stdout)")
    ] = None,
    loop_bound: Annotated[
        int, typer.Option("--loop-bound", help="most turns of a loop made from a jump back")
    ] = 3,
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="the workflow's name (default: from FILE)")
    ] = None,
) -> None:
    """Translate a CoRE program into a .flow workflow."""
    from treadle.compiler.importers.core import CoreImportError, import_core

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        typer.echo(f"{file}: cannot read: {e.strerror}", err=True)
        raise typer.Exit(2) from None
    name = workflow or re.sub(r"[^a-z0-9_]+", "_", file.stem.lower()).strip("_") or "core_flow"
    if name[0].isdigit():
        name = "core_" + name
    try:
        result = import_core(text, file=str(file), workflow=name, loop_bound=loop_bound)
    except CoreImportError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    for w in result.warnings:
        typer.echo(w.render(str(file)), err=True)
    if output is None:
        sys.stdout.write(result.flow)
    else:
        output.write_text(result.flow, encoding="utf-8")
        typer.echo(f"wrote {output} ({result.steps} steps)", err=True)
