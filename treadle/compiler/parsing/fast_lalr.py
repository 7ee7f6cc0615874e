"""The fast LALR driver (the analogue of Lark's `lalr_parser`): what Lark's parser returns for
a file without syntax errors, in one loop without Lark's per-token layers.

The same contextual lexing, LALR table and rule callbacks as Lark's parser (`fast_tables`); at
the first lexing or parsing error it gives up and `parse` runs Lark itself, whose errors the
recovery needs. `tests/compiler/test_fast_path.py` keeps the two equal.
"""

from __future__ import annotations

from typing import Any, cast

from treadle.compiler import ast as A
from treadle.compiler.parsing._lark_internals import Actions, bare_token
from treadle.compiler.parsing.fast_tables import fast_tables, state_lexer

#: (state under the top, top state, next terminal) -> the top state after every one-child
#: reduction that terminal triggers in a row (they only ever replace the top state)
_PASS_CHAINS: dict[tuple[int, int, str], int] = {}


def _pass_chain(actions: Actions, end_state: int, under: int, top: int, term: str) -> int:
    while True:
        act = actions[top].get(term)
        if act is None or act[0] or act[1][1] is not None:
            return top
        top = actions[under][act[1][2]][1]
        if term == "$END" and top == end_state:
            return top


def fast_parse(text: str) -> A.Module | None:
    """What `lark_parser().parse(text)` returns for a file without syntax errors, or None (a
    syntax error, or tables this Lark cannot give)."""
    tables = fast_tables()
    if tables is None:
        return None
    start_state, end_state, actions, lexers = tables[0], tables[1], tables[2], tables[5]
    state_stack = [start_state]
    value_stack: list[Any] = []
    pos, line, line_start, n = 0, 1, 0, len(text)
    while True:
        view = lexers.get(state_stack[-1])
        if view is None:
            view = state_lexer(tables, state_stack[-1])
        mres, ignore, multiline, keywords = view
        term: Any = "$END"  # a str: `lastgroup` is always set (every alternative is a group)
        tok: Any = None
        while pos < n:
            for mre in mres:
                m = mre.match(text, pos)
                if m is not None:
                    break
            else:
                return None
            value = m.group(0)
            term = m.lastgroup
            start, start_line, column = pos, line, pos - line_start + 1
            if term in multiline:
                k = value.count("\n")
                if k:
                    line += k
                    line_start = pos + value.rindex("\n") + 1
            pos += len(value)
            if term in ignore:
                term = "$END"
                continue
            keyword = keywords.get(term)
            if keyword is not None:
                term = keyword(value) or term
            tok = bare_token(term, value, start, start_line, column, line, pos - line_start + 1)
            break
        while True:
            act = actions[state_stack[-1]].get(term)
            if act is None:
                return None
            if act[0]:
                if tok is None:
                    return None
                state_stack.append(act[1])
                value_stack.append(tok)
                break
            size, callback, origin = act[1]
            if callback is None:  # the child is the value: only the top state changes
                key = (state_stack[-2], state_stack[-1], term)
                top = _PASS_CHAINS.get(key)
                if top is None:
                    top = _pass_chain(actions, end_state, *key)
                    _PASS_CHAINS[key] = top
                state_stack[-1] = top
                if tok is None and top == end_state:
                    return cast(A.Module, value_stack[-1])
                continue
            if size:
                children = value_stack[-size:]
                del state_stack[-size:]
                del value_stack[-size:]
            else:
                children = []
            value_stack.append(callback(children))
            state_stack.append(actions[state_stack[-1]][origin][1])
            if tok is None and state_stack[-1] == end_state:
                return cast(A.Module, value_stack[-1])
