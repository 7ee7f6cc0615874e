"""The `treadle` command. Each group of commands lives in its own `*_cmds` module of this package
and registers on `app` through its `register(app)`; a new module is picked up without editing this
file.

Start-up stays fast: command modules import heavy parts inside the command functions, and a
plain `treadle check|compile|fmt FILE...` runs without importing typer at all
(`compile_cmds.fast_path`), with the garbage collector paused and no interpreter teardown;
help, usage errors and every other command go through typer.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import typer

_app: typer.Typer | None = None


def _make_app() -> typer.Typer:
    import importlib
    import pkgutil

    import typer

    import treadle.cli as package

    app = typer.Typer(
        name="treadle",
        help="A workflow language for LLM agents: check, compile, format and run .flow files.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    names = sorted(i.name for i in pkgutil.iter_modules(package.__path__))
    for name in names:
        if name.endswith("_cmds"):
            importlib.import_module(f"treadle.cli.{name}").register(app)
    return app


def __getattr__(name: str) -> Any:
    """`app`, the typer app with every command, built on first use."""
    global _app
    if name == "app":
        if _app is None:
            _app = _make_app()
        return _app
    raise AttributeError(name)


def main() -> None:
    from treadle.cli.compile_cmds import fast_path

    # a check allocates its imports' objects and the trees of its files, all alive until it
    # exits: collecting cycles among them finds nothing and costs a twentieth of its time
    gc.disable()
    try:
        code = fast_path(sys.argv[1:])
    finally:
        gc.enable()
    if code is not None:
        _hard_exit(code)
    __getattr__("app")()


def _hard_exit(code: int) -> NoReturn:
    """End a finished check, compile or fmt without tearing the interpreter down: freeing every
    module and object costs a tenth of a `treadle check`, and none of it is needed (the output
    is printed, every file written is closed, and the functions registered with `atexit` still
    run). mypy ends the same way (`mypy.util.hard_exit`)."""
    atexit._run_exitfuncs()  # what was registered to run at exit still runs (logging's flush)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach the reader
            code = code or 1
    os._exit(code)
