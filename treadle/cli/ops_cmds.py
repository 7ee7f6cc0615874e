"""`treadle ops`: the operator reference from the registry, for people and for generators.

Imports only the registry and the docs renderer (no model, sandbox or schema library), so
listing operators is instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from treadle.cli.common import exit_on_error
from treadle.errors import InputError


def register(app: typer.Typer) -> None:
    """Add `treadle ops` to the app."""

    @app.command("ops")
    @exit_on_error
    def ops(
        names: Annotated[
            list[str] | None,
            typer.Argument(help="show only these operators (quote multi-word names: 'write code')"),
        ] = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help="text, json or markdown")] = "text",
    ) -> None:
        """List every operator's signature: subject, prepositions, options, value type."""
        from treadle.stdlib_ops import docs, registry

        if fmt not in docs.RENDERERS:
            raise InputError(
                f"--format: unknown format {fmt!r}; choose one of {', '.join(docs.RENDERERS)}."
            )
        if not names:
            typer.echo(docs.RENDERERS[fmt](), nl=False)
            return
        known = registry.operators()
        missing = [n for n in names if n not in known]
        if missing:
            import difflib

            hints = []
            for n in missing:
                close = difflib.get_close_matches(n, list(known), n=1)
                hints.append(f"{n!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise InputError(f"No such operator: {', '.join(hints)}. `treadle ops` lists them all.")
        typer.echo(docs.render_selected([known[n] for n in names], fmt), nl=False)
