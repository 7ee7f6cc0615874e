"""Text → syntax tree, reporting every syntax error of a file rather than the first.

The fast path is one LALR parse. When it fails, the file is parsed again line by line through
Lark's interactive parser: a line that does not parse is reported, then replaced by a stand-in
of the same shape (an `if` line by `if true then`, a step by `NAME = $invalid`), so the block
structure survives and the rest of the file is still parsed and checked.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from copy import copy
from pathlib import Path
from typing import Any, cast

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import BasicLexer, LexerState, UnlessCallback
from lark.parse_tree_builder import ChildFilter, ExpandSingleChild
from lark.parsers.lalr_analysis import Shift

from treadle.compiler import ast as A
from treadle.compiler.build_cache import cache_dir, digest, write_atomic
from treadle.compiler.comments import attach_comments
from treadle.compiler.diagnostics import Diagnostic, make
from treadle.grammar import grammar_text

#: the name a stand-in gives a line that did not parse; checks stay quiet about it
INVALID = "$invalid"

_INTERP = re.compile(r"\{[ \t]*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*\}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


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
        "transformer": _ToAst(),
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


def _tspan(tok: Token) -> A.Span:
    return A.Span(tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)


def _join(a: A.Span, b: A.Span) -> A.Span:
    return A.Span(a.line, a.column, b.end_line, b.end_column)


def _toks(children: list[Any], *types: str) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type in types]


def _nodes(children: list[Any]) -> list[Any]:
    return [c for c in children if c is not None and not isinstance(c, Token)]


def parse_string(tok: Token) -> A.Str:
    """Decode escapes and split `{name.field}` interpolations out of a string literal."""
    raw = str(tok)[1:-1]
    parts: list[str | A.Interp] = []
    buf: list[str] = []
    line, col0 = tok.line or 0, (tok.column or 0) + 1
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            buf.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        elif ch == "{" and raw.startswith("{{", i):
            buf.append("{")
            i += 2
        elif ch == "}" and raw.startswith("}}", i):
            buf.append("}")
            i += 2
        elif ch == "{" and (m := _INTERP.match(raw, i)):
            if buf:
                parts.append("".join(buf))
                buf = []
            span = A.Span(line=line, column=col0 + i, end_line=line, end_column=col0 + m.end())
            parts.append(A.new(A.Interp, path=tuple(m.group(1).split(".")), span=span))
            i = m.end()
        else:
            buf.append(ch)
            i += 1
    if buf:
        parts.append("".join(buf))
    return A.new(A.Str, parts=tuple(parts), span=_tspan(tok))


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


def _cover(children: list[Any]) -> A.Span:
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
    return A.Span(first.line or 0, first.column or 0, end.end_line or 0, end.end_column or 0)


class _ToAst(Transformer[Token, A.Module]):
    """Lark rule callbacks → `treadle.compiler.ast` nodes (run inside the LALR parser)."""

    # ------------------------------------------------------------ files

    def start(self, children: list[Any]) -> A.Module:
        return A.new(A.Module, items=tuple(_nodes(children)))

    def use(self, children: list[Any]) -> A.Use:
        kw, s = children[0], _toks(children, "STRING")[0]
        return A.new(A.Use, path=parse_string(s).as_text(), span=_join(_tspan(kw), _tspan(s)))

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
            span=_join(_tspan(kw), _tspan(end)),
        )

    def fields(self, children: list[Any]) -> tuple[A.Param, ...]:
        return tuple(children)

    def field(self, children: list[Any]) -> A.Param:
        return A.new(A.Param, name=str(children[0]), type=children[1], span=_cover(children))

    def type_name(self, children: list[Any]) -> A.TypeRef:
        return A.new(A.TypeRef, name=str(children[0]), span=_cover(children))

    def type_list(self, children: list[Any]) -> A.TypeRef:
        return A.new(A.TypeRef, name="list", item=children[-1], span=_cover(children))

    # ------------------------------------------------------------ statements

    def step(self, children: list[Any]) -> A.Stmt:
        name, value = children[0], children[-1]
        span = _join(_tspan(name), value.span)
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
        first_end = body[-1].span if body else _tspan(_toks(children, "THEN")[0])
        arms = [A.new(A.Arm, cond=cond, body=body, span=_join(_tspan(kw), first_end))]
        arms += [c for c in children if isinstance(c, A.Arm)]
        return A.new(A.If, arms=tuple(arms), span=_join(_tspan(kw), _tspan(end)))

    def elif_(self, children: list[Any]) -> A.Arm:
        kw = children[0]
        cond = _nodes(children)[0]
        body = _stmts(children)
        last = body[-1].span if body else _tspan(_toks(children, "THEN")[0])
        return A.new(A.Arm, cond=cond, body=body, span=_join(_tspan(kw), last))

    def else_(self, children: list[Any]) -> A.Arm:
        kw = children[0]
        body = _stmts(children)
        last = body[-1].span if body else _tspan(kw)
        return A.new(A.Arm, cond=None, body=body, span=_join(_tspan(kw), last))

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
            span=_join(_tspan(kw), until.span),
        )

    def bound(self, children: list[Any]) -> _Bound:
        return _Bound(_nodes(children)[0])

    def return_(self, children: list[Any]) -> A.Return:
        kw = children[0]
        value = _nodes(children)[0] if _nodes(children) else None
        end = value.span if value is not None else _tspan(kw)
        return A.new(A.Return, value=value, span=_join(_tspan(kw), end))

    # ------------------------------------------------------------ expressions

    def or_expr(self, children: list[Any]) -> A.BinaryOp:
        return A.new(
            A.BinaryOp, op="or", left=children[0], right=children[-1], span=_cover(children)
        )

    def and_expr(self, children: list[Any]) -> A.BinaryOp:
        return A.new(
            A.BinaryOp, op="and", left=children[0], right=children[-1], span=_cover(children)
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

    def number(self, children: list[Any]) -> A.Num:
        text = str(children[0])
        value: int | float = float(text) if "." in text else int(text)
        return A.new(A.Num, value=value, span=_tspan(children[0]))

    def true(self, children: list[Any]) -> A.Bool:
        return A.new(A.Bool, value=True, span=_cover(children))

    def false(self, children: list[Any]) -> A.Bool:
        return A.new(A.Bool, value=False, span=_cover(children))

    def list(self, children: list[Any]) -> A.ListLit:
        return A.new(A.ListLit, items=tuple(_nodes(children)), span=_cover(children))


class _Bound:
    """Wraps the `up to N times` expression so `repeat` can tell it from the `until` one."""

    def __init__(self, expr: A.Expr) -> None:
        self.expr = expr


def parse(text: str, file: str | None = None) -> tuple[A.Module, list[Diagnostic]]:
    """Parse a whole file: the tree (with stand-ins for bad lines) and its syntax errors."""
    source = text if text.endswith("\n") else text + "\n"
    diags: list[Diagnostic] = []
    broken: set[int] = set()
    fast = _fast_parse(source)
    if fast is not None:
        module = fast
    else:
        try:
            module = cast(A.Module, lark_parser().parse(source))  # the transformer's value
        except UnexpectedInput:
            module, diags, broken = _Recovery(source, file).run()
    if broken:
        for wf in module.workflows:
            if wf.span.line in broken:
                wf.broken = True
    attach_comments(module, source)
    return module, diags


# ---------------------------------------------------------------- the fast path

#: per parser state: terminal -> (True, next state) for a shift, or (False, (rule length,
#: callback, rule name)) for a reduce; callback None: the rule's value is its one child
_Actions = dict[int, dict[str, tuple[bool, Any]]]
#: a contextual lexer as data: its regexps as (pattern, flags) (tried in order), ignored
#: terminals, multi-line terminals, and per terminal the keyword regexps a match of it is
#: looked up in (a NAME that spells `for` is the keyword's terminal)
_LexerSpec = tuple[
    tuple[tuple[str, int], ...],
    frozenset[str],
    frozenset[str],
    dict[str, tuple[tuple[str, int], ...]],
]
#: start state, end state, actions, per state the index of its lexer in the list of lexers
_Tables = tuple[int, int, _Actions, dict[int, int], list[_LexerSpec]]
#: a lexer ready to run: (regexps, ignored, multi-line, terminal -> keyword lookup)
_Lexer = tuple[list[re.Pattern[str]], frozenset[str], frozenset[str], dict[str, Any]]
#: the tables, then the lexers compiled so far by state and by index (filled as states are
#: reached)
_Fast = tuple[
    int, int, _Actions, dict[int, int], list[_LexerSpec], dict[int, _Lexer], dict[int, _Lexer]
]

#: bumped when what `_flatten_tables` derives changes shape
_TABLES_FORMAT = 2


@functools.cache
def _fast_tables() -> _Fast | None:
    """Lark's LALR table, rule callbacks and contextual lexers, flattened for `_fast_parse`;
    None if the parser is not built the way the fast path assumes (then Lark parses).

    A fresh process reads them from the build cache (`build_cache`), so a file that parses
    never builds a Lark object at all: only a syntax error does, for its messages. The entry
    is keyed by the grammar, Lark's version and this module's source (the callbacks are this
    module's transformer methods, pickled by name)."""
    import pickle

    import lark

    folder = cache_dir()
    path = None
    if folder is not None:
        key = digest(grammar_text(), lark.__version__, Path(__file__).read_bytes())
        path = folder / f"lalr-{_TABLES_FORMAT}-{key}.pickle"
        try:
            tables = pickle.loads(path.read_bytes())
        except Exception:  # missing, or unreadable: derive it again
            pass
        else:
            if isinstance(tables, tuple) and len(tables) == 5:
                return (*cast(_Tables, tables), {}, {})
    try:
        tables = _flatten_tables(lark_parser())
    except AttributeError:  # another Lark's internals: Lark parses
        return None
    if tables is None:
        return None
    if path is not None:
        write_atomic(path, pickle.dumps(tables, protocol=pickle.HIGHEST_PROTOCOL))
    return (*tables, {}, {})


def _flatten_tables(lark: Lark) -> _Tables | None:
    frontend = lark.parser
    lexer = frontend.lexer
    parser = frontend.parser.parser
    table, callbacks = parser.parse_table, parser.callbacks
    if any(isinstance(k, str) for k in callbacks) or lark.options.lexer_callbacks:
        return None  # terminal callbacks: not handled here
    actions: _Actions = {}
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
    specs: list[_LexerSpec] = []
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


def _lexer_spec(basic: BasicLexer) -> _LexerSpec | None:
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


def _state_lexer(tables: _Fast, state: int) -> _Lexer:
    """A state's lexer, compiled on first use (most never run in a given process); states
    that share a lexer share its compiled form."""
    i = tables[3][state]
    by_state, by_index = tables[5], tables[6]
    lexer = by_index.get(i)
    if lexer is None:
        regexps, ignore, multiline, keywords = tables[4][i]
        lexer = by_index[i] = (
            [re.compile(p, f) for p, f in regexps],
            ignore,
            multiline,
            {t: _keyword_lookup([re.compile(p, f) for p, f in k]) for t, k in keywords.items()},
        )
    by_state[state] = lexer
    return lexer


def _keyword_lookup(mres: list[re.Pattern[str]]) -> Any:
    """The keyword terminal a matched text spells, or None (Lark's `Scanner.fullmatch`)."""

    @functools.cache
    def lookup(text: str) -> str | None:
        for mre in mres:
            m = mre.fullmatch(text)
            if m is not None:
                return m.lastgroup
        return None

    return lookup


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


#: (state under the top, top state, next terminal) -> the top state after every one-child
#: reduction that terminal triggers in a row (they only ever replace the top state)
_PASS_CHAINS: dict[tuple[int, int, str], int] = {}


def _pass_chain(actions: _Actions, end_state: int, under: int, top: int, term: str) -> int:
    while True:
        act = actions[top].get(term)
        if act is None or act[0] or act[1][1] is not None:
            return top
        top = actions[under][act[1][2]][1]
        if term == "$END" and top == end_state:
            return top


def _fast_parse(text: str) -> A.Module | None:
    """What `lark_parser().parse(text)` returns for a file without syntax errors, or None.

    The same contextual lexing, LALR table and rule callbacks as Lark's parser, in one loop
    without Lark's per-token layers; at the first lexing or parsing error it gives up (None)
    and `parse` runs Lark itself, whose errors the recovery needs."""
    tables = _fast_tables()
    if tables is None:
        return None
    start_state, end_state, actions, lexers = tables[0], tables[1], tables[2], tables[5]
    state_stack = [start_state]
    value_stack: list[Any] = []
    pos, line, line_start, n = 0, 1, 0, len(text)
    new_str = str.__new__
    while True:
        view = lexers.get(state_stack[-1])
        if view is None:
            view = _state_lexer(tables, state_stack[-1])
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
            tok = new_str(Token, value)  # what Token(...) builds, minus its argument checks
            tok.type = term
            tok.start_pos = start
            tok.value = value
            tok.line = start_line
            tok.column = column
            tok.end_line = line
            tok.end_column = pos - line_start + 1
            tok.end_pos = pos
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


# ---------------------------------------------------------------- error recovery

_NAMES = {
    "NAME": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "_NL": "the end of the line",
    "$END": "the end of the file",
    "_ARROW": "`->`",
}

_LINE_KIND = re.compile(
    r"\s*(?:(?P<end>end)\b|(?P<elif>else\s+if)\b|(?P<else>else)\b|(?P<if>if)\b"
    r"|(?P<repeat>repeat)\b|(?P<until>until)\b|(?P<workflow>workflow)\b(?:\s+(?P<wname>[A-Za-z_]\w*))?"
    r"|(?P<return>return)\b|(?P<use>use)\b"
    r"|(?P<step>[A-Za-z_]\w*)\s*=(?P<rhs>.*))"
)
_BLANK = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_FOR_BLOCK = re.compile(r"\s*for\s+each\b[^:]*$")


@functools.cache
def _terminal_names() -> dict[str, str]:
    """Keyword and punctuation text → Lark's name for that anonymous terminal."""
    return {t.pattern.value: t.name for t in lark_parser().terminals if t.pattern.type == "str"}


@functools.cache
def _terminal_text() -> dict[str, str]:
    return {name: value for value, name in _terminal_names().items()}


def describe(terminal: str) -> str:
    if terminal in _NAMES:
        return _NAMES[terminal]
    text = _terminal_text().get(terminal)
    return f"`{text}`" if text is not None else terminal.lower()


def _expected(types: set[str]) -> str:
    words = sorted({describe(t) for t in types if t not in ("COMMENT", "WS")})
    if len(words) > 8:
        keep = [w for w in words if not w.startswith("`")] + [w for w in words if w.startswith("`")]
        words = [*keep[:8], "…"]
    return ", ".join(words)


def _snapshot(ip: Any) -> Any:
    """A copy of the interactive parser that later feeding cannot change.

    Lark's LALR tree builder grows the children list of a `stmt*` accumulator in place, so the
    trees on the value stack are copied one level deep (cheap: deeper trees are finished)."""
    c = ip.copy(deepcopy_values=False)
    stack = c.parser_state.value_stack
    for i, v in enumerate(stack):
        if isinstance(v, Tree):
            stack[i] = Tree(v.data, list(v.children), v._meta)
    return c


class _Misplaced(Exception):
    """A token the parser's state cannot take (the contextual lexer would not even read it)."""

    def __init__(self, token: Token, expected: set[str]) -> None:
        super().__init__(str(token))
        self.token, self.expected = token, expected


class _Recovery:
    """Feeds the interactive parser one line at a time, replacing lines that fail."""

    def __init__(self, text: str, file: str | None) -> None:
        self.text = text
        self.file = file
        self.parser = lark_parser()
        self.diags: list[Diagnostic] = []
        self.broken: set[int] = set()
        self.blocks: list[tuple[str, int]] = []

    def run(self) -> tuple[A.Module, list[Diagnostic], set[int]]:
        ip = self.parser.parse_interactive(self.text)
        lexer = ip.lexer_thread.lexer
        state = ip.lexer_thread.state
        assert state is not None
        line_ip = _snapshot(ip)
        line_ctr = copy(state.line_ctr)
        at_line_start = True
        fed_on_line: list[Token] = []
        while True:
            if at_line_start:
                line_ip = _snapshot(ip)
                line_ctr = copy(state.line_ctr)
                fed_on_line = []
                at_line_start = False
            try:
                tok = self._next(lexer, state, ip)
            except EOFError:
                break
            except UnexpectedCharacters as e:
                self._char_error(e)
                ip, at_line_start, fed_on_line = self._recover(
                    line_ip, line_ctr, state, e.pos_in_stream or 0
                )
                continue
            except _Misplaced as m:
                self._token_error(m.token, m.expected)
                ip, at_line_start, fed_on_line = self._recover(
                    line_ip, line_ctr, state, m.token.start_pos or 0
                )
                continue
            try:
                ip.feed_token(tok)
            except UnexpectedToken as e:
                self._token_error(tok, set(e.expected or ()))
                ip, at_line_start, fed_on_line = self._recover(
                    line_ip, line_ctr, state, tok.start_pos or 0
                )
                continue
            fed_on_line.append(tok)
            if tok.type == "_NL":
                self._track_blocks(fed_on_line)
                at_line_start = True
        return self._finish(ip), self.diags, self.broken

    @staticmethod
    def _next(lexer: Any, state: LexerState, ip: Any) -> Token:
        """The next token as the parser's state reads it; a token the state cannot take is
        still returned (from the lexer of every terminal) so the error names it."""
        try:
            tok: Token = lexer.lexers[ip.parser_state.position].next_token(state, ip.parser_state)
            return tok
        except UnexpectedCharacters as e:
            saved = copy(state.line_ctr)
            try:
                tok = lexer.root_lexer.next_token(state, ip.parser_state)
            except UnexpectedCharacters:
                state.line_ctr = saved
                raise e from None
            raise _Misplaced(tok, set(e.allowed or ())) from None

    # -- errors

    def _char_error(self, e: UnexpectedCharacters) -> None:
        pos = e.pos_in_stream or 0
        ch = self.text[pos] if pos < len(self.text) else ""
        span = A.Span(line=e.line, column=e.column, end_line=e.line, end_column=e.column + 1)
        hint = None
        if ch == '"':
            msg = "unterminated string"
            hint = 'close the string with `"` on the same line; write a line break as `\\n`'
        elif ch == "'":
            msg = "unexpected `'`"
            hint = 'strings use double quotes: "..."'
        elif ch == "\t" or ch == " ":
            msg = "unexpected whitespace"
        else:
            msg = f"unexpected character `{ch}`"
            expected = _expected(set(e.allowed or ()))
            if expected:
                msg += f"; expected {expected}"
        self.diags.append(make("E001", msg, span, file=self.file, hint=hint))

    def _token_error(self, tok: Token, expected: set[str]) -> None:
        if tok.type == "_NL":
            line = self._line_of(tok.start_pos or 0)
            col = len(self.text.splitlines()[line - 1].rstrip()) + 1
            span = A.Span(line=line, column=col, end_line=line, end_column=col + 1)
            what = "unexpected end of line"
        else:
            span = _tspan(tok)
            shown = str(tok) if len(str(tok)) <= 30 else str(tok)[:27] + "..."
            what = f"unexpected {describe(tok.type) if tok.type == '$END' else f'`{shown}`'}"
        msg = f"{what}; expected {_expected(expected)}" if expected else what
        self.diags.append(make("E001", msg, span, file=self.file, hint=_hint(tok, expected)))

    def _line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    # -- recovery

    def _recover(
        self, line_ip: Any, line_ctr: Any, state: LexerState, err_pos: int
    ) -> tuple[Any, bool, list[Token]]:
        """Back to the line's start, feed a stand-in for it, and resume after it.

        Returns the parser and whether the next token starts a new line (no stand-in was fed,
        so the line and its newline are skipped)."""
        start = line_ctr.char_pos
        nl = self.text.find("\n", max(err_pos, start))
        if nl < 0:
            nl = len(self.text)
        line_text = self.text[start:nl]
        line_no = line_ctr.line
        ip = _snapshot(line_ip)
        fed = self._stand_in(ip, line_text, line_no, line_ctr.column)
        if fed is None:
            ip = _snapshot(line_ip)
            m = _BLANK.match(self.text, nl)
            resume = m.end() if m else nl
        else:
            resume = nl
        ctr = copy(line_ctr)
        ctr.feed(self.text[start:resume])
        state.line_ctr = ctr
        return ip, fed is None, fed or []

    def _stand_in(self, ip: Any, line: str, line_no: int, col: int) -> list[Token] | None:
        """Feed tokens that parse in the line's place; None when no stand-in fits."""
        m = _LINE_KIND.match(line)
        kind = m.lastgroup if m else None
        if m and m.group("step") is not None:
            kind = "step"
        names: list[tuple[str, str]]
        if kind == "end":
            names = [("END", "end")]
        elif kind == "elif":
            names = [("ELSE", "else"), ("IF", "if"), ("TRUE", "true"), ("THEN", "then")]
        elif kind == "else":
            names = [("ELSE", "else")]
        elif kind == "if":
            names = [("IF", "if"), ("TRUE", "true"), ("THEN", "then")]
        elif kind == "repeat":
            names = [("REPEAT", "repeat"), ("UP", "up"), ("TO", "to")]
            names += [("NUMBER", "1"), ("TIMES", "times")]
        elif kind == "until":
            names = [("UNTIL", "until"), ("TRUE", "true")]
        elif kind in ("workflow", "wname") and m is not None:
            wname = m.group("wname") or INVALID
            names = [("WORKFLOW", "workflow"), ("NAME", wname), ("LPAR", "("), ("RPAR", ")")]
            self.broken.add(line_no)
        elif kind == "return":
            names = [("RETURN", "return")]
        elif kind == "step" and m is not None:
            names = [("NAME", m.group("step")), ("EQUAL", "=")]
            if _FOR_BLOCK.match(m.group("rhs") or ""):
                names += [("FOR", "for"), ("EACH", "each"), ("NAME", INVALID)]
                names += [("IN", "in"), ("NAME", INVALID)]
            else:
                names += [("NAME", INVALID)]
        else:
            return None
        toks = [
            Token(t, v, 0, line_no, col, line_no, col + len(line.rstrip()), 0) for t, v in names
        ]
        try:
            for t in toks:
                ip.feed_token(t)
        except UnexpectedToken:
            return None
        return toks

    def _track_blocks(self, toks: list[Token]) -> None:
        """Keep the stack of open blocks, to name the one a missing `end` leaves open."""
        types = [t.type for t in toks]
        if not types:
            return
        first = types[0]
        line = toks[0].line or 0
        if first in ("WORKFLOW", "IF", "REPEAT"):
            self.blocks.append((str(toks[0]), line))
        elif first == "NAME" and "FOR" in types and "COLON" not in types:
            self.blocks.append(("for each", line))
        elif first in ("END", "UNTIL") and self.blocks:
            self.blocks.pop()

    def _finish(self, ip: Any) -> A.Module:
        """Close every block left open at the end of the file, then build the tree."""
        last_line = self.text.count("\n")
        span = A.Span(line=last_line, column=1, end_line=last_line, end_column=1)
        for _ in range(200):
            try:
                module: A.Module = ip.feed_eof()
                return module
            except UnexpectedToken:
                pass
            kind, opened = self.blocks.pop() if self.blocks else ("block", 0)
            closer = "until true" if kind == "repeat" else "end"
            word = closer.split()[0]
            msg = f"the `{kind}` opened at line {opened} is never closed; expected `{word}`"
            self.diags.append(
                make("E002", msg, span, file=self.file, hint=f"add `{closer.split()[0]}`")
            )
            names = [("UNTIL", "until"), ("TRUE", "true")] if kind == "repeat" else [("END", "end")]
            names.append(("_NL", "\n"))
            try:
                for t, v in names:
                    ip.feed_token(Token(t, v, 0, last_line, 1, last_line, 1, 0))
            except UnexpectedToken:
                break
        return A.new(
            A.Module,
        )


def _hint(tok: Token, expected: set[str]) -> str | None:
    if expected == {"THEN"} or ("THEN" in expected and tok.type == "_NL"):
        return "end the condition with `then`"
    if tok.type == "EQUAL" and "__ANON_0" in expected:
        return "compare with `==` (a single `=` binds a name)"
    if tok.type == "NAME" and str(tok) in ("elif", "elsif", "elseif"):
        return "write `else if`"
    if tok.type == "_NL" and expected & {"NAME", "STRING", "NUMBER"}:
        return "the line ends too early: a value is missing"
    return None
