"""Property: random syntax trees print with the formatter and parse back to equal trees, and
formatting is idempotent (format(parse(format(t))) == format(t))."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treadle.compiler import ast as A
from treadle.compiler.formatter import format_module
from treadle.compiler.parsing import parse
from treadle.grammar import grammar_text
from treadle.stdlib_ops.registry import PREPOSITIONS

KEYWORDS = set(re.findall(r'"([a-z]+)"', grammar_text()))

# small pools keep generation fast; keyword-like names (`endx`, `iff`, `_if`) probe the lexer
NAME_POOL = ["a", "x1", "draft", "endx", "iff", "_if", "withx", "fromage", "tru", "n_2", "q"]
assert not set(NAME_POOL) & KEYWORDS
names = st.sampled_from(NAME_POOL)
paths = st.lists(names, min_size=1, max_size=3).map(tuple)
comment = st.sampled_from(["#", "# note", "#x  y", '# "quoted" # twice', "# end"])
comments = st.lists(comment, max_size=2).map(tuple)
trailing = st.none() | comment

text_chunk = st.text(alphabet=st.sampled_from(list('ab {}"\\\n\t#é\r')), min_size=1, max_size=6)


@st.composite
def strings(draw: st.DrawFn) -> A.Str:
    parts: list[str | A.Interp] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            chunk = draw(text_chunk)
            if parts and isinstance(parts[-1], str):
                parts[-1] += chunk
            else:
                parts.append(chunk)
        else:
            parts.append(A.Interp(path=draw(paths)))
    return A.Str(parts=tuple(parts), block=draw(st.booleans()))


numbers = st.integers(0, 10**6).map(lambda v: A.Num(value=v)) | st.floats(
    0, 1e6, allow_nan=False, allow_infinity=False
).map(lambda v: A.Num(value=v))

leaves = (
    paths.map(lambda p: A.Name(path=p))
    | strings()
    | numbers
    | st.booleans().map(lambda b: A.Bool(value=b))
    | st.just(A.Null())
    | st.sampled_from(["p.txt", "prompts/a b.md"]).map(lambda p: A.PromptFile(path=p))
)

keys = st.sampled_from(["type", "a b", 'say "hi"', "{x}", "é", "", "line\nbreak"])

BIN_OPS = [
    "and",
    "or",
    "or else",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "is",
    "is not",
    "contains",
    "starts with",
    "ends with",
    "+",
    "-",
    "*",
    "/",
]


def _extend(children: st.SearchStrategy[A.Expr]) -> st.SearchStrategy[A.Expr]:
    return (
        st.lists(children, max_size=3).map(lambda xs: A.ListLit(items=tuple(xs)))
        | st.lists(st.tuples(keys, children), max_size=3).map(
            lambda kv: A.ObjectLit(pairs=tuple(A.Pair(key=k, value=v) for k, v in kv))
        )
        | st.tuples(st.sampled_from(["not", "-"]), children).map(
            lambda t: A.UnaryOp(op=t[0], operand=t[1])
        )
        | st.tuples(st.sampled_from(BIN_OPS), children, children).map(
            lambda t: A.BinaryOp(op=t[0], left=t[1], right=t[2])
        )
    )


exprs = st.recursive(leaves, _extend, max_leaves=4)


@st.composite
def commands(draw: st.DrawFn) -> A.Command:
    terms = tuple(draw(st.lists(exprs, min_size=1, max_size=3)))
    args = tuple(
        A.Arg(prep=p, value=v)
        for p, v in draw(st.lists(st.tuples(st.sampled_from(PREPOSITIONS), exprs), max_size=2))
    )
    options = tuple(
        A.Option(name=n, value=v) for n, v in draw(st.lists(st.tuples(names, exprs), max_size=2))
    )
    return A.Command(terms=terms, args=args, options=options)


def _statements(depth: int) -> st.SearchStrategy[A.Statement]:
    body = st.lists(statements(depth - 1), max_size=2).map(tuple) if depth > 0 else st.just(())
    for_each = st.builds(
        A.ForEach, var=names, over=exprs, command=commands(), body=st.none()
    ) | st.builds(
        A.ForEach, var=names, over=exprs, command=st.none(), body=body, end_comments=comments
    )
    step = st.builds(
        A.Step, name=names, value=commands() | for_each, comments=comments, trailing=trailing
    )
    ret = st.builds(A.Return, value=st.none() | exprs, comments=comments, trailing=trailing)
    if depth == 0:
        return step | ret

    @st.composite
    def ifs(draw: st.DrawFn) -> A.If:
        arms = [A.Arm(cond=draw(exprs), body=draw(body), end_comments=draw(comments))]
        for _ in range(draw(st.integers(0, 2))):
            arms.append(
                A.Arm(
                    cond=draw(exprs),
                    body=draw(body),
                    trailing=draw(trailing),
                    end_comments=draw(comments),
                )
            )
        if draw(st.booleans()):
            arms.append(
                A.Arm(
                    cond=None,
                    body=draw(body),
                    trailing=draw(trailing),
                    end_comments=draw(comments),
                )
            )
        return A.If(arms=tuple(arms), comments=draw(comments), trailing=draw(trailing))

    repeat = st.builds(
        A.Repeat,
        bound=st.none() | exprs,
        body=body,
        until=exprs,
        comments=comments,
        trailing=trailing,
        end_comments=comments,
    )
    return step | ret | ifs() | repeat


_STATEMENTS: dict[int, st.SearchStrategy[A.Statement]] = {}


def statements(depth: int) -> st.SearchStrategy[A.Statement]:
    if depth not in _STATEMENTS:
        _STATEMENTS[depth] = _statements(depth)
    return _STATEMENTS[depth]


scalar_types = st.sampled_from(["text", "number", "code", "x1"]).map(lambda n: A.TypeRef(name=n))
types = scalar_types | scalar_types.map(lambda t: A.TypeRef(name="list", item=t))
params = st.lists(st.builds(A.Param, name=names, type=types), max_size=3).map(tuple)
inputs = st.lists(
    st.builds(A.Param, name=names, type=types, default=st.none() | exprs), max_size=3
).map(tuple)
workflows = st.builds(
    A.Workflow,
    name=names,
    inputs=inputs,
    outputs=params,
    body=st.lists(statements(2), max_size=3).map(tuple),
    comments=comments,
    trailing=trailing,
    end_comments=comments,
)
uses = st.builds(
    A.Use,
    path=st.sampled_from(["lib.flow", "a/b.flow", "../x_y.flow"]),
    comments=comments,
    trailing=trailing,
)
modules = st.builds(
    A.Module,
    items=st.lists(uses | workflows, max_size=2).map(tuple),
    end_comments=comments,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(modules)
def test_format_then_parse_gives_the_same_tree(module: A.Module) -> None:
    text = format_module(module)
    parsed, diags = parse(text)
    assert diags == [], (text, diags)
    assert A.without_spans(parsed) == A.without_spans(module), text


@SETTINGS
@given(modules)
def test_formatting_is_idempotent(module: A.Module) -> None:
    once = format_module(module)
    parsed, _ = parse(once)
    assert format_module(parsed) == once
