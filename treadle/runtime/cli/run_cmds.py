"""Placeholder: filled in by the part of treadle that owns these commands."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `treadle` app."""
