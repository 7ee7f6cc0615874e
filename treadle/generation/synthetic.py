"""Well-typed flows composed from the operator registry, deterministic from a random source.

Every flow written here compiles (steps, values, `if`, `repeat`, `for each`, workflow calls,
`samples`, options, templates over names and record fields) and comes with inputs of its
declared types. Two users: the soundness property test (tests/compiler/test_soundness.py, with
hypothesis drawing the random source), which runs each flow on a scripted model and requires
that no run fails, and synthetic SFT data for training, which needs (task, flow) pairs that
compile by construction (`synthetic_flows(seed, n)` is reproducible from its seed).

A value goes where the checker accepts it (`Type.accepts`) with one restriction: a `json`
value (the dynamic type, whose run-time shape the checker cannot know) goes only where any
value is taken (`json`, or text, which renders it). What an operator needs of a value beyond
its type (a JSON Schema, a non-empty list of candidates, a sane memory limit) is met with
constants; numeric options get constants within their declared bounds.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Mapping
from typing import Any

from treadle.compiler.exprs import join_types
from treadle.runtime.expr import render
from treadle.runtime.types import (
    ANY,
    BOOLEAN,
    CODE,
    JSON,
    NUMBER,
    TEXT,
    NumberRange,
    Type,
    list_of,
)
from treadle.stdlib_ops.registry import Operator, operators

#: the types an input or output may be declared with, and a sample value of each
_INPUT_TYPES: tuple[tuple[Type, Any], ...] = (
    (TEXT, "Solve: 6 * 7. Answer: 42"),
    (NUMBER, 3),
    (BOOLEAN, True),
    (CODE, "def f(x):\n    return x\n"),
    (JSON, {"value": 1, "items": [1, 2]}),
    (list_of(TEXT), ["first item", "second item"]),
    (list_of(NUMBER), [1, 2.5]),
)
_INPUT_NAMES = ("problem", "question", "count", "flag", "snippet", "data", "items", "scores")
_TEXTS = ("Summarise this.", "Answer: 7", "Solve step by step.", "", "a {{literal}} brace")

#: arguments and options whose operator needs more of the value than its type: the constants
#: that meet it (None: never written, the default is kept)
_CONSTANTS: dict[tuple[str, str], tuple[str, ...] | None] = {
    # null is outside the static types (docs/language.md): `extract number` / `extract json`
    # give it for text without a number / JSON value, so they read text that has one
    ("extract number", "text"): ('"Answer: 7"', '"The total is 12.5 apples."'),
    ("extract json", "text"): ('"Result: {\\"a\\": 1}"', '"[1, 2]"'),
    ("validate", "json_schema"): ('"{\\"type\\": \\"object\\"}"', '"{\\"type\\": \\"string\\"}"'),
    ("*", "model"): None,  # a model spec: the run's model is the one under test
    ("run", "files"): None,
    ("run", "memory_mb"): None,
    ("test", "memory_mb"): None,
    ("run", "network"): ("false",),
    ("run", "time_limit"): ("5", "10"),
    ("test", "time_limit"): ("5", "10"),
    ("test", "per_test_limit"): ("1", "3"),
    ("program", "time_limit"): ("5", "10"),
    ("program", "attempts"): ("1", "2"),
}
#: list parameters that must not be empty
_LIST_NONEMPTY = {("ensemble", "candidates")}


@dataclasses.dataclass(frozen=True)
class SyntheticFlow:
    """A flow's source, inputs of its declared types, and the operators it uses."""

    source: str
    inputs: dict[str, Any]
    operators: tuple[str, ...]


@dataclasses.dataclass
class _Value:
    text: str  # how the value is written in the flow: a name, `r.field`
    type: Type
    #: the name this value reads (for the unused-value bookkeeping); None for a field
    name: str | None = None


class _Writer:
    def __init__(self, rng: random.Random, ops: Mapping[str, Operator]) -> None:
        self.rng = rng
        self.ops = ops
        self.lines: list[str] = []
        self.depth = 1
        self.counter = 0
        self.used_ops: list[str] = []
        self.read: set[str] = set()

    # ------------------------------------------------------------ names and lines

    def fresh(self, prefix: str = "s") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, line: str) -> None:
        self.lines.append("  " * self.depth + line)

    def reads(self, text: str) -> str:
        self.read.add(text.split(".")[0])
        return text

    # ------------------------------------------------------------ values

    def fitting(self, env: list[_Value], want: Type) -> list[_Value]:
        return [v for v in env if fits(want, v.type)]

    def value(
        self, env: list[_Value], want: Type, *, atom: bool = True, depth: int = 0
    ) -> tuple[str, Type]:
        """An expression the checker accepts for `want`, and its type: a value in scope (most
        often), a literal, a template or (where `atom` is false) arithmetic or a comparison."""
        rng = self.rng
        have = self.fitting(env, want)
        if have and rng.random() < 0.7:
            v = rng.choice(have)
            return self.reads(v.text), v.type
        kind = want.kind
        if kind in ("text", "code", "json", "any"):
            if env and rng.random() < 0.5:
                picks = rng.sample(env, k=min(len(env), rng.randint(1, 2)))
                body = " and ".join("{" + self.reads(v.text) + "}" for v in picks)
                return f'"Consider {body}."', TEXT
            return '"' + rng.choice(_TEXTS) + '"', TEXT
        if kind == "number":
            numbers = self.fitting(env, NUMBER)
            if numbers and not atom and rng.random() < 0.5:
                a = self.reads(rng.choice(numbers).text)
                return f"{a} {rng.choice('+-*')} {rng.randint(1, 9)}", NUMBER
            return str(rng.choice((0, 1, 2, 7, 2.5, 100))), NUMBER
        if kind == "boolean":
            numbers = self.fitting(env, NUMBER)
            if numbers and not atom and rng.random() < 0.5:
                a = self.reads(rng.choice(numbers).text)
                op = rng.choice((">", "<=", "==", "is not"))
                return f"{a} {op} {rng.randint(0, 5)}", BOOLEAN
            return rng.choice(("true", "false")), BOOLEAN
        if kind == "choice":
            return rng.choice(want.choices), want
        if kind == "list" and depth < 2:
            item = want.item or ANY
            items = [self.value(env, item, depth=depth + 1) for _ in range(rng.randint(1, 3))]
            written = "[" + ", ".join(x for x, _ in items) + "]"
            return written, list_of(join_types(t for _, t in items))
        return '"fallback"', TEXT

    # ------------------------------------------------------------ steps

    def operator_step(self, env: list[_Value], name: str) -> Type:
        """`name = OP ...` for a random operator; its value's type."""
        words, t = self.command(env)
        self.emit(f"{name} = {words}")
        return t

    def command(self, env: list[_Value]) -> tuple[str, Type]:
        """One call of a random operator (subject, prepositions, options), and the type of
        its value (a list of its output with `samples`)."""
        rng = self.rng
        op_name = rng.choice(sorted(self.ops))
        op = self.ops[op_name]
        sig = op.signature
        self.used_ops.append(op_name)
        parts = [op_name]
        item: Type | None = None
        for p in sig.params:
            if not p.required and rng.random() < 0.5:
                continue
            written, t = self.argument(op_name, p.name, p.type, env)
            parts.append(written if p.prep is None else f"{p.prep} {written}")
            if p.name == sig.item_of and t.kind == "list" and t.item is not None:
                item = t.item  # `vote xs`: one of the items, typed as the checker types it
        options = []
        for o in sig.options:
            if rng.random() < 0.3:
                value = self.option(op_name, o.name, o.type, o.range, env)
                if value is not None:
                    options.append(f"{o.name} {value}")
        out = item if item is not None else sig.output
        if rng.random() < 0.15:
            options.append(f"samples {rng.randint(1, 3)}")
            out = list_of(out)
        if rng.random() < 0.05:
            options.append(f"timeout 60, retries {rng.randint(0, 2)}")
        if options:
            parts.append("with " + ", ".join(options))
        return " ".join(parts), out

    def argument(self, op_name: str, param: str, want: Type, env: list[_Value]) -> tuple[str, Type]:
        """An argument for `param` of `op_name`, and its type."""
        consts = _CONSTANTS.get((op_name, param), ())
        if consts:
            return self.rng.choice(consts), TEXT
        if (op_name, param) in _LIST_NONEMPTY:
            lists = [v for v in env if v.type.kind == "list" and fits(want, v.type)]
            if lists and self.rng.random() < 0.6:
                v = self.rng.choice(lists)
                return self.reads(v.text), v.type
            item = want.item or ANY
            items = [self.value(env, item) for _ in range(self.rng.randint(1, 3))]
            written = "[" + ", ".join(x for x, _ in items) + "]"
            return written, list_of(join_types(t for _, t in items))
        return self.value(env, want)

    def option(
        self, op_name: str, name: str, want: Type, bounds: NumberRange | None, env: list[_Value]
    ) -> str | None:
        consts = _CONSTANTS.get((op_name, name), _CONSTANTS.get(("*", name), ()))
        if consts is None:
            return None
        if consts:
            return self.rng.choice(consts)
        if want.kind == "number":
            return self.rng.choice(number_constants(bounds))
        return self.value(env, want)[0]

    # ------------------------------------------------------------ statements

    def block(self, env: list[_Value], budget: int) -> None:
        """`budget` statements, each binding a new name into `env` (in place)."""
        rng = self.rng
        for _ in range(budget):
            roll = rng.random()
            if roll < 0.55 or self.depth > 2:
                name = self.fresh()
                self.bind(env, name, self.operator_step(env, name))
            elif roll < 0.7:
                name = self.fresh("v")
                want = rng.choice((TEXT, NUMBER, BOOLEAN))
                expr, t = self.value(env, want, atom=False)
                self.emit(f"{name} = {expr}")
                self.bind(env, name, t)
            elif roll < 0.8:
                self.if_(env)
            elif roll < 0.9:
                self.repeat(env)
            else:
                self.for_each(env)

    def bind(self, env: list[_Value], name: str, t: Type) -> None:
        env[:] = [v for v in env if v.text != name and not v.text.startswith(name + ".")]
        env.append(_Value(name, t, name))
        if t.kind == "record":
            env.extend(_Value(f"{name}.{f}", ft) for f, ft in t.fields)

    def condition(self, env: list[_Value]) -> str:
        return self.value(env, BOOLEAN, atom=False)[0]

    def if_(self, env: list[_Value]) -> None:
        """`if COND then NAME = OP ... else NAME = VALUE end`; after it, NAME has the join of
        the arms' types (as the checker joins them)."""
        name = self.fresh("b")
        self.emit(f"if {self.condition(env)} then")
        self.depth += 1
        t = self.operator_step(list(env), name)
        self.depth -= 1
        self.emit("else")
        self.depth += 1
        other, t2 = self.value(env, t)
        self.emit(f"{name} = {other}")
        self.depth -= 1
        self.emit("end")
        self.bind(env, name, join_types([t, t2]))

    def repeat(self, env: list[_Value]) -> None:
        """`repeat up to N times` with a step and a carried name rebound to a value of its
        own type, `until COND`."""
        carried = [v for v in env if v.name is not None and v.type.kind in ("text", "number")]
        self.emit(f"repeat up to {self.rng.randint(1, 3)} times")
        self.depth += 1
        name = self.fresh()
        self.bind(env, name, self.operator_step(env, name))
        if carried:
            c = self.rng.choice(carried)
            self.read.add(c.name or "")
            again, _ = self.value([v for v in env if v.type == c.type], c.type)
            self.emit(f"{c.name} = {again}")
        cond = self.condition(env)
        self.depth -= 1
        self.emit(f"until {cond}")

    def for_each(self, env: list[_Value]) -> None:
        lists = [v for v in env if v.type.kind == "list" and v.type.item is not None]
        lists = [v for v in lists if v.type.item is not None and v.type.item.kind != "json"]
        if not lists:
            name = self.fresh()
            self.bind(env, name, self.operator_step(env, name))
            return
        over = self.rng.choice(lists)
        var = self.fresh("it")
        name = self.fresh()
        item = _Value(var, over.type.item or ANY, var)
        self.read.add(var)
        words, out = self.command([item])
        self.emit(f"{name} = for each {var} in {self.reads(over.text)}: {words}")
        self.bind(env, name, list_of(out))


def fits(want: Type, got: Type) -> bool:
    """Where the generator sends a value: where the checker accepts it, and a `json` value
    only where any value is taken (json, or text, which renders it)."""
    if not want.accepts(got):
        return False
    if got.kind in ("json", "any"):
        return want.kind in ("json", "any", "text", "code")
    if got.kind == "list" and want.kind == "list":
        return fits(want.item or ANY, got.item or ANY)
    return True


def number_constants(bounds: NumberRange | None) -> tuple[str, ...]:
    """Constants within a numeric option's declared bounds: its bounds (just inside an open
    one) and a value between them; whole numbers where it takes whole numbers."""
    if bounds is None:
        return ("0", "7")
    step = 1.0 if bounds.whole else 0.5
    low = 0.0 if bounds.low is None else bounds.low + (step if bounds.low_open else 0)
    high = low + 100 if bounds.high is None else bounds.high - (step if bounds.high_open else 0)
    picks = {low, high, (low + high) / 2}
    if bounds.whole:
        picks = {float(int(p)) for p in picks}
    return tuple(render(p) for p in sorted(picks) if bounds.admits(p))


def declarable(t: Type) -> Type:
    """The type an output holding a value of type `t` is declared with (records and words
    have no written type: json and text take them)."""
    if t.kind == "record" or t.kind == "any":
        return JSON
    if t.kind == "choice":
        return TEXT
    if t.kind == "list":
        return list_of(declarable(t.item or ANY))
    return t


def synthetic_flow(
    rng: random.Random, *, steps: int = 4, ops: Mapping[str, Operator] | None = None
) -> SyntheticFlow:
    """One well-typed flow of about `steps` statements (and a helper workflow it calls, now
    and then), its inputs of the declared types, and the operators it uses."""
    ops = dict(ops if ops is not None else operators())
    w = _Writer(rng, ops)
    helper: list[str] = []
    env: list[_Value] = []
    inputs: dict[str, Any] = {}
    declared: list[str] = []
    for name in rng.sample(_INPUT_NAMES, k=rng.randint(1, 3)):
        t, sample = rng.choice(_INPUT_TYPES)
        inputs[name] = sample
        declared.append(f"{name}: {t}")
        w.bind(env, name, t)
    if rng.random() < 0.25:
        helper = _helper(rng, ops)
        name = w.fresh("h")
        first = next((v for v in env if fits(TEXT, v.type)), None)
        arg = w.reads(first.text) if first is not None else '"helper input"'
        w.emit(f"{name} = helper {arg}")
        w.bind(env, name, TEXT)
    w.block(env, steps)
    # the inputs and values nothing read yet are read by the `notes` output (no W801/W802)
    unread = [v for v in env if v.name is not None and v.name not in w.read]
    outputs: list[str] = []
    last = env[-1]
    out_type = declarable(last.type)
    if rng.random() < 0.3 and last.type.kind in ("number", "boolean"):
        out_type = rng.choice((TEXT, JSON))  # a defined conversion at the output
    outputs.append(f"out: {out_type}")
    w.emit(f"out = {w.reads(last.text)}")
    rest = [v for v in unread if v is not last]
    if rest:
        outputs.append("notes: text")
        w.emit('notes = "' + " ".join("{" + v.text + "}" for v in rest) + '"')
    head = f"workflow synthetic({', '.join(declared)}) -> {', '.join(outputs)}"
    source = "\n".join([head, *w.lines, "end", *helper]) + "\n"
    return SyntheticFlow(source=source, inputs=inputs, operators=tuple(dict.fromkeys(w.used_ops)))


def _helper(rng: random.Random, ops: Mapping[str, Operator]) -> list[str]:
    """A small second workflow, `helper(task: text) -> result: text`, for call sites."""
    w = _Writer(rng, ops)
    env = [_Value("task", TEXT, "task")]
    name = w.fresh("hs")
    t = w.operator_step(env, name)
    w.emit(f'result = "{{{name}}} for {{task}}"' if t.kind != "text" else f"result = {name}")
    return ["", "workflow helper(task: text) -> result: text", *w.lines, "end"]


def synthetic_flows(seed: int, n: int, *, steps: int = 4) -> Iterator[SyntheticFlow]:
    """`n` flows, the same for the same seed."""
    rng = random.Random(seed)
    for _ in range(n):
        yield synthetic_flow(rng, steps=steps)
