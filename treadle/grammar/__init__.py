"""The grammar of `.flow` files, as text: the parser and constrained decoders both load it."""

from __future__ import annotations

import functools
from pathlib import Path

GRAMMAR_PATH = Path(__file__).with_name("flow.lark")


@functools.cache
def grammar_text() -> str:
    """The Lark grammar (also valid for llguidance's `grammar_from("lark", ...)`)."""
    return GRAMMAR_PATH.read_text(encoding="utf-8")
