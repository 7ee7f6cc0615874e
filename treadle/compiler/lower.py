"""Lowering: a checked workflow becomes a Graph IR workflow.

One walk over each workflow's statements does the flow-sensitive checks and builds the graph:
steps become `Step`/`Call` nodes, plain values are inlined as expressions, `if` becomes a
`Branch` whose outputs are the names its arms bind, `repeat` a `Loop` whose body parameters
carry the names bound before it, `for each` a `Map`. Node ids are the workflow's key, the path
of enclosing branches and loops, and the step's name (`solve.if1.then.answer`), so traces and
attribution can name steps; they are unique in the program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treadle.compiler import ast as A
from treadle.compiler.calls import CallLowerer, WorkflowSig
from treadle.compiler.diagnostics import Diagnostic, make
from treadle.compiler.exprs import ExprLowerer, describe_type, join_types
from treadle.compiler.ir_nodes import ir_node
from treadle.compiler.returns import check_returns, normalize
from treadle.compiler.scope import Binding, Definition, Env, ScopeMark
from treadle.runtime import ir
from treadle.runtime.expr import ExprError, evaluate
from treadle.runtime.ir import SourceSpan
from treadle.runtime.types import ANY, BOOLEAN, Type, list_of, parse_type

#: the largest `repeat up to N times` bound the compiler accepts
MAX_ITERATIONS = 1000

_PLACEHOLDER = ir_node(ir.Const, value=None)


def resolve_type(t: A.TypeRef, diags: list[Diagnostic], file: str | None) -> Type:
    try:
        return parse_type(str(t))
    except ValueError:
        bad = t
        while bad.item is not None:
            bad = bad.item
        diags.append(
            make(
                "E303",
                f"unknown type `{bad.name}`",
                bad.span,
                hint="types are text, number, boolean, code, json, or list of T",
                file=file,
            )
        )
        return ANY


def signature(wf: A.Workflow, key: str, diags: list[Diagnostic], file: str | None) -> WorkflowSig:
    """A workflow's interface, checked for duplicate names and unknown types."""
    for group, what in ((wf.inputs, "input"), (wf.outputs, "output")):
        seen: set[str] = set()
        for p in group:
            if p.name in seen:
                diags.append(make("E103", f"duplicate {what} `{p.name}`", p.span, file=file))
            seen.add(p.name)
    inputs = tuple((p.name, resolve_type(p.type, diags, file)) for p in wf.inputs)
    defaults: dict[str, ir.Const] = {}
    for p, (_, t) in zip(wf.inputs, inputs, strict=True):
        if p.default is not None:
            default = _default(p, p.default, t, diags, file)
            if default is not None:
                defaults[p.name] = default
    return WorkflowSig(
        name=wf.name,
        key=key,
        inputs=inputs,
        outputs=tuple((p.name, resolve_type(p.type, [], file)) for p in wf.outputs),
        defaults=defaults,
    )


def _is_constant(e: A.Expr) -> bool:
    """Whether an expression reads nothing (a literal, or lists and objects of literals)."""
    if isinstance(e, A.Name):
        return False
    if isinstance(e, A.Str):
        return all(isinstance(p, str) for p in e.parts)
    if isinstance(e, A.ListLit):
        return all(_is_constant(i) for i in e.items)
    if isinstance(e, A.ObjectLit):
        return all(_is_constant(p.value) for p in e.pairs)
    if isinstance(e, A.UnaryOp):
        return _is_constant(e.operand)
    if isinstance(e, A.BinaryOp):
        return _is_constant(e.left) and _is_constant(e.right)
    return True


def _default(
    p: A.Param, e: A.Expr, t: Type, diags: list[Diagnostic], file: str | None
) -> ir.Const | None:
    """An input's default as the constant a run gets, checked against the input's type."""
    if not _is_constant(e):
        diags.append(
            make(
                "E305",
                f"the default of input `{p.name}` must be a constant",
                e.span,
                hint='write a literal (`3`, `"text"`, `true`, `null`, `[...]`, `{...}`); '
                "an input cannot read another",
                file=file,
            )
        )
        return None
    errors = len(diags)
    lowerer = ExprLowerer(diags, file, on_read=lambda _b: None, callables=lambda: ())
    value, vt = lowerer.lower(e, {})
    if len(diags) > errors:
        return None
    if not t.accepts(vt):
        diags.append(
            make(
                "E301",
                f"input `{p.name}` is declared {t} but its default is {describe_type(vt)}",
                e.span,
                file=file,
            )
        )
        return None
    try:
        return ir_node(ir.Const, value=evaluate(value, _no_names))
    except ExprError as err:
        diags.append(make("E305", f"the default of input `{p.name}`: {err}", e.span, file=file))
        return None


def _no_names(name: str) -> Any:
    raise ExprError(f"a default reads no names (`{name}`)")


@dataclasses.dataclass
class _Graph:
    """A graph under construction: its node id prefix and nodes."""

    prefix: str
    nodes: list[Any] = dataclasses.field(default_factory=list)
    counters: dict[str, int] = dataclasses.field(default_factory=dict)

    def next(self, kind: str) -> str:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return f"{self.prefix}{kind}{self.counters[kind]}"


def assigned_names(body: tuple[A.Statement, ...]) -> list[str]:
    """Names a block binds (through nested `if` and `repeat`), in order of first binding."""
    out: dict[str, None] = {}
    for s in body:
        if isinstance(s, A.Step | A.Invalid) and s.name:
            out.setdefault(s.name)
        elif isinstance(s, A.If):
            for arm in s.arms:
                for n in assigned_names(arm.body):
                    out.setdefault(n)
        elif isinstance(s, A.Repeat):
            for n in assigned_names(s.body):
                out.setdefault(n)
    return list(out)


class WorkflowLowerer:
    """Checks and lowers one workflow."""

    def __init__(
        self,
        wf: A.Workflow,
        sig: WorkflowSig,
        *,
        operators: Mapping[str, Any],
        workflows: Mapping[str, WorkflowSig],
        ids: set[str],
        diags: list[Diagnostic],
        file: str | None,
        folder: Path | None = None,
        scopes: list[ScopeMark] | None = None,
    ) -> None:
        self.wf = wf
        #: where to record the bindings at every statement (an editor's request), or None
        self.scopes = scopes
        self.sig = sig
        self.ids = ids
        self.diags = diags
        self.file = file
        self.defs: list[Definition] = []
        self.params: list[str] = []
        #: a line of this workflow did not parse (unused-warnings would be noise)
        self._invalid = wf.broken or wf.damaged
        self.exprs = ExprLowerer(
            diags,
            file,
            on_read=self._read,
            callables=lambda: [*operators, *workflows],
            quiet_names=wf.broken,
            folder=folder,
        )
        self.calls = CallLowerer(self.exprs, operators, workflows)

    # ------------------------------------------------------------ helpers

    def _read(self, b: Binding) -> None:
        for d in b.defs:
            self.defs[d].used = True

    def _define(self, name: str, span: SourceSpan, kind: str) -> int:
        self.defs.append(Definition(name=name, span=span, kind=kind))
        return len(self.defs) - 1

    def _id(self, g: _Graph, name: str) -> str:
        base = f"{g.prefix}{name}"
        candidate, n = base, 1
        while candidate in self.ids:
            n += 1
            candidate = f"{base}#{n}"
        return candidate

    def _span(self, s: SourceSpan) -> SourceSpan:
        """The syntax tree's span with this file's name, as the IR carries it."""
        return SourceSpan(s.line, s.column, s.end_line, s.end_column, self.file)

    def _param(self, name: str, owner: str) -> str:
        """A graph parameter name that shadows no parameter of an enclosing graph."""
        return f"{name}@{owner}" if name in self.params else name

    def _error(self, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.diags.append(make(code, message, span, hint=hint, file=self.file))

    def _want_bool(self, t: Type, span: SourceSpan, what: str) -> None:
        if t.kind not in ("boolean", "any", "json"):
            self._error("E304", f"{what} must be a boolean, got {describe_type(t)}", span)

    # ------------------------------------------------------------ workflow

    def lower(self) -> ir.Workflow:
        wf, sig = self.wf, self.sig
        env: Env = {}
        for (name, t), p in zip(sig.inputs, wf.inputs, strict=True):
            d = self._define(name, p.span, "input")
            env[name] = Binding(ir_node(ir.Ref, name=name), t, p.span, defs=(d,))
            self.params.append(name)
        self._mark(wf.span.line, wf.span.column, env, after=True)
        errors_before = len(self.diags)
        self.diags.extend(check_returns(wf.body, self.file))
        g = _Graph(prefix=f"{sig.key}.")
        self._block(normalize(wf.body), env, g)
        outputs: dict[str, ir.Expr] = {}
        for (name, t), p in zip(sig.outputs, wf.outputs, strict=True):
            b = env.get(name)
            if b is None:
                if not self._invalid:
                    self._error(
                        "E601",
                        f"output `{name}` is never bound",
                        p.span,
                        hint=f"bind it before `end`: `{name} = ...`",
                    )
                outputs[name] = _PLACEHOLDER
                continue
            self._read(b)
            if b.partial:
                self._error(
                    "E601",
                    f"output `{name}` is not bound on every path",
                    p.span,
                    hint=f"bind `{name}` on every arm of the `if` (add an `else`)",
                )
                outputs[name] = _PLACEHOLDER
                continue
            if not t.accepts(b.type) and not b.quiet:
                self._error(
                    "E301",
                    f"output `{name}` is declared {t} but gets {describe_type(b.type)}",
                    b.span,
                )
            outputs[name] = b.expr
        quiet = any(d.is_error for d in self.diags[errors_before:]) or self._invalid
        for df in self.defs:
            if df.used or quiet:  # unused-warnings are noise next to errors
                continue
            if df.kind == "input":
                self.diags.append(
                    make("W802", f"input `{df.name}` is never used", df.span, file=self.file)
                )
            elif df.kind in ("step", "value"):
                self.diags.append(
                    make(
                        "W801",
                        f"`{df.name}` is never used",
                        df.span,
                        hint="remove the step, or use its value",
                        file=self.file,
                    )
                )
        doc = _doc(wf.comments)
        return ir_node(
            ir.Workflow,
            name=sig.key,
            inputs=tuple(
                ir_node(ir.Field_, name=p.name, type=str(p.type), default=sig.defaults.get(p.name))
                for p in wf.inputs
            ),
            outputs=tuple(ir_node(ir.Field_, name=p.name, type=str(p.type)) for p in wf.outputs),
            graph=ir_node(
                ir.Graph,
                params=tuple(n for n, _ in sig.inputs),
                nodes=tuple(g.nodes),
                outputs=outputs,
            ),
            doc=doc,
        )

    # ------------------------------------------------------------ statements

    def _mark(self, line: int, column: int, env: Env, after: bool = False) -> None:
        if self.scopes is not None:
            self.scopes.append(ScopeMark(line, column, dict(env), after))

    def _block(self, body: tuple[A.Statement, ...], env: Env, g: _Graph) -> None:
        for s in body:
            self._mark(s.span.line, s.span.column, env)
            self._statement(s, env, g)
            self._mark(s.span.end_line, s.span.end_column, env, after=True)

    def _statement(self, s: A.Statement, env: Env, g: _Graph) -> None:
        if isinstance(s, A.Step):
            self._step(s, env, g)
        elif isinstance(s, A.If):
            self._if(s, env, g)
        elif isinstance(s, A.Repeat):
            self._repeat(s, env, g)
        elif isinstance(s, A.Return):
            self._return(s, env)
        elif isinstance(s, A.Invalid):
            self._invalid = True
            if s.name:
                env[s.name] = Binding(_PLACEHOLDER, ANY, s.span, quiet=True)

    def _step(self, s: A.Step, env: Env, g: _Graph) -> None:
        node_id = self._id(g, s.name)
        quiet = False
        if isinstance(s.value, A.ForEach):
            value, t = self._map(s, s.value, env, g, node_id)
            kind = "step"
        else:
            low = self.calls.lower(s.value, env, node_id, s.name, self._span(s.span))
            value, t, quiet = low.value, low.type, low.quiet
            kind = "value"
            if low.node is not None:
                self.ids.add(node_id)
                g.nodes.append(low.node)
                kind = "step"
        d = self._define(s.name, s.span, "invalid" if quiet else kind)
        env[s.name] = Binding(value, t, s.span, defs=(d,), quiet=quiet)

    def _return(self, s: A.Return, env: Env) -> None:
        outs = self.sig.outputs
        if s.value is not None:
            if len(outs) != 1:
                self._error(
                    "E505",
                    f"`return VALUE` needs exactly one output; `{self.sig.name}` has {len(outs)}",
                    s.span,
                    hint="bind the outputs by name, then write `return` alone",
                )
                self.exprs.lower(s.value, env)
            else:
                name, t = outs[0]
                value, vt = self.exprs.lower(s.value, env)
                if not t.accepts(vt):
                    self._error(
                        "E301",
                        f"output `{name}` is declared {t} but `return` gives {describe_type(vt)}",
                        s.value.span,
                    )
                d = self._define(name, s.span, "output")
                env[name] = Binding(value, vt, s.span, defs=(d,))
        for name, _ in outs:
            b = env.get(name)
            if b is None or b.partial:
                if not self._invalid:
                    self._error(
                        "E601",
                        f"`return` leaves output `{name}` unbound",
                        s.span,
                        hint=f"bind `{name}` before this `return`",
                    )
                env[name] = Binding(_PLACEHOLDER, ANY, s.span, quiet=True)
            else:
                self._read(b)

    def _if(self, s: A.If, env: Env, g: _Graph) -> None:
        bid = g.next("if")
        arms: list[tuple[ir.Expr | None, _Graph, Env]] = []
        n_elif = 0
        for i, arm in enumerate(s.arms):
            self._mark(arm.span.line, arm.span.column, env)  # an arm sees none of another's
            cond: ir.Expr | None = None
            if arm.cond is not None:
                cond, t = self.exprs.lower(arm.cond, env)
                self._want_bool(t, arm.cond.span, "an `if` condition")
            if arm.cond is None:
                label = "else"
            elif i == 0:
                label = "then"
            else:
                n_elif += 1
                label = f"elif{n_elif}"
            sub = _Graph(prefix=f"{bid}.{label}.")
            aenv = dict(env)
            self._block(arm.body, aenv, sub)
            arms.append((cond, sub, aenv))
        if s.arms[-1].cond is not None:
            arms.append((None, _Graph(prefix=f"{bid}.else."), dict(env)))
        changed: dict[str, None] = {}
        for _, _, aenv in arms:
            for n, b in aenv.items():
                if env.get(n) is not b:
                    changed.setdefault(n)
        outputs: list[str] = []
        for n in changed:
            bs = [aenv.get(n) for _, _, aenv in arms]
            present = [b for b in bs if b is not None]
            defs = tuple(d for b in present for d in b.defs)
            t = join_types(b.type for b in present if not b.quiet)
            if all(b is not None and not b.partial for b in bs):
                outputs.append(n)
                quiet = all(b.quiet for b in present)
                env[n] = Binding(
                    ir_node(ir.Ref, name=bid, path=(n,)), t, present[0].span, defs, quiet=quiet
                )
            else:
                env[n] = Binding(_PLACEHOLDER, t, present[0].span, defs, partial=True)
        ir_arms = tuple(
            ir_node(
                ir.Arm,
                when=cond,
                body=ir_node(
                    ir.Graph, nodes=tuple(sub.nodes), outputs={n: aenv[n].expr for n in outputs}
                ),
            )
            for cond, sub, aenv in arms
        )
        self.ids.add(bid)
        g.nodes.append(
            ir_node(
                ir.Branch,
                id=bid,
                name="if",
                span=self._span(s.span),
                arms=ir_arms,
                outputs=tuple(outputs),
            )
        )

    def _repeat(self, s: A.Repeat, env: Env, g: _Graph) -> None:
        lid = g.next("repeat")
        max_iters = self._bound(s)
        assigned = assigned_names(s.body)
        carried = [n for n in assigned if n in env and not env[n].partial]
        pnames = {n: self._param(n, lid) for n in carried}
        benv = dict(env)
        turn_defs: dict[str, int] = {}
        for n in carried:
            b = env[n]
            turn_defs[n] = self._define(n, b.span, "param")
            defs = (*b.defs, turn_defs[n])
            benv[n] = Binding(ir_node(ir.Ref, name=pnames[n]), b.type, b.span, defs, quiet=b.quiet)
        sub = _Graph(prefix=f"{lid}.")
        self.params.extend(pnames.values())
        self._block(s.body, benv, sub)
        until, ut = self.exprs.lower(s.until, benv)
        del self.params[len(self.params) - len(pnames) :]
        self._want_bool(ut, s.until.span, "the `until` condition")
        for n, d in turn_defs.items():
            if self.defs[d].used:  # the next turn reads what this turn bound
                self._read(benv[n])
        outputs: dict[str, ir.Expr] = {}
        after: dict[str, Binding] = {}
        for n in assigned:
            nb = benv.get(n)
            if nb is None:
                continue
            if nb.partial:
                after[n] = nb
                continue
            key = pnames.get(n, n)
            outputs[key] = nb.expr
            t = join_types([nb.type, env[n].type]) if n in pnames else nb.type
            defs = nb.defs + (env[n].defs if n in pnames else ())
            after[n] = Binding(
                ir_node(ir.Ref, name=lid, path=(key,)), t, nb.span, defs, quiet=nb.quiet
            )
        outputs["$until"] = until
        self.ids.add(lid)
        g.nodes.append(
            ir_node(
                ir.Loop,
                id=lid,
                name="repeat",
                span=self._span(s.span),
                max_iters=max_iters,
                init={pnames[n]: env[n].expr for n in carried},
                body=ir_node(
                    ir.Graph, params=tuple(pnames.values()), nodes=tuple(sub.nodes), outputs=outputs
                ),
            )
        )
        env.update(after)

    def _bound(self, s: A.Repeat) -> int:
        if s.bound is None:
            self._error(
                "E501",
                "`repeat` needs a bound: every loop must end",
                s.span,
                hint="write `repeat up to N times` with a whole number N",
            )
            return 1
        b = s.bound
        if not isinstance(b, A.Num):
            self._error(
                "E502",
                "the bound of `repeat up to N times` must be a whole-number constant",
                b.span,
                hint="write a number such as `3`; the bound must be known before the run",
            )
            return 1
        if b.value != int(b.value) or not 1 <= b.value <= MAX_ITERATIONS:
            self._error(
                "E502",
                f"the bound of `repeat` must be a whole number from 1 to {MAX_ITERATIONS}, "
                f"not {b.value}",
                b.span,
            )
            return 1
        return int(b.value)

    def _map(
        self, s: A.Step, fe: A.ForEach, env: Env, g: _Graph, node_id: str
    ) -> tuple[ir.Expr, Type]:
        over, ot = self.exprs.lower(fe.over, env)
        item_t: Type = ANY
        if ot.kind == "list":
            item_t = ot.item or ANY
        elif ot.kind not in ("any", "json"):
            self._error(
                "E301", f"`for each` goes over a list, got {describe_type(ot)}", fe.over.span
            )
        var_span = fe.span
        if fe.var in env and not env[fe.var].quiet:
            self._error(
                "E104",
                f"`{fe.var}` is already bound; `for each` needs a new name for its item",
                var_span,
                hint=f"rename the item, e.g. `for each {fe.var}_item in ...`",
            )
        pname = self._param(fe.var, node_id)
        benv = dict(env)
        benv[fe.var] = Binding(ir_node(ir.Ref, name=pname), item_t, var_span)
        sub = _Graph(prefix=f"{node_id}.")
        self.params.append(pname)
        item: ir.Expr = _PLACEHOLDER
        it: Type = ANY
        if fe.command is not None:
            self._mark(fe.command.span.line, fe.command.span.column, benv)
            inner = self._id(sub, "each")
            low = self.calls.lower(fe.command, benv, inner, s.name, self._span(fe.command.span))
            if low.node is not None:
                self.ids.add(inner)
                sub.nodes.append(low.node)
            item, it = low.value, low.type
        else:
            body = fe.body or ()
            for n in assigned_names(body):
                if n in env and not env[n].quiet:
                    stmt = next(x for x in body if getattr(x, "name", None) == n)
                    self._error(
                        "E104",
                        f"`{n}` cannot be rebound inside `for each`: its runs are parallel",
                        stmt.span,
                        hint="give the value a new name; the loop's result is its last step",
                    )
            self._block(body, benv, sub)
            last = body[-1] if body else None
            if isinstance(last, A.Step | A.Invalid) and last.name in benv:
                b = benv[last.name]
                self._read(b)
                item, it = b.expr, b.type
            else:
                self._error(
                    "E506",
                    "a `for each` block must end with a step: its value is the item collected",
                    last.span if last is not None else fe.span,
                    hint="end the block with `NAME = ...`",
                )
        self.params.pop()
        self.ids.add(node_id)
        g.nodes.append(
            ir_node(
                ir.Map,
                id=node_id,
                name=s.name,
                span=self._span(s.span),
                over=over,
                var=pname,
                body=ir_node(
                    ir.Graph, params=(pname,), nodes=tuple(sub.nodes), outputs={"$item": item}
                ),
            )
        )
        return ir_node(ir.Ref, name=node_id), list_of(it)


__all__ = ["BOOLEAN", "MAX_ITERATIONS", "WorkflowLowerer", "assigned_names", "signature"]


def _doc(comments: tuple[str, ...]) -> str | None:
    """A workflow's doc: the block of comments right above it (a blank line ends it, so a
    file's header comment is not the first workflow's doc)."""
    block: list[str] = []
    for c in reversed(comments):
        if not c:
            break
        block.append(c.lstrip("#").strip())
    return "\n".join(reversed(block)) or None
