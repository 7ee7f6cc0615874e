"""Every read of Lark's internals, in one place: what the fast path and error recovery need
from Lark beyond its public API (`Lark`, `Token`, `Tree`, `parse`, `parse_interactive`,
`feed_token`, `feed_eof` and the exception attributes).

Pinned: pyproject.toml requires `lark>=1.3,<1.4`, the range `tests/compiler/test_fast_path.py`
covers (`TESTED_LARK`). That file is the equivalence test: the fast path and Lark's parser
accept the same texts and build equal trees on random, re-spaced and mutated programs, and
both the fast path and recovery fall back when an internal here is missing. A Lark whose
internals differ raises `MissingInternal` (or gives `flatten_tables` None): the fast path
then leaves parsing to Lark, and recovery reports the first error only. Nothing here may
crash a parse.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from copy import copy
from typing import Any, ParamSpec, TypeVar

from lark import Lark, Token, Tree
from lark.lexer import BasicLexer, ContextualLexer, LexerState, LineCounter, UnlessCallback
from lark.parse_tree_builder import ChildFilter, ExpandSingleChild
from lark.parsers.lalr_analysis import Shift
from lark.parsers.lalr_interactive_parser import InteractiveParser

#: the Lark (major, minor) these readings are tested against
TESTED_LARK = (1, 3)

#: per parser state: terminal -> (True, next state) for a shift, or (False, (rule length,
#: callback, rule name)) for a reduce; callback None: the rule's value is its one child
Actions = dict[int, dict[str, tuple[bool, Any]]]
#: a contextual lexer as data: its regexps as (pattern, flags) (tried in order), ignored
#: terminals, multi-line terminals, and per terminal the keyword regexps a match of it is
#: looked up in (a NAME that spells `for` is the keyword's terminal)
LexerSpec = tuple[
    tuple[tuple[str, int], ...],
    frozenset[str],
    frozenset[str],
    dict[str, tuple[tuple[str, int], ...]],
]
#: start state, end state, actions, per state the index of its lexer in the list of lexers
Tables = tuple[int, int, Actions, dict[int, int], list[LexerSpec]]


class MissingInternal(Exception):
    """This Lark is not built the way these readings assume."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _internal(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """An AttributeError inside a reading is another Lark's layout, not a bug of the caller."""

    @functools.wraps(fn)
    def read(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except AttributeError as e:
            raise MissingInternal(f"{fn.__name__}: {e}") from e

    return read


# ---------------------------------------------------------------- the fast path's tables


def flatten_tables(lark: Lark) -> Tables | None:
    """Lark's LALR table, rule callbacks and contextual lexers as plain data; None when the
    parser is built otherwise than the fast path handles, or with other internals."""
    try:
        return _flatten(lark)
    except AttributeError:
        return None


def _flatten(lark: Lark) -> Tables | None:
    frontend = lark.parser
    lexer = frontend.lexer
    parser = frontend.parser.parser
    table, callbacks = parser.parse_table, parser.callbacks
    if any(isinstance(k, str) for k in callbacks) or lark.options.lexer_callbacks:
        return None  # terminal callbacks: not handled here
    actions: Actions = {}
    for state, acts in table.states.items():
        row: dict[str, tuple[bool, Any]] = {}
        for term, (action, arg) in acts.items():
            if action is Shift:
                row[term] = (True, arg)
            else:
                size, cb = len(arg.expansion), callbacks[arg]
                cb = None if _passes_child(size, cb) else _portable(cb)
                row[term] = (False, (size, cb, arg.origin.name))
        actions[state] = row
    specs: list[LexerSpec] = []
    index: dict[int, int] = {}  # id of Lark's lexer -> its spec (states share lexers)
    by_state: dict[int, int] = {}
    for state, basic in lexer.lexers.items():
        if type(basic) is not BasicLexer:
            return None
        if id(basic) not in index:
            spec = _lexer_spec(basic)
            if spec is None:
                return None
            index[id(basic)] = len(specs)
            specs.append(spec)
        by_state[state] = index[id(basic)]
    return table.start_states["start"], table.end_states["start"], actions, by_state, specs


def _portable(cb: Any) -> Any:
    """A rule callback that pickles: Lark's default for a rule the transformer has no method
    for is a closure calling `Transformer.__default__`, which builds a Tree; `_tree` does it."""
    if isinstance(cb, functools.partial):
        if cb.func.__qualname__.endswith("<locals>.default_callback"):
            return functools.partial(_tree, *cb.args)
        return cb
    inner = getattr(cb, "node_builder", None)
    if inner is None:
        return cb
    cb = copy(cb)
    cb.node_builder = _portable(inner)
    return cb


def _tree(data: str, children: list[Any]) -> Tree[Any]:
    return Tree(data, children)


def _lexer_spec(basic: BasicLexer) -> LexerSpec | None:
    """A contextual lexer's regexps as data (building its scanner, as Lark would on first use);
    None if it needs what the fast path does not do (a terminal callback other than keywords)."""
    scanner = basic.scanner  # builds `basic.callback` too
    keywords: dict[str, tuple[tuple[str, int], ...]] = {}
    for term, cb in basic.callback.items():
        if type(cb) is not UnlessCallback or term in basic.ignore_types:
            return None
        keywords[term] = _patterns(cb.scanner._mres)
    return (
        _patterns(scanner._mres),
        frozenset(basic.ignore_types),
        frozenset(basic.newline_types),
        keywords,
    )


def _patterns(mres: list[Any]) -> tuple[tuple[str, int], ...]:
    return tuple((m.pattern, m.flags) for m in mres)


def _passes_child(size: int, cb: Any) -> bool:
    """Whether a rule callback returns its only child as is (an inlined `?rule` with one
    symbol), which the fast path then skips calling."""
    if size != 1:
        return False
    if type(cb) is ExpandSingleChild:
        return True
    return (
        isinstance(cb, ChildFilter)
        and type(cb.node_builder) is ExpandSingleChild
        and list(cb.to_include) == [(0, False, 0)]
        and not getattr(cb, "append_none", 0)
    )


_new_str = str.__new__


def bare_token(
    term: str, value: str, start: int, line: int, column: int, end_line: int, end_column: int
) -> Token:
    """What `Token(...)` builds, minus its argument checks (Token's slots are filled directly;
    the fast path makes one per token)."""
    tok: Token = _new_str(Token, value)
    tok.type = term
    tok.start_pos = start
    tok.value = value
    tok.line = line
    tok.column = column
    tok.end_line = end_line
    tok.end_column = end_column
    tok.end_pos = start + len(value)
    return tok


# ---------------------------------------------------------------- messages


@_internal
def literal_terminals(lark: Lark) -> dict[str, str]:
    """Keyword and punctuation text → Lark's name for that anonymous terminal."""
    return {t.pattern.value: t.name for t in lark.terminals if t.pattern.type == "str"}


# ---------------------------------------------------------------- error recovery


@_internal
def lexing(ip: InteractiveParser) -> tuple[ContextualLexer, LexerState]:
    """An interactive parser's contextual lexer and the lexer state it reads the text with."""
    thread = ip.lexer_thread
    lexer, state = thread.lexer, thread.state
    if state is None or not isinstance(lexer, ContextualLexer):
        raise MissingInternal("the interactive parser has no contextual lexer state")
    return lexer, state


@_internal
def state_token(lexer: ContextualLexer, state: LexerState, ip: InteractiveParser) -> Token:
    """The next token as the parser's current state reads it (UnexpectedCharacters if none)."""
    tok: Token = lexer.lexers[ip.parser_state.position].next_token(state, ip.parser_state)
    return tok


@_internal
def any_token(lexer: ContextualLexer, state: LexerState, ip: InteractiveParser) -> Token:
    """The next token as the lexer of every terminal reads it, whatever the parser's state."""
    tok: Token = lexer.root_lexer.next_token(state, ip.parser_state)
    return tok


@_internal
def line_counter(state: LexerState) -> LineCounter:
    """A copy of where the lexer state stands, for `char_pos`, `line_of` and `resume_at`."""
    return copy(state.line_ctr)


@_internal
def char_pos(counter: LineCounter) -> int:
    pos: int = counter.char_pos
    return pos


@_internal
def line_and_column(counter: LineCounter) -> tuple[int, int]:
    return counter.line, counter.column


@_internal
def resume_at(state: LexerState, counter: LineCounter, skipped: str) -> None:
    """Move the lexer state to `counter` advanced over `skipped`."""
    ctr = copy(counter)
    ctr.feed(skipped)
    state.line_ctr = ctr


@_internal
def snapshot(ip: InteractiveParser) -> InteractiveParser:
    """A copy of the interactive parser that later feeding cannot change.

    Lark's LALR tree builder grows the children list of a `stmt*` accumulator in place, so the
    trees on the value stack are copied one level deep (cheap: deeper trees are finished)."""
    c = ip.copy(deepcopy_values=False)
    stack = c.parser_state.value_stack
    for i, v in enumerate(stack):
        if isinstance(v, Tree):
            stack[i] = Tree(v.data, list(v.children), v._meta)
    return c
