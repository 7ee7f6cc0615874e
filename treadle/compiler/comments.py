"""Comments: found in the text and attached to the tree, so the formatter can keep them.

The grammar ignores comments (the decoder may write them anywhere a space may go); this module
finds them with a small scan that skips strings, and hangs each one on the statement it
precedes, the line it ends, or the block it closes.
"""

from __future__ import annotations

import re
from typing import Any

from treadle.compiler import ast as A


def scan_comments(text: str) -> list[tuple[int, bool, str]]:
    """Every comment as (line, on_its_own_line, text from `#`, right-stripped); a `#` inside a
    string, a multi-line one included, is text."""
    found = []
    i, no, line_start, n = 0, 1, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            no, line_start = no + 1, i + 1
        elif text.startswith('"""', i):
            close = _BLOCK_END.search(text, i + 3)
            stop = close.end() if close else n
            no += text.count("\n", i, stop)
            line_start = text.rfind("\n", 0, stop) + 1 or line_start
            i = stop
            continue
        elif ch == '"':
            i += 1
            while i < n and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif ch == "#":
            eol = text.find("\n", i)
            eol = n if eol < 0 else eol
            own = not text[line_start:i].strip()
            found.append((no, own, text[i:eol].rstrip()))
            i = eol
            continue
        i += 1
    return found


#: the end of a multi-line string: three quotes not escaped (as the grammar's BLOCK_STRING)
_BLOCK_END = re.compile(r'(?:[^"\\]|\\[\s\S]|"(?!""))*"""')


class _Anchor:
    """A line the formatter prints on its own: where comments can attach."""

    __slots__ = ("kind", "line", "target")

    def __init__(self, line: int, kind: str, target: Any) -> None:
        self.line, self.kind, self.target = line, kind, target


def _anchors(module: A.Module) -> list[_Anchor]:
    out: list[_Anchor] = []

    def block(stmts: tuple[A.Statement, ...]) -> None:
        for s in stmts:
            out.append(_Anchor(s.span.line, "stmt", s))
            end = _header_end(s)
            if end > s.span.line:  # a header spread over lines: its comment ends the last one
                out.append(_Anchor(end, "stmt", s))
            if (
                isinstance(s, A.Step)
                and isinstance(s.value, A.ForEach)
                and s.value.body is not None
            ):
                block(s.value.body)
                out.append(_Anchor(s.span.end_line, "close", s.value))
            elif isinstance(s, A.If):
                for i, arm in enumerate(s.arms):
                    if i:
                        out.append(_Anchor(arm.span.line, "arm", (s.arms[i - 1], arm)))
                        if arm.cond is not None and arm.cond.span.end_line > arm.span.line:
                            out.append(_Anchor(arm.cond.span.end_line, "arm", (s.arms[i - 1], arm)))
                    block(arm.body)
                out.append(_Anchor(s.span.end_line, "close", s.arms[-1]))
            elif isinstance(s, A.Repeat):
                block(s.body)
                out.append(_Anchor(s.span.end_line, "close", s))

    for item in module.items:
        out.append(_Anchor(item.span.line, "stmt", item))
        if isinstance(item, A.Workflow):
            end = max((p.span.end_line for p in (*item.inputs, *item.outputs)), default=0)
            if end > item.span.line:  # a default spread over lines
                out.append(_Anchor(end, "stmt", item))
            block(item.body)
            out.append(_Anchor(item.span.end_line, "close", item))
    out.sort(key=lambda a: a.line)
    return out


def _header_end(s: A.Statement) -> int:
    """The last line of a statement's header (a JSON literal or a multi-line string may
    spread a step, a condition or a return over several lines)."""
    if isinstance(s, A.Step) and isinstance(s.value, A.ForEach) and s.value.body is not None:
        return s.value.over.span.end_line
    if isinstance(s, A.If):
        cond = s.arms[0].cond
        return cond.span.end_line if cond is not None else s.span.line
    if isinstance(s, A.Repeat):
        return s.bound.span.end_line if s.bound is not None else s.span.line
    return s.span.end_line


def attach_comments(module: A.Module, text: str) -> None:
    """Hang every comment of `text` on the tree of `module` (in place).

    Blank lines inside a block of own-line comments are kept as "" entries (one per blank
    line), and so are those between a statement's comments and the statement: a file's header
    comment stays apart from the next workflow's doc comment. The formatter prints a run of
    them as one blank line."""
    comments = scan_comments(text)
    if not comments:
        return
    anchors = _anchors(module)
    by_line: dict[int, _Anchor] = {}
    for a in anchors:
        by_line.setdefault(a.line, a)
    #: id(target) -> (target, attribute, [(line or None for an end-of-line comment, text)])
    groups: dict[int, tuple[Any, str, list[tuple[int | None, str]]]] = {}

    def add(target: Any, attr: str, line: int | None, body: str) -> None:
        group = groups.setdefault(id(target) * 2 + (attr == "comments"), (target, attr, []))
        group[2].append((line, body))

    j = 0
    for line, own, body in comments:
        if not own and line in by_line:
            a = by_line[line]
            if a.kind == "stmt":
                a.target.trailing = body
            elif a.kind == "arm":
                a.target[1].trailing = body
            else:
                add(a.target, "end_comments", None, body)
            continue
        while j < len(anchors) and anchors[j].line <= line:
            j += 1
        if j == len(anchors):
            add(module, "end_comments", line, body)
            continue
        a = anchors[j]
        if a.kind == "stmt":
            add(a.target, "comments", line, body)
        elif a.kind == "arm":
            add(a.target[0], "end_comments", line, body)
        else:
            add(a.target, "end_comments", line, body)
    for target, attr, found in groups.values():
        out = list(getattr(target, attr))
        last: int | None = None
        for at, body in found:
            if at is not None and last is not None:
                out.extend([""] * (at - last - 1))
            out.append(body)
            last = at if at is not None else last
        if attr == "comments" and last is not None:
            out.extend([""] * (target.span.line - last - 1))
        setattr(target, attr, tuple(out))
