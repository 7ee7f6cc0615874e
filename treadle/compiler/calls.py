"""Calls: a step's words matched to an operator (or a workflow) and its arguments to parameters.

`write code for problem with entry_point e` reads as the words `write`, `code`, one preposition
argument and one option. The longest run of leading words that names an operator or workflow
is the callee (`write code`); one more term is the subject. Prepositions, options and their
types then come from the operator's signature in the registry.

Workflows are called like operators. Their inputs bind simply: the subject, or the one
preposition argument, gives the first input (`solve_math for problem`, `verify n`); any input
can be given by name with `with NAME VALUE`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from treadle.compiler import ast as A
from treadle.compiler.diagnostics import closest, did_you_mean
from treadle.compiler.exprs import ExprLowerer, describe_type, list_names
from treadle.compiler.ir_nodes import ir_node
from treadle.compiler.scope import Env
from treadle.runtime import ir
from treadle.runtime.expr import render
from treadle.runtime.ir import SourceSpan
from treadle.runtime.types import ANY, NUMBER, NumberRange, Type, list_of, record

#: options every step takes, applied by the scheduler (`Step.timeout_s`, `.retries`, `.samples`)
COMMON = {"timeout", "retries", "samples"}


@dataclasses.dataclass(frozen=True)
class WorkflowSig:
    """What a caller needs of a workflow: its program key, inputs and outputs."""

    name: str
    key: str
    inputs: tuple[tuple[str, Type], ...]
    outputs: tuple[tuple[str, Type], ...]
    #: the inputs a call may leave out, with the constant each then gets
    defaults: Mapping[str, ir.Const] = dataclasses.field(default_factory=dict)

    @property
    def output_type(self) -> Type:
        if len(self.outputs) == 1:
            return self.outputs[0][1]
        return record(self.name, dict(self.outputs))


@dataclasses.dataclass
class Lowered:
    """A step's right-hand side: the node it needs (if any), and the value the name gets."""

    node: ir.Step | ir.Call | None
    value: ir.Expr
    type: Type
    #: the callee is unknown: reads of the name stay quiet (the error is reported once)
    quiet: bool = False


def split_words(terms: tuple[A.Expr, ...]) -> list[str]:
    """The leading terms that are names (candidates for an operator's name; a dotted name such
    as `t.sleep` counts as one word, so operators may be namespaced)."""
    words = []
    for t in terms:
        if not isinstance(t, A.Name):
            break
        words.append(".".join(t.path))
    return words


class CallLowerer:
    def __init__(
        self,
        exprs: ExprLowerer,
        operators: Mapping[str, Any],
        workflows: Mapping[str, WorkflowSig],
    ) -> None:
        self.exprs = exprs
        self.operators = operators
        self.workflows = workflows

    def callable_names(self) -> list[str]:
        return [*self.operators, *self.workflows]

    def find(self, words: list[str]) -> tuple[str, int] | None:
        """The longest run of leading words naming an operator or workflow, and its length."""
        for k in range(len(words), 0, -1):
            name = " ".join(words[:k])
            if name in self.operators or name in self.workflows:
                return name, k
        return None

    # ------------------------------------------------------------ steps

    def lower(self, cmd: A.Command, env: Env, node_id: str, name: str, span: SourceSpan) -> Lowered:
        words = split_words(cmd.terms)
        plain = not cmd.args and not cmd.options and len(cmd.terms) == 1
        if plain and not (words and words[0] not in env and self.find(words)):
            # a value: `answer = checked.value`, `total = a + b`
            value, t = self.exprs.lower(cmd.terms[0], env)
            return Lowered(None, value, t)
        found = self.find(words)
        if found is None:
            return self._unknown(cmd, env, words)
        callee, k = found
        rest = cmd.terms[k:]
        fixed = self._misspelt_prep(callee, k, cmd, env)
        if fixed is not None:
            return self.lower(fixed, env, node_id, name, span)
        subject: A.Expr | None = rest[0] if rest else None
        if len(rest) > 1:
            self.exprs.error(
                "E207",
                f"`{callee}` takes at most one subject before its prepositions; "
                f"got {len(rest)} values",
                _cover(rest),
                hint="put the other values after prepositions, or join words into a string",
            )
        if callee in self.workflows:
            return self._call(callee, subject, cmd, env, node_id, name, span)
        return self._step(callee, subject, cmd, env, node_id, name, span)

    def _misspelt_prep(self, callee: str, k: int, cmd: A.Command, env: Env) -> A.Command | None:
        """`revise draft usin r.feedback`: a word after the subject that is no value but close
        to one of the operator's prepositions is reported once (E202, did you mean), and the
        command read as if it were spelt right, so no missing-argument error follows."""
        op = self.operators.get(callee) if callee not in self.workflows else None
        if op is None:
            return None
        preps = [p.prep for p in op.signature.params if p.prep]
        rest = cmd.terms[k:]
        for i, t in enumerate(rest[1:-1], start=1):
            if not (isinstance(t, A.Name) and len(t.path) == 1 and t.path[0] not in env):
                continue
            prep = closest(t.path[0], preps)
            if prep is None:
                continue
            self.exprs.error(
                "E202",
                f"`{t.path[0]}` is not a preposition of `{callee}`",
                t.span,
                hint=f"did you mean `{prep}`?",
            )
            value = rest[i + 1]
            arg = A.new(A.Arg, prep=prep, value=value, span=_cover((t, value)))
            terms = (*cmd.terms[: k + i], *rest[i + 2 :])
            return A.new(A.Command, terms=terms, args=(arg, *cmd.args), options=cmd.options,
                         span=cmd.span)  # fmt: skip
        return None

    def _unknown(self, cmd: A.Command, env: Env, words: list[str]) -> Lowered:
        head = cmd.terms[0]
        shown = words[0] if words else None
        if shown is None:
            self.exprs.error(
                "E201",
                "expected an operator name before the arguments",
                head.span,
                hint="a step reads `NAME = OPERATOR [SUBJECT] {PREPOSITION VALUE}`",
            )
        else:
            names = self.callable_names()
            two = " ".join(words[:2])
            hint = did_you_mean(two, names) if len(words) > 1 else None
            span = head.span
            if hint is not None:  # both words misspell a two-word name: say both
                shown, span = two, _cover(cmd.terms[:2])
            hint = hint or did_you_mean(shown, names)
            if hint is None and shown in env:
                hint = f"`{shown}` is a value; an operator must come first"
            self.exprs.error("E201", f"unknown operator `{shown}`", span, hint=hint)
        for t in cmd.terms[1:]:
            if isinstance(t, A.Name) and len(t.path) == 1 and t.path[0] not in env:
                continue  # a word of the operator's name (`extract numbr`), not a value
            self.exprs.lower(t, env)
        for a in cmd.args:
            self.exprs.lower(a.value, env)
        for o in cmd.options:
            self.exprs.lower(o.value, env)
        return Lowered(None, ir_node(ir.Const, value=None), ANY, quiet=True)

    # ------------------------------------------------------------ operators

    def _step(
        self,
        op_name: str,
        subject: A.Expr | None,
        cmd: A.Command,
        env: Env,
        node_id: str,
        name: str,
        span: SourceSpan,
    ) -> Lowered:
        sig = self.operators[op_name].signature
        args: dict[str, ir.Expr] = {}
        types: dict[str, Type] = {}
        given: set[str] = set()
        if subject is not None:
            p = sig.subject
            if p is None:
                preps = [f"`{q.prep}`" for q in sig.params if q.prep]
                self.exprs.error(
                    "E207",
                    f"`{op_name}` takes no subject",
                    subject.span,
                    hint=(f"give it after a preposition: {', '.join(preps)}" if preps else None),
                )
                self.exprs.lower(subject, env)
            else:
                args[p.name], types[p.name] = self._typed(
                    subject, p.type, env, f"the subject of `{op_name}`"
                )
                given.add(p.name)
        for a in cmd.args:
            p = sig.by_prep(a.prep)
            if p is None:
                self.exprs.error(
                    "E202",
                    f"`{op_name}` takes no `{a.prep}` argument",
                    a.span,
                    hint=f"`{op_name}` takes {_takes(sig)}",
                )
                self.exprs.lower(a.value, env)
                continue
            if p.name in given:
                self.exprs.error("E204", f"`{a.prep}` is given twice", a.span)
            given.add(p.name)
            args[p.name], types[p.name] = self._typed(a.value, p.type, env, f"`{op_name} {a.prep}`")
            self._in_range(a.value, getattr(p, "range", None), f"`{op_name} {a.prep}`", "E301")
        for p in sig.params:
            if p.required and p.name not in given:
                how = f"`{p.prep} {p.name.upper()}`" if p.prep else f"a subject ({p.name})"
                self.exprs.error(
                    "E203",
                    f"`{op_name}` needs {how}",
                    _cover(cmd.terms),
                    hint=f"write `{op_name} {_usage(sig)}`",
                )
        options: dict[str, ir.Expr] = {}
        timeout: float | None = None
        retries: int | None = None
        samples: int | None = None
        seen: set[str] = set()
        for o in cmd.options:
            if o.name in seen:
                self.exprs.error("E204", f"option `{o.name}` is given twice", o.span)
            seen.add(o.name)
            opt = sig.option(o.name)
            if opt is None:
                names = [x.name for x in sig.options] + sorted(COMMON)
                self.exprs.error(
                    "E205",
                    f"`{op_name}` has no option `{o.name}`",
                    o.span,
                    hint=did_you_mean(o.name, names) or f"its options: {list_names(names)}",
                )
                self.exprs.lower(o.value, env)
                continue
            if o.name in COMMON:
                c = self._constant_number(o)
                if o.name == "timeout":
                    timeout = c
                elif c is not None and o.name == "retries":
                    retries = int(c)
                elif c is not None:
                    samples = int(c)
                continue
            what = f"option `{o.name}`"
            options[o.name] = self._value(o.value, opt.type, env, what, code="E206")
            self._in_range(o.value, getattr(opt, "range", None), what, "E206")
        node = ir_node(
            ir.Step,
            id=node_id,
            name=name,
            span=span,
            op=op_name,
            args=args,
            options=options,
            timeout_s=timeout,
            retries=retries,
            samples=samples,
        )
        out = _result_type(sig, types)
        out = list_of(out) if samples is not None else out
        return Lowered(node, ir_node(ir.Ref, name=node_id), out)

    def _constant_number(self, o: A.Option) -> float | None:
        v = o.value
        whole = o.name != "timeout"
        least = 1 if o.name == "samples" else 0
        if isinstance(v, A.Num) and v.value >= least and (not whole or v.value == int(v.value)):
            return float(v.value)
        want = {
            "timeout": "a number of seconds",
            "retries": "a whole number",
            "samples": "a whole number from 1",
        }[o.name]
        self.exprs.error("E206", f"option `{o.name}` must be {want} written as a constant", v.span)
        return None

    def _in_range(self, e: A.Expr, bounds: NumberRange | None, what: str, code: str) -> None:
        """A constant number outside the parameter's declared bounds (which the operator
        would refuse at run time) is an error here; computed numbers are checked at run time."""
        value = _constant_number(e)
        if bounds is not None and value is not None and not bounds.admits(value):
            self.exprs.error(code, f"{what} must be {bounds}, got {render(value)}", e.span)

    def _value(self, e: A.Expr, want: Type, env: Env, what: str, *, code: str = "E301") -> ir.Expr:
        return self._typed(e, want, env, what, code=code)[0]

    def _typed(
        self, e: A.Expr, want: Type, env: Env, what: str, *, code: str = "E301"
    ) -> tuple[ir.Expr, Type]:
        """Lower a value and check it fits `want`; choice words become constants. The value
        and its type."""
        if want.kind == "choice" and isinstance(e, A.Name) and len(e.path) == 1:
            word = e.path[0]
            if word in want.choices:
                return ir_node(ir.Const, value=word), want
            if word not in env:
                self.exprs.error(
                    "E208",
                    f"{what} is one of {list_names(want.choices)}, not `{word}`",
                    e.span,
                    hint=did_you_mean(word, want.choices),
                )
                return ir_node(ir.Const, value=None), ANY
        x, t = self.exprs.lower(e, env)
        if not want.accepts(t):
            self.exprs.error(
                code,
                f"{what} expects {describe_type(want)}, got {describe_type(t)}",
                e.span,
                hint=_convert_hint(want, t),
            )
        return x, t

    # ------------------------------------------------------------ workflows

    def _call(
        self,
        wf_name: str,
        subject: A.Expr | None,
        cmd: A.Command,
        env: Env,
        node_id: str,
        name: str,
        span: SourceSpan,
    ) -> Lowered:
        sig = self.workflows[wf_name]
        inputs = dict(sig.inputs)
        first = sig.inputs[0][0] if sig.inputs else None
        given: dict[str, A.Expr] = {}
        positional = ([subject] if subject is not None else []) + [a.value for a in cmd.args]
        if len(positional) > 1 or (positional and first is None):
            self.exprs.error(
                "E202",
                f"workflow `{wf_name}` takes its first input as the subject or after one "
                f"preposition; got {len(positional)} values",
                _cover(tuple(positional)),
                hint=f"give other inputs by name: `with {_rest_inputs(sig)}`",
            )
        elif positional and first is not None:
            given[first] = positional[0]
        for o in cmd.options:
            if o.name not in inputs:
                self.exprs.error(
                    "E205",
                    f"workflow `{wf_name}` has no input `{o.name}`",
                    o.span,
                    hint=did_you_mean(o.name, inputs) or f"its inputs: {list_names(inputs)}",
                )
                continue
            if o.name in given:
                self.exprs.error("E204", f"input `{o.name}` is given twice", o.span)
            given[o.name] = o.value
        args: dict[str, ir.Expr] = {}
        for n, t in sig.inputs:
            if n in given:
                args[n] = self._value(given[n], t, env, f"input `{n}` of `{wf_name}`")
            elif n in sig.defaults:
                args[n] = sig.defaults[n]
            else:
                self.exprs.error(
                    "E203",
                    f"workflow `{wf_name}` needs its input `{n}`",
                    _cover(cmd.terms),
                    hint=f"add `with {n} VALUE`",
                )
        node = ir_node(ir.Call, id=node_id, name=name, span=span, workflow=sig.key, args=args)
        if len(sig.outputs) == 1:
            return Lowered(
                node, ir_node(ir.Ref, name=node_id, path=(sig.outputs[0][0],)), sig.output_type
            )
        return Lowered(node, ir_node(ir.Ref, name=node_id), sig.output_type)


def _result_type(sig: Any, types: Mapping[str, Type]) -> Type:
    """A step's value type: the signature's output, or for an operator whose value is one of
    a list argument's items (`vote`), that argument's item type."""
    item_of = getattr(sig, "item_of", None)
    given = types.get(item_of) if item_of else None
    if given is not None and given.kind == "list" and given.item is not None:
        return given.item
    return sig.output


def _constant_number(e: A.Expr) -> float | None:
    if isinstance(e, A.Num):
        return float(e.value)
    if isinstance(e, A.UnaryOp) and e.op == "-" and isinstance(e.operand, A.Num):
        return -float(e.operand.value)
    return None


def _cover(exprs: tuple[A.Expr, ...] | list[A.Expr]) -> SourceSpan:
    if not exprs:
        return A.NO_SPAN
    a, b = exprs[0].span, exprs[-1].span
    return SourceSpan(line=a.line, column=a.column, end_line=b.end_line, end_column=b.end_column)


def _usage(sig: Any) -> str:
    parts = []
    for p in sig.params:
        word = p.name.upper()
        part = word if p.prep is None else f"{p.prep} {word}"
        parts.append(part if p.required else f"[{part}]")
    return " ".join(parts)


def _takes(sig: Any) -> str:
    parts = [f"`{p.prep}` ({p.name})" if p.prep else f"a subject ({p.name})" for p in sig.params]
    return ", ".join(parts) if parts else "no arguments"


def _rest_inputs(sig: WorkflowSig) -> str:
    return ", ".join(f"{n} VALUE" for n, _ in sig.inputs[1:]) or "NAME VALUE"


def _convert_hint(want: Type, got: Type) -> str | None:
    if want.kind == "number" and got.kind in ("text", "code"):
        return "turn text into a number with `extract number from VALUE`"
    if want.kind == "list" and got.kind != "list":
        return "wrap a single value in a list: `[VALUE]`"
    if got.kind == "record":
        fields = [n for n, _ in got.fields]
        if fields:
            return f"pick a field: {list_names(fields)}"
    if want.kind == "number" and got == NUMBER:
        return None
    return None
