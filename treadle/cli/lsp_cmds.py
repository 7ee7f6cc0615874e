"""`treadle lsp`: the language server for `.flow` files, over stdin/stdout."""

from __future__ import annotations

import typer

from treadle.cli.common import exit_on_error
from treadle.errors import InputError


def register(app: typer.Typer) -> None:
    """Add `treadle lsp` to the app."""

    @app.command("lsp")
    @exit_on_error
    def lsp() -> None:
        """Serve the Language Server Protocol on stdin/stdout (diagnostics, hover, completion,
        definition, formatting, symbols); editors start it (docs/lsp.md)."""
        try:
            from treadle.lsp.server import main
        except ImportError as exc:
            raise InputError(
                f'`treadle lsp` needs pygls ({exc}); install it with `pip install -e ".[lsp]"`.'
            ) from exc
        main()
