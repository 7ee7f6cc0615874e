"""`treadle import core FILE -o OUT.flow`: an AutoFlow CoRE program as a checked workflow.

Every malformed or unknown line is an error written `FILE:LINE: error: ...` (exit 1);
unreachable steps are reported as warnings the same way. A FILE that cannot be read exits 2.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from treadle.cli.common import exit_on_error, say
from treadle.cli.files import read_file, write_file
from treadle.errors import EXIT_FAILED


def register(app: typer.Typer) -> None:
    imp = typer.Typer(help="Import workflows written in other formats.", no_args_is_help=True)
    imp.command("core")(exit_on_error(core))
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

    text = read_file(file)
    name = workflow or re.sub(r"[^a-z0-9_]+", "_", file.stem.lower()).strip("_") or "core_flow"
    if name[0].isdigit():
        name = "core_" + name
    try:
        result = import_core(text, file=str(file), workflow=name, loop_bound=loop_bound)
    except CoreImportError as e:  # every bad line, `FILE:LINE: error: ...`: the answer is no
        say(str(e))
        raise typer.Exit(EXIT_FAILED) from None
    for w in result.warnings:
        say(w.render(str(file)))
    if output is None:
        sys.stdout.write(result.flow)
    else:
        write_file(output, result.flow)
        say(f"wrote {output} ({result.steps} steps)")
