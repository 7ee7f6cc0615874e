"""Lark's own LALR parser for the grammar: the reference the fast path must equal, the source
of the fast path's tables, and the parser error recovery drives line by line."""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any

from lark import Lark

from treadle.compiler.build_cache import cache_dir, digest
from treadle.compiler.parsing.transformer import ToAst
from treadle.grammar import grammar_text


@functools.cache
def lark_parser() -> Lark:
    """The LALR parser, built once per process; its tables are cached in the user's own cache
    directory (`build_cache`), keyed by the grammar and Lark's version, never in /tmp."""
    import lark

    grammar = grammar_text()
    options: dict[str, Any] = {
        "parser": "lalr",
        "lexer": "contextual",
        "maybe_placeholders": True,
        "transformer": ToAst(),
    }
    folder = cache_dir()
    if folder is None:
        return Lark(grammar, **options)
    path = folder / f"lark-{digest(grammar, lark.__version__, 'lalr contextual placeholders')}"
    if path.exists():
        return Lark(grammar, cache=str(path), **options)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    parser = Lark(grammar, cache=str(tmp), **options)
    with contextlib.suppress(OSError):
        os.replace(tmp, path)  # whole or not at all, for the processes that read it
    return parser
