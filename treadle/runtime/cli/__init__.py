"""The `treadle` command. Each group of commands lives in its own module and registers on `app`.

Start-up stays fast: command modules import heavy parts inside the command functions.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="treadle",
    help="A workflow language for LLM agents: check, compile, format and run .flow files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from treadle.runtime.cli import compile_cmds, ops_cmds, run_cmds, sandbox_cmds

    for module in (compile_cmds, run_cmds, sandbox_cmds, ops_cmds):
        module.register(app)


def main() -> None:
    _register_commands()
    app()
