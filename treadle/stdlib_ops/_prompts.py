"""Operator prompts live as text files beside the code, so they can be read and tuned alone."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def prompt(name: str) -> str:
    """The text of `prompts/<name>.txt`; fill it with `str.format`-style fields."""
    return (resources.files("treadle.stdlib_ops") / "prompts" / f"{name}.txt").read_text()
