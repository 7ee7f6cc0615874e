"""Text → syntax tree, reporting every syntax error of a file rather than the first.

Split as Lark's own parsers are, one job a module:

    transformer      rule callbacks → `treadle.compiler.ast` nodes
    lalr             Lark's LALR parser for the grammar (the reference)
    fast_tables      Lark's tables flattened for the fast path, cached across processes
    fast_lalr        the fast path: one LALR loop without Lark's per-token layers
    recovery         line-by-line reparse of a file with errors, through Lark's interactive parser
    messages         what a syntax error says
    _lark_internals  every read of Lark's internals, with the version they are tested against

A file that parses takes the fast path; when it fails, Lark parses (its errors are the
reference), and recovery finds the rest of them.
"""

from __future__ import annotations

from typing import cast

from lark.exceptions import UnexpectedInput

from treadle.compiler import ast as A
from treadle.compiler.comments import attach_comments
from treadle.compiler.diagnostics import Diagnostic
from treadle.compiler.parsing.fast_lalr import fast_parse
from treadle.compiler.parsing.lalr import lark_parser
from treadle.compiler.parsing.recovery import recover
from treadle.compiler.parsing.transformer import INVALID

__all__ = ["INVALID", "parse"]


def parse(text: str, file: str | None = None) -> tuple[A.Module, list[Diagnostic]]:
    """Parse a whole file: the tree (with stand-ins for bad lines) and its syntax errors."""
    source = text if text.endswith("\n") else text + "\n"
    diags: list[Diagnostic] = []
    fast = fast_parse(source)
    if fast is not None:
        module = fast
    else:
        try:
            module = cast(A.Module, lark_parser().parse(source))  # the transformer's value
        except UnexpectedInput as e:
            module, diags = recover(source, file, e)
    attach_comments(module, source)
    return module, diags
