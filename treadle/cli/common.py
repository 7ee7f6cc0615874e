"""What the commands share: exit codes, the options every analysis command takes (one
spelling, one help text), `NAME=VALUE` options, the progress default, and the one way an
analysis command turns treadle's errors into a paragraph and an exit code."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

EXIT_OK = 0
#: a bug in treadle (a traceback with TREADLE_DEBUG=1)
EXIT_BUG = 1
#: the input is wrong: a file that does not compile, bad inputs, a bad dataset; nothing ran
EXIT_INPUT = 2
#: the run failed or was stopped (a step raised or timed out, a model or the sandbox failed)
EXIT_RUNTIME = 3
EXIT_INTERRUPTED = 130

T = TypeVar("T")

# ---------------------------------------------------------------- options of eval, attribute, rank

Scorers = Annotated[
    list[str] | None,
    typer.Option(
        "--scorer",
        "-s",
        help="exact, numeric, f1, contains, regex, math, json_schema, pass, judge, "
        "module:function or a .flow scorer (repeatable; the first is primary)",
    ),
]
Target = Annotated[
    str | None, typer.Option("--target", help="the target column (default target/answer)")
]
InputMap = Annotated[
    list[str] | None,
    typer.Option("--map", "--input-map", help="INPUT=COLUMN: feed a workflow input from a column"),
]
Model = Annotated[
    str | None, typer.Option("--model", "-m", help="model spec (default: embedded SmolLM2)")
]
Concurrency = Annotated[
    int | None, typer.Option("--concurrency", "-j", help="rows running at once")
]
NoCache = Annotated[
    bool, typer.Option("--no-cache", help="bypass the model cache (no reads, no writes)")
]
Limit = Annotated[int | None, typer.Option("--limit", help="at most N rows")]
Rows = Annotated[str | None, typer.Option("--rows", help="rows A-B (1-based, inclusive)")]
Sandbox = Annotated[
    str, typer.Option("--sandbox", help="docker (default) or process (NOT isolated)")
]
Isolation = Annotated[
    str,
    typer.Option(
        "--isolation",
        help="docker sandbox: reset (a container reused after a verified reset, default) "
        "or fresh (a new container for every run)",
    ),
]


def parse_map(items: list[str] | None, what: str) -> dict[str, str] | None:
    """`NAME=VALUE` pairs (`--input-map`, `--map`) as a dict."""
    if not items:
        return None
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=what)
        out[name.strip()] = value
    return out


def default_display() -> str:
    """A progress bar for a person at a terminal, nothing in a pipe or a CI log."""
    return "rich" if sys.stderr.isatty() else "none"


def progress_log(display: str) -> Callable[[str], None]:
    """Where an analysis command says what it is doing: stderr, unless progress is off."""

    def log(msg: str) -> None:
        if display != "none":
            typer.echo(msg, err=True)

    return log


def run_or_exit(work: Coroutine[Any, Any, T]) -> T:
    """Run an analysis command's coroutine; its input errors exit 2 and its run errors exit 3,
    each as one paragraph on stderr (TREADLE_DEBUG=1 shows the traceback of a run error)."""
    from treadle.errors import InputError, TreadleError

    try:
        return asyncio.run(work)
    except InputError as e:
        typer.echo(e.message, err=True)
        raise typer.Exit(EXIT_INPUT) from None
    except TreadleError as e:
        if os.environ.get("TREADLE_DEBUG"):
            raise
        typer.echo(e.message, err=True)
        raise typer.Exit(EXIT_RUNTIME) from None
