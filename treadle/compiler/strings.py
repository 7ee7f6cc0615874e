"""Warnings about string literals whose text is not what it looks like.

A template reads `{name}` and `{name.field}`; every other `{` is literal text, and `{{` / `}}`
are escapes for one brace. Both rules are silent, so two mistakes compile to a prompt nobody
meant:

- W803: `{parts.0}` or `{n + 1}` looks like an interpolation but stays literal text (a template
  reads what an expression's name reads: a name and its fields, no items by position and no
  arithmetic);
- W804: an escape changes the meaning of JSON-looking text: `{"a": {"b": 1}}` keeps its
  literal `{`s but `}}` becomes one `}`, so the braces no longer pair up.

The checks read each literal's source text (its span in the file), since decoding has already
turned `{{` into `{`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import Any

from treadle.compiler import ast as A
from treadle.compiler.diagnostics import Diagnostic, make
from treadle.compiler.parsing.transformer import INTERP
from treadle.runtime.ir import SourceSpan

#: a `{...}` that a reader takes for an interpolation: a name, then fields, positions or an
#: operator with an operand (what `INTERP` does not match of it is literal text)
_LOOKS_READ = re.compile(
    r"\{[ \t]*[A-Za-z_]\w*(?:\.\w+|\[\w+\])*"
    r"(?:[ \t]*(?:[-+*/<>]|==|!=|<=|>=)[ \t]*[\w.]+)*[ \t]*\}"
)
_JSON_LOOKING = re.compile(r'[{,]\s*"[^"]*"\s*:')


def check_strings(module: A.Node, text: str, file: str | None) -> list[Diagnostic]:
    """W803 and W804 for every string literal of a parsed file."""
    starts = _line_starts(text)
    diags: list[Diagnostic] = []
    for s in _strings(module):
        begin, end = (
            _offset(starts, s.span.line, s.span.column),
            _offset(starts, s.span.end_line, s.span.end_column),
        )
        raw = text[begin:end]
        quote = 3 if raw.startswith('"""') else 1
        body = raw[quote:-quote] if len(raw) >= 2 * quote else ""
        at = begin + quote
        diags += _literal_reads(body, at, starts, file)
        diags += _lost_braces(s, body, file)
    return diags


def _literal_reads(body: str, at: int, starts: list[int], file: str | None) -> Iterator[Diagnostic]:
    i = 0
    while (m := _LOOKS_READ.search(body, i)) is not None:
        i = m.end()
        if _escaped(body, m.start()) or INTERP.fullmatch(m.group()):
            continue
        shown = m.group()
        span = _span(starts, at + m.start(), at + m.end())
        yield make(
            "W803",
            f"`{shown}` stays literal text: a template reads a name and its fields "
            "(`{name.field}`), not items by position or expressions",
            span,
            hint=f"write `{{{shown}}}` if the braces are meant; a template reads what "
            "`NAME.FIELD` reads in an expression",
            file=file,
        )


def _lost_braces(s: A.Str, body: str, file: str | None) -> Iterator[Diagnostic]:
    if "{{" not in body and "}}" not in body:
        return
    decoded = "".join(p for p in s.parts if isinstance(p, str))
    reads = sum(1 for p in s.parts if not isinstance(p, str))
    raw_pairs = body.count("{") - reads == body.count("}") - reads
    if raw_pairs and decoded.count("{") != decoded.count("}") and _JSON_LOOKING.search(decoded):
        yield make(
            "W804",
            "`{{` and `}}` are escapes for one brace, while a `{` that starts no `{name}` is "
            f"literal: this string's braces no longer pair up (it reads `{_short(s.as_text())}`)",
            s.span,
            hint="escape every brace of the JSON (`{{`, `}}`) or none of them",
            file=file,
        )


def _escaped(body: str, i: int) -> bool:
    """Whether the `{` at `i` is the second brace of a `{{` escape."""
    j = i
    while j > 0 and body[j - 1] == "{":
        j -= 1
    return (i - j) % 2 == 1


def _strings(node: Any) -> Iterator[A.Str]:
    if isinstance(node, A.Str):
        yield node
    elif isinstance(node, A.Node):
        for name in type(node).model_fields:
            yield from _strings(getattr(node, name, None))
    elif isinstance(node, tuple | list):
        for item in node:
            yield from _strings(item)


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(m.end() for m in re.finditer(r"\n", text))
    return starts


def _offset(starts: list[int], line: int, column: int) -> int:
    return starts[max(0, min(line, len(starts)) - 1)] + column - 1


def _span(starts: list[int], begin: int, end: int) -> SourceSpan:
    def position(offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(starts, offset)
        return line, offset - starts[line - 1] + 1

    (line, column), (end_line, end_column) = position(begin), position(end)
    return SourceSpan(line=line, column=column, end_line=end_line, end_column=end_column)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."
