"""The canonical formatter: one way to print a syntax tree.

Two-space indentation, one statement per line, single spaces between words, parentheses only
where precedence needs them, comments kept where they were (blank lines between comment blocks
too), at most one blank line where the source had some. `parse(format(tree))` gives the same
tree, and formatting is idempotent.
"""

from __future__ import annotations

import re
from decimal import Decimal

from treadle.compiler import ast as A

INDENT = "  "

# precedence: higher binds tighter
_PREC = {
    "or": 1, "or else": 1, "and": 2, "not": 3,
    "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "is": 4, "is not": 4,
    "contains": 4, "starts with": 4, "ends with": 4,
    "+": 5, "-": 5, "*": 6, "/": 6,
}  # fmt: skip
_ATOM = 8
#: a list or object longer than this (or holding a multi-line string) prints an item a line
WIDTH = 80
_ESCAPE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "{": "{{", "}": "}}"}


def format_module(module: A.Module) -> str:
    out: list[str] = []
    prev: A.Use | A.Workflow | None = None
    for item in module.items:
        if prev is not None and not (isinstance(prev, A.Use) and isinstance(item, A.Use)):
            out.append("")
        out.extend(_comments(item.comments, ""))
        if isinstance(item, A.Use):
            out.append(_trail(f"use {format_string_text(item.path)}", item.trailing))
        else:
            out.extend(_workflow(item))
        prev = item
    if module.end_comments:
        if out:
            out.append("")
        out.extend(_comments(module.end_comments, "", end=True))
    return "\n".join(out) + "\n" if out else ""


def _comments(comments: tuple[str, ...], pad: str, end: bool = False) -> list[str]:
    """Own-line comments at one indentation; a run of blank entries ("") prints as one blank
    line. Before a statement a blank line may end the run (it keeps a header comment apart
    from a doc comment); at the end of a block, blank lines only separate comments."""
    lines: list[str] = []
    for c in comments:
        if c:
            lines.append(pad + c)
        elif lines and lines[-1]:
            lines.append("")
    if end and lines and not lines[-1]:
        lines.pop()
    return lines


def _trail(line: str, comment: str | None) -> str:
    return f"{line}  {comment}" if comment else line


def _trail_at(pad: str, text: str, comment: str | None) -> str:
    """A statement's header at `pad`: lines a multi-line value adds are indented under it,
    and the trailing comment ends its last line (`comments` anchors it there)."""
    return _trail(_indent(text, pad), comment)


def _workflow(wf: A.Workflow) -> list[str]:
    head = f"workflow {wf.name}({_params(wf.inputs)})"
    if wf.outputs:
        head += f" -> {_params(wf.outputs)}"
    lines = [_trail(head, wf.trailing)]
    lines += _block(wf.body, 1, wf.end_comments)
    lines.append("end")
    return lines


def _params(ps: tuple[A.Param, ...]) -> str:
    return ", ".join(
        f"{p.name}: {p.type}" + (f" = {expr(p.default)}" if p.default is not None else "")
        for p in ps
    )


def _block(body: tuple[A.Statement, ...], depth: int, end_comments: tuple[str, ...]) -> list[str]:
    pad = INDENT * depth
    lines: list[str] = []
    prev: A.Statement | None = None
    for s in body:
        if prev is not None and prev.span.end_line and s.span.line:
            first = s.span.line - len(s.comments)
            if first - prev.span.end_line > 1:
                lines.append("")
        lines.extend(_comments(s.comments, pad))
        lines.extend(_stmt(s, depth))
        prev = s
    lines.extend(_comments(end_comments, pad, end=True))
    return lines


def _stmt(s: A.Statement, depth: int) -> list[str]:
    pad = INDENT * depth
    if isinstance(s, A.Step):
        if isinstance(s.value, A.ForEach):
            fe = s.value
            head = f"{pad}{s.name} = for each {fe.var} in {expr(fe.over)}"
            if fe.command is not None:
                return [_trail_at(pad, f"{head}: {command(fe.command)}", s.trailing)]
            lines = [_trail_at(pad, head, s.trailing)]
            lines += _block(fe.body or (), depth + 1, fe.end_comments)
            lines.append(pad + "end")
            return lines
        return [_trail_at(pad, f"{pad}{s.name} = {command(s.value)}", s.trailing)]
    if isinstance(s, A.If):
        lines = []
        for i, arm in enumerate(s.arms):
            if i == 0:
                head = f"{pad}if {expr(arm.cond)} then" if arm.cond else f"{pad}if true then"
                head = _trail_at(pad, head, s.trailing)
            elif arm.cond is None:
                head = _trail_at(pad, f"{pad}else", arm.trailing)
            else:
                head = _trail_at(pad, f"{pad}else if {expr(arm.cond)} then", arm.trailing)
            lines.append(head)
            lines += _block(arm.body, depth + 1, arm.end_comments)
        lines.append(pad + "end")
        return lines
    if isinstance(s, A.Repeat):
        head = f"{pad}repeat" if s.bound is None else f"{pad}repeat up to {expr(s.bound)} times"
        lines = [_trail_at(pad, head, s.trailing)]
        lines += _block(s.body, depth + 1, s.end_comments)
        lines.append(_indent(f"{pad}until {expr(s.until)}", pad))
        return lines
    if isinstance(s, A.Return):
        text = f"{pad}return" if s.value is None else f"{pad}return {expr(s.value)}"
        return [_trail_at(pad, text, s.trailing)]
    raise ValueError("cannot format a file with syntax errors")


def command(c: A.Command) -> str:
    one = len(c.terms) == 1
    parts = [expr(c.terms[0])] if one else [_wrap(t, _ATOM) for t in c.terms]
    parts += [f"{a.prep} {expr(a.value)}" for a in c.args]
    text = " ".join(parts)
    if c.options:
        text += " with " + ", ".join(f"{o.name} {expr(o.value)}" for o in c.options)
    return text


def expr(e: A.Expr) -> str:
    if isinstance(e, A.Name):
        return ".".join(e.path)
    if isinstance(e, A.Str):
        return format_string(e)
    if isinstance(e, A.Num):
        return format_number(e.value)
    if isinstance(e, A.Bool):
        return "true" if e.value else "false"
    if isinstance(e, A.Null):
        return "null"
    if isinstance(e, A.PromptFile):
        return f"file {format_string_text(e.path)}"
    if isinstance(e, A.ListLit):
        return _items("[", [expr(i) for i in e.items], "]")
    if isinstance(e, A.ObjectLit):
        return _items("{", [f"{format_string_text(p.key)}: {expr(p.value)}" for p in e.pairs], "}")
    if isinstance(e, A.UnaryOp):
        if e.op == "not":
            return f"not {_wrap(e.operand, _PREC['not'])}"
        return f"-{_wrap(e.operand, 7)}"
    p = _PREC[e.op]
    if p == 4:  # comparisons do not chain: both sides are sums
        return f"{_wrap(e.left, 5)} {e.op} {_wrap(e.right, 5)}"
    return f"{_wrap(e.left, p)} {e.op} {_wrap(e.right, p + 1)}"


def _items(open_: str, items: list[str], close: str) -> str:
    """`[a, b]` on one line when it fits, else one item a line, indented (a schema is long).
    Lines after the first are relative to the statement: `_stmt` indents them."""
    one = open_ + ", ".join(items) + close
    if len(one) <= WIDTH and "\n" not in one:
        return one
    return open_ + "\n" + ",\n".join(_indent(INDENT + i) for i in items) + "\n" + close


def _indent(text: str, pad: str = INDENT) -> str:
    """Indent the lines after the first (blank lines stay empty: no trailing spaces)."""
    return "\n".join(
        [(pad + ln if ln else ln) if i else ln for i, ln in enumerate(text.split("\n"))]
    )


def _prec(e: A.Expr) -> int:
    if isinstance(e, A.BinaryOp):
        return _PREC[e.op]
    if isinstance(e, A.UnaryOp):
        return _PREC["not"] if e.op == "not" else 7
    return _ATOM


def _wrap(e: A.Expr, at_least: int) -> str:
    text = expr(e)
    return text if _prec(e) >= at_least else f"({text})"


def format_number(v: int | float) -> str:
    if isinstance(v, bool | int):
        return str(int(v))
    text = repr(float(v))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." not in text:
        text += ".0"
    return text


def format_string(s: A.Str) -> str:
    if s.block:
        return _block_string(s)
    out = []
    for p in s.parts:
        if isinstance(p, str):
            out.append("".join(_ESCAPE.get(ch, ch) for ch in p))
        else:
            out.append("{" + ".".join(p.path) + "}")
    return '"' + "".join(out) + '"'


_BLOCK_ESCAPE = {"\\": "\\\\", "\r": "\\r", "{": "{{", "}": "}}"}


def _block_string(s: A.Str) -> str:
    """Triple quotes, the text's lines one level deeper than the statement, and the closing
    quotes on their own line at that level (the margin `block_lines` removes). Runs of three
    quotes are escaped."""
    out = []
    for p in s.parts:
        if isinstance(p, str):
            out.append("".join(_BLOCK_ESCAPE.get(ch, ch) for ch in p))
        else:
            out.append("{" + ".".join(p.path) + "}")
    text = re.sub(r'"{3,}', lambda m: '\\"' * len(m.group()), "".join(out))
    lines = "".join("\n" + (INDENT + ln if ln else "") for ln in text.split("\n"))
    return '"""' + lines + "\n" + INDENT + '"""'


def format_string_text(text: str) -> str:
    """A plain string literal (a `use` path): braces stay as written."""
    return '"' + "".join(_ESCAPE.get(ch, ch) if ch not in "{}" else ch for ch in text) + '"'


def format_source(text: str, filename: str | None = None) -> str:
    """Format source text; raises ValueError when it has syntax errors."""
    from treadle.compiler.parsing import parse

    module, diags = parse(text, filename)
    errors = [d for d in diags if d.is_error]
    if errors:
        raise ValueError(f"{len(errors)} syntax error(s): {errors[0].message}")
    return format_module(module)
