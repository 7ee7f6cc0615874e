"""What the commands share: the options every analysis command takes (one spelling, one help
text), `NAME=VALUE` options, the progress default, and the one way every command turns an error
into a paragraph on stderr and an exit code (`explain`, through `fail`).

The exit codes are `treadle.errors`'s `EXIT_*`: 0 done, 1 the answer is no (a checked file has
errors, no candidate compiled) or a bug in treadle, 2 the input is wrong (said before any work),
3 the work failed, 130 interrupted.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from treadle.errors import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    CompileError,
    InputError,
    TreadleError,
)

T = TypeVar("T")
P = ParamSpec("P")

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


def parse_pairs(items: Iterable[str] | None, option: str) -> dict[str, str]:
    """`NAME=VALUE` options (`--input`, `--map`, `--scorer-option`) as a dict, a later pair
    winning: the name stripped, the value as given (the command reads it further)."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"{option} takes NAME=VALUE, got {item!r}.")
        out[name] = value
    return out


def default_display() -> str:
    """A progress bar for a person at a terminal, nothing in a pipe or a CI log."""
    return "rich" if sys.stderr.isatty() else "none"


def progress_log(display: str) -> Callable[[str], None]:
    """Where an analysis command says what it is doing: stderr, unless progress is off."""

    def log(msg: str) -> None:
        if display != "none":
            say(msg)

    return log


def say(text: str) -> None:
    """A line for the person on stderr, flushed (progress, paths written, failures)."""
    sys.stderr.write(text.rstrip() + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- errors and exit codes


def explain(
    error: BaseException,
    *,
    trace: str | os.PathLike[str] | None = None,
    interrupted: str = "Interrupted.",
) -> tuple[int, str]:
    """The exit code of an error and the paragraph that tells the user about it: the one place
    that decides both, so an error exits the same way whichever command met it. `trace` (or
    the error's own `trace_path`) is named when the file is there; `interrupted` is what a
    Ctrl-C left behind."""
    path = getattr(error, "trace_path", None) or trace
    where = f" The trace so far is in {path}." if path and Path(path).exists() else ""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED, f"{_sentence(interrupted)}{where}"
    if isinstance(error, CompileError):  # its message holds every diagnostic, with excerpts
        return error.exit_code, error.message
    if isinstance(error, TreadleError):
        return error.exit_code, f"Error: {_sentence(error.message)}{where}"
    if isinstance(error, OSError):  # a file the command was given cannot be read or written
        what = f"{error.filename}: {error.strerror}" if error.filename else str(error)
        return EXIT_INPUT, f"Error: {_sentence(what)}"
    return EXIT_FAILED, (
        f"Internal error (a bug in treadle): {type(error).__name__}: {_sentence(str(error))}"
        f"{where} Run again with TREADLE_DEBUG=1 to see the traceback."
    )


def fail(
    error: BaseException,
    *,
    trace: str | os.PathLike[str] | None = None,
    interrupted: str = "Interrupted.",
) -> int:
    """Say `error` on stderr as `explain` words it; its exit code. With TREADLE_DEBUG=1 an error
    that is not the user's input is raised again, traceback and all."""
    code, message = explain(error, trace=trace, interrupted=interrupted)
    if os.environ.get("TREADLE_DEBUG") and code not in (EXIT_INPUT, EXIT_INTERRUPTED):
        raise error
    say(message)
    return code


def exit_on_error(command: Callable[P, None]) -> Callable[P, None]:
    """A typer command whose errors end in `fail`: one paragraph and its exit code, never a
    traceback. A `typer.Exit` the command raises (its own exit code) passes through."""

    @functools.wraps(command)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except (Exception, KeyboardInterrupt) as e:
            raise typer.Exit(finish(fail(e))) from None

    return guarded


def _sentence(text: str) -> str:
    """`text` ending as a sentence does, so what follows it reads as the next one."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


# ---------------------------------------------------------------- running a command's coroutine


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, except that a run that failed or was interrupted does not wait for
    worker threads: a cancelled model call may still be generating in one (llama.cpp cannot be
    stopped mid-call), and waiting would hold the process long after Ctrl-C (`finish` ends it)."""
    import asyncio

    runner = asyncio.Runner()
    done = False
    try:
        result = runner.run(work)
        done = True
        return result
    finally:
        if done or not _worker_threads():
            runner.close()
        else:
            _abandoned.set()


#: set when `run_async` left a failed run's worker threads behind
_abandoned = threading.Event()


def _worker_threads() -> list[threading.Thread]:
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]


def finish(code: int) -> int:
    """Exit now when the worker threads of a run `run_async` abandoned are still alive (the
    trace is written and the run's resources closed by then); otherwise return the code."""
    if _abandoned.is_set() and _worker_threads():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
