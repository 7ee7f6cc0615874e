"""Lark rule callbacks → `treadle.compiler.ast` nodes, run inside the LALR parser (Lark's or
the fast path's), so a parse yields the syntax tree directly, never a Lark tree.

The fast path's cached tables name these callbacks (pickled by name), so the cache key includes
this module's source (`fast_tables`).
"""

from __future__ import annotations

import os
import re
from typing import Any

from lark import Token, Transformer

from treadle.compiler import ast as A
from treadle.runtime.ir import SourceSpan

#: the name a stand-in gives a line that did not parse; checks stay quiet about it
INVALID = "$invalid"

INTERP = re.compile(r"\{[ \t]*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*\}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def token_span(tok: Token) -> SourceSpan:
    return SourceSpan(tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)


def _join(a: SourceSpan, b: SourceSpan) -> SourceSpan:
    return SourceSpan(a.line, a.column, b.end_line, b.end_column)


def _toks(children: list[Any], *types: str) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type in types]


def _nodes(children: list[Any]) -> list[Any]:
    return [c for c in children if c is not None and not isinstance(c, Token)]


def parse_string(tok: Token) -> A.Str:
    """Decode escapes and split `{name.field}` interpolations out of a string literal (a
    triple-quoted one has its indentation removed first: `block_lines`)."""
    parts: list[str | A.Interp] = []
    buf: list[str] = []
    if tok.type == "BLOCK_STRING":
        for k, (text, line, column) in enumerate(block_lines(str(tok)[3:-3], tok)):
            if k:
                buf.append("\n")
            _scan(text, line, column, parts, buf)
        if buf:
            parts.append("".join(buf))
        return A.new(A.Str, parts=tuple(parts), block=True, span=token_span(tok))
    _scan(str(tok)[1:-1], tok.line or 0, (tok.column or 0) + 1, parts, buf)
    if buf:
        parts.append("".join(buf))
    return A.new(A.Str, parts=tuple(parts), span=token_span(tok))


def template_file(text: str) -> A.Str:
    """A prompt file's text as a template: `{name}` interpolates and `{{` / `}}` are braces;
    backslashes are text (a file needs no escapes). Spans are the file's lines."""
    parts: list[str | A.Interp] = []
    buf: list[str] = []
    for k, line in enumerate(text.split("\n")):
        if k:
            buf.append("\n")
        _scan(line, k + 1, 1, parts, buf, escapes=False)
    if buf:
        parts.append("".join(buf))
    return A.new(A.Str, parts=tuple(parts))


def block_lines(raw: str, tok: Token) -> list[tuple[str, int, int]]:
    """The lines of a multi-line string, each with the source line and column it starts at.

    The rule: a blank first line (the text right after the opening quotes) is dropped, and so
    is a last line holding only the indentation of the closing quotes; then the whitespace
    every other non-blank line and that closing line start with is removed from each line
    (a blank line becomes empty). So the closing quotes' indentation is the margin, and a
    line indented deeper keeps the extra spaces."""
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in raw.split("\n")]
    line0, col0 = tok.line or 0, (tok.column or 0) + 3
    first = 1 if len(lines) > 1 and not lines[0].strip() else 0
    closing = len(lines) > 1 and not lines[-1].strip()
    body = list(range(first, len(lines) - 1 if closing else len(lines)))
    leads = [_LEAD.match(lines[i]).group() for i in body if lines[i].strip()]  # type: ignore[union-attr]
    if closing:
        leads.append(lines[-1])
    margin = os.path.commonprefix(leads) if leads else ""  # noqa: RUF071 - text, not paths
    out = []
    for i in body:
        text = lines[i]
        cut = len(margin) if text.startswith(margin) else len(text)  # a short blank line
        out.append((text[cut:], line0 + i, (col0 if i == 0 else 1) + cut))
    return out


_LEAD = re.compile(r"[ \t]*")


def _scan(
    raw: str,
    line: int,
    col0: int,
    parts: list[str | A.Interp],
    buf: list[str],
    escapes: bool = True,
) -> None:
    """One line of string text into `parts` (interpolations) and `buf` (the text before the
    next interpolation); `col0` is the source column of `raw[0]`."""
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and escapes and i + 1 < len(raw):
            nxt = raw[i + 1]
            buf.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        elif ch == "{" and raw.startswith("{{", i):
            buf.append("{")
            i += 2
        elif ch == "}" and raw.startswith("}}", i):
            buf.append("}")
            i += 2
        elif ch == "{" and (m := INTERP.match(raw, i)):
            if buf:
                parts.append("".join(buf))
                buf.clear()
            span = SourceSpan(line=line, column=col0 + i, end_line=line, end_column=col0 + m.end())
            parts.append(A.new(A.Interp, path=tuple(m.group(1).split(".")), span=span))
            i = m.end()
        else:
            buf.append(ch)
            i += 1


_STATEMENTS = (A.Step, A.If, A.Repeat, A.Return, A.Invalid)


def _stmts(children: list[Any]) -> tuple[A.Statement, ...]:
    return tuple(c for c in children if isinstance(c, _STATEMENTS))


def _pos(x: Any, last: bool = False) -> Any:
    """What gives a child's position: a token, a tree node's span, or that of the first/last
    of a tuple of nodes (both have `line`, `column`, `end_line` and `end_column`)."""
    if isinstance(x, Token):
        return x
    if isinstance(x, A.Node):
        return x.span
    if isinstance(x, tuple | list) and x:
        return _pos(x[-1] if last else x[0], last)
    if isinstance(x, _Bound):
        return x.expr.span
    return None


def _cover(children: list[Any]) -> SourceSpan:
    """From the first positioned child to the last one."""
    for c in children:
        first = _pos(c)
        if first is not None:
            break
    else:
        return A.NO_SPAN
    for c in reversed(children):
        end = _pos(c, True)
        if end is not None:
            break
    return SourceSpan(first.line or 0, first.column or 0, end.end_line or 0, end.end_column or 0)


class ToAst(Transformer[Token, A.Module]):
    """Lark rule callbacks → `treadle.compiler.ast` nodes (run inside the LALR parser)."""

    # ------------------------------------------------------------ files

    def start(self, children: list[Any]) -> A.Module:
        return A.new(A.Module, items=tuple(_nodes(children)))

    def use(self, children: list[Any]) -> A.Use:
        kw, s = children[0], _toks(children, "STRING")[0]
        return A.new(
            A.Use, path=parse_string(s).as_text(), span=_join(token_span(kw), token_span(s))
        )

    def workflow(self, children: list[Any]) -> A.Workflow:
        kw, name = children[0], children[1]
        fields = [c for c in children[2:] if isinstance(c, tuple) or c is None][:2]
        inputs, outputs = [*fields, None, None][:2]
        body = _stmts(children)
        end = _toks(children, "END")[-1]
        return A.new(
            A.Workflow,
            name=str(name),
            inputs=inputs or (),
            outputs=outputs or (),
            body=body,
            span=_join(token_span(kw), token_span(end)),
        )

    def fields(self, children: list[Any]) -> tuple[A.Param, ...]:
        return tuple(children)

    def field(self, children: list[Any]) -> A.Param:
        return A.new(A.Param, name=str(children[0]), type=children[1], span=_cover(children))

    params = fields

    def param(self, children: list[Any]) -> A.Param:
        default = children[2] if len(children) > 2 else None
        return A.new(
            A.Param,
            name=str(children[0]),
            type=children[1],
            default=default,
            span=_cover(children),
        )

    def type_name(self, children: list[Any]) -> A.TypeRef:
        return A.new(A.TypeRef, name=str(children[0]), span=_cover(children))

    def type_list(self, children: list[Any]) -> A.TypeRef:
        return A.new(A.TypeRef, name="list", item=children[-1], span=_cover(children))

    # ------------------------------------------------------------ statements

    def step(self, children: list[Any]) -> A.Stmt:
        name, value = children[0], children[-1]
        span = _join(token_span(name), value.span)
        if (
            isinstance(value, A.Command)
            and len(value.terms) == 1
            and isinstance(value.terms[0], A.Name)
            and value.terms[0].path == (INVALID,)
        ):
            return A.new(A.Invalid, name=str(name), span=span)
        return A.new(A.Step, name=str(name), value=value, span=span)

    def for_inline(self, children: list[Any]) -> A.ForEach:
        var, over, command = _toks(children, "NAME")[0], _nodes(children)[0], children[-1]
        return A.new(A.ForEach, var=str(var), over=over, command=command, span=_cover(children))

    def for_block(self, children: list[Any]) -> A.ForEach:
        var = _toks(children, "NAME")[0]
        nodes = _nodes(children)
        body = _stmts(nodes[1:])
        return A.new(A.ForEach, var=str(var), over=nodes[0], body=body, span=_cover(children))

    def command_one(self, children: list[Any]) -> A.Command:
        return self._command(children, children[:1], children[1:])

    def command_words(self, children: list[Any]) -> A.Command:
        terms = [c for c in children if not isinstance(c, A.Arg | tuple) and c is not None]
        rest = [c for c in children if isinstance(c, A.Arg | tuple)]
        return self._command(children, terms, rest)

    def _command(self, children: list[Any], terms: list[Any], rest: list[Any]) -> A.Command:
        args = tuple(c for c in rest if isinstance(c, A.Arg))
        opts = next((c for c in rest if isinstance(c, tuple)), ())
        return A.new(A.Command, terms=tuple(terms), args=args, options=opts, span=_cover(children))

    def arg(self, children: list[Any]) -> A.Arg:
        return A.new(A.Arg, prep=str(children[0]), value=children[1], span=_cover(children))

    def prep(self, children: list[Any]) -> Token:
        tok: Token = children[0]
        return tok

    def options(self, children: list[Any]) -> tuple[A.Option, ...]:
        return tuple(c for c in children if isinstance(c, A.Option))

    def option(self, children: list[Any]) -> A.Option:
        return A.new(A.Option, name=str(children[0]), value=children[1], span=_cover(children))

    def if_(self, children: list[Any]) -> A.If:
        kw, end = children[0], _toks(children, "END")[-1]
        cond = _nodes(children)[0]
        body = _stmts(children)
        first_end = body[-1].span if body else token_span(_toks(children, "THEN")[0])
        arms = [A.new(A.Arm, cond=cond, body=body, span=_join(token_span(kw), first_end))]
        arms += [c for c in children if isinstance(c, A.Arm)]
        return A.new(A.If, arms=tuple(arms), span=_join(token_span(kw), token_span(end)))

    def elif_(self, children: list[Any]) -> A.Arm:
        kw = children[0]
        cond = _nodes(children)[0]
        body = _stmts(children)
        last = body[-1].span if body else token_span(_toks(children, "THEN")[0])
        return A.new(A.Arm, cond=cond, body=body, span=_join(token_span(kw), last))

    def else_(self, children: list[Any]) -> A.Arm:
        kw = children[0]
        body = _stmts(children)
        last = body[-1].span if body else token_span(kw)
        return A.new(A.Arm, cond=None, body=body, span=_join(token_span(kw), last))

    def repeat(self, children: list[Any]) -> A.Repeat:
        kw = children[0]
        bound = next((c for c in children if isinstance(c, _Bound)), None)
        body = _stmts(children)
        until = _nodes(children)[-1]
        return A.new(
            A.Repeat,
            bound=bound.expr if bound else None,
            body=body,
            until=until,
            span=_join(token_span(kw), until.span),
        )

    def bound(self, children: list[Any]) -> _Bound:
        return _Bound(_nodes(children)[0])

    def return_(self, children: list[Any]) -> A.Return:
        kw = children[0]
        value = _nodes(children)[0] if _nodes(children) else None
        end = value.span if value is not None else token_span(kw)
        return A.new(A.Return, value=value, span=_join(token_span(kw), end))

    # ------------------------------------------------------------ expressions

    def or_expr(self, children: list[Any]) -> A.BinaryOp:
        return A.new(
            A.BinaryOp, op="or", left=children[0], right=children[-1], span=_cover(children)
        )

    def and_expr(self, children: list[Any]) -> A.BinaryOp:
        return A.new(
            A.BinaryOp, op="and", left=children[0], right=children[-1], span=_cover(children)
        )

    def default_expr(self, children: list[Any]) -> A.BinaryOp:
        return A.new(
            A.BinaryOp, op="or else", left=children[0], right=children[-1], span=_cover(children)
        )

    def not_expr(self, children: list[Any]) -> A.UnaryOp:
        return A.new(A.UnaryOp, op="not", operand=children[-1], span=_cover(children))

    def neg(self, children: list[Any]) -> A.UnaryOp:
        return A.new(A.UnaryOp, op="-", operand=children[-1], span=_cover(children))

    def compare_expr(self, children: list[Any]) -> A.BinaryOp:
        return A.new(
            A.BinaryOp, op=children[1], left=children[0], right=children[2], span=_cover(children)
        )

    binary = compare_expr

    def comp_op(self, children: list[Any]) -> str:
        return " ".join(str(c) for c in children)

    sum_op = comp_op
    prod_op = comp_op

    def ref(self, children: list[Any]) -> A.Name:
        return A.new(
            A.Name, path=tuple(str(c) for c in children if c.type == "NAME"), span=_cover(children)
        )

    def string(self, children: list[Any]) -> A.Str:
        return parse_string(children[0])

    def prompt_file(self, children: list[Any]) -> A.PromptFile:
        path = parse_string(_toks(children, "STRING")[0]).as_text()
        return A.new(A.PromptFile, path=path, span=_cover(children))

    def number(self, children: list[Any]) -> A.Num:
        text = str(children[0])
        value: int | float = float(text) if "." in text else int(text)
        return A.new(A.Num, value=value, span=token_span(children[0]))

    def true(self, children: list[Any]) -> A.Bool:
        return A.new(A.Bool, value=True, span=_cover(children))

    def false(self, children: list[Any]) -> A.Bool:
        return A.new(A.Bool, value=False, span=_cover(children))

    def null(self, children: list[Any]) -> A.Null:
        return A.new(A.Null, span=_cover(children))

    def object(self, children: list[Any]) -> A.ObjectLit:
        return A.new(A.ObjectLit, pairs=tuple(_nodes(children)), span=_cover(children))

    def pair(self, children: list[Any]) -> A.Pair:
        key = parse_string(children[0]).as_text()
        return A.new(A.Pair, key=key, value=children[-1], span=_cover(children))

    def list(self, children: list[Any]) -> A.ListLit:
        return A.new(A.ListLit, items=tuple(_nodes(children)), span=_cover(children))


class _Bound:
    """Wraps the `up to N times` expression so `repeat` can tell it from the `until` one."""

    def __init__(self, expr: A.Expr) -> None:
        self.expr = expr
