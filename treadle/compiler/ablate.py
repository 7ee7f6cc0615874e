"""Ablated programs for counterfactual attribution: a program with some steps or calls removed.

How a step is removed is declared by its operator in the registry (`Operator.ablation`), never
guessed here. Two ways, one per kind of declaration:

- `pass` (and `first` over a written list `[a, b]`) is a rewrite of the source: the step
  `x = revise s using f` becomes `x = s`, the file is printed by the formatter and compiled like
  any other, so an ablation that leaves the program ill-typed (an `extract number` whose text
  now flows where a number is needed) is reported with the compiler's diagnostic and never run.
  The same text is what `treadle attribute --prune` writes.
- `constant`, `first` over a named list, and a workflow call are rewrites of the Graph IR: every
  read of the removed node becomes the stand-in expression (a constant record, `list.0`, the
  call's input of the same name). The stand-in has the node's type by construction (the
  declared constant is a value of the operator's record type; a call is removable only when
  each output has an input of the same name and type), so typing cannot break; a read the
  stand-in cannot express (a record read whole whose fields come from arguments) is reported.

Node ids come from step names and block positions, so removing one step leaves every other id,
and with it every trace and report row, unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from treadle.compiler import ast as A
from treadle.compiler import compile_source
from treadle.compiler.formatter import format_module
from treadle.compiler.parsing import parse
from treadle.errors import CompileError, TreadleError
from treadle.runtime import ir

UnitKind = Literal["step", "operator", "call"]


class AblationError(TreadleError):
    """The unit cannot be removed (not removable, or the ablated program does not compile)."""


class Unit(BaseModel):
    """Something attribution can remove: one step (its node id), every step of an operator,
    or every call of a workflow (by its name)."""

    unit: str
    kind: UnitKind
    #: the operator, or the called workflow's program key
    target: str
    #: the IR node ids removed together
    nodes: tuple[str, ...]
    removable: bool
    reason: str = ""
    line: int | None = None


@dataclasses.dataclass
class Ablated:
    program: ir.Program
    #: the ablated `.flow` text when every removal is a source rewrite, else None
    text: str | None


# ---------------------------------------------------------------- units


def _walk(graph: ir.Graph) -> list[ir.Node]:
    out: list[ir.Node] = []
    for n in graph.nodes:
        out.append(n)
        if isinstance(n, ir.Branch):
            for arm in n.arms:
                out += _walk(arm.body)
        elif isinstance(n, ir.Loop | ir.Map):
            out += _walk(n.body)
    return out


def main_workflows(program: ir.Program, text: str) -> list[str]:
    """The program keys of the workflows written in the main file (not `use`d ones)."""
    names = {wf.name for wf in parse(text)[0].workflows}
    return [k for k in program.workflows if k in names]


def _operators(operators: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if operators is not None:
        return operators
    from treadle.stdlib_ops.registry import operators as registry

    return registry()


def list_units(
    program: ir.Program,
    text: str,
    *,
    by: UnitKind = "step",
    operators: Mapping[str, Any] | None = None,
) -> list[Unit]:
    """The units of the main file's workflows, in source order, with whether each is
    removable by declaration (whether its ablation compiles is found when it is built)."""
    ops = _operators(operators)
    nodes = [n for k in main_workflows(program, text) for n in _walk(program.workflows[k].graph)]
    units: list[Unit] = []
    if by in ("step", "operator"):
        steps = [n for n in nodes if isinstance(n, ir.Step)]
        for s in steps:
            ok, why = _step_removable(s, ops)
            units.append(
                Unit(
                    unit=s.id, kind="step", target=s.op, nodes=(s.id,), removable=ok,
                    reason=why, line=s.span.line if s.span else None,
                )
            )  # fmt: skip
        if by == "operator":
            grouped: dict[str, list[Unit]] = {}
            for u in units:
                grouped.setdefault(u.target, []).append(u)
            units = [
                Unit(
                    unit=op, kind="operator", target=op,
                    nodes=tuple(n for u in us for n in u.nodes),
                    removable=all(u.removable for u in us),
                    reason="; ".join(sorted({u.reason for u in us if u.reason})),
                    line=us[0].line,
                )
                for op, us in grouped.items()
            ]  # fmt: skip
        return units
    calls: dict[str, list[ir.Call]] = {}
    for n in nodes:
        if isinstance(n, ir.Call):
            calls.setdefault(n.workflow, []).append(n)
    for key, cs in calls.items():
        ok, why = call_removable(program.workflows[key])
        units.append(
            Unit(
                unit=key.rsplit(".", 1)[-1], kind="call", target=key,
                nodes=tuple(c.id for c in cs), removable=ok, reason=why,
                line=cs[0].span.line if cs[0].span else None,
            )
        )  # fmt: skip
    return units


def _step_removable(step: ir.Step, ops: Mapping[str, Any]) -> tuple[bool, str]:
    op = ops.get(step.op)
    ablation = getattr(op, "ablation", None)
    if ablation is None:
        return False, f"`{step.op}` declares no ablation"
    if not ablation.removable:
        return False, ablation.reason
    if ablation.kind in ("pass", "first") and ablation.param not in step.args:
        return False, f"the step gives no `{ablation.param}` to pass through"
    if step.samples is not None and ablation.kind != "constant":
        return False, f"it is sampled ({step.samples} values); one argument cannot stand in"
    return True, ablation.describe()


def call_removable(wf: ir.Workflow) -> tuple[bool, str]:
    """A call is removable when each output of the workflow has an input of the same name and
    type (that input is bound in its place)."""
    inputs = {f.name: f.type for f in wf.inputs}
    for out in wf.outputs:
        if inputs.get(out.name) != out.type:
            return False, (
                f"its output `{out.name}: {out.type}` has no input of the same name and type"
            )
    bound = ", ".join(f"`{o.name}`" for o in wf.outputs)
    return True, f"{bound} bound from the input of the same name"


# ---------------------------------------------------------------- building


def ablate(
    program: ir.Program,
    text: str,
    nodes: Sequence[str],
    *,
    path: Path | None = None,
    operators: Mapping[str, Any] | None = None,
) -> Ablated:
    """The program with these nodes (steps and calls of the main file) removed.

    Raises `AblationError` saying why when a node is not removable or the result does not
    compile."""
    ops = _operators(operators)
    index = {
        n.id: n for k in main_workflows(program, text) for n in _walk(program.workflows[k].graph)
    }
    source_steps: dict[tuple[int, int], tuple[ir.Step, A.Expr]] = {}
    ir_nodes: list[ir.Step | ir.Call] = []
    for node_id in nodes:
        node = index.get(node_id)
        if not isinstance(node, ir.Step | ir.Call):
            raise AblationError(f"`{node_id}` is not a step or call of the main file")
        if isinstance(node, ir.Call):
            ok, why = call_removable(program.workflows[node.workflow])
            if not ok:
                raise AblationError(f"`{node_id}` cannot be removed: {why}")
            ir_nodes.append(node)
            continue
        ok, why = _step_removable(node, ops)
        if not ok:
            raise AblationError(f"`{node_id}` cannot be removed: {why}")
        ablation = ops[node.op].ablation
        stand_in = _source_stand_in(node, ablation, ops, text)
        if stand_in is not None and node.span is not None:
            source_steps[(node.span.line, node.span.column)] = (node, stand_in)
        else:
            ir_nodes.append(node)
    out_text: str | None = text
    result = program
    if source_steps:
        out_text = _rewrite_source(text, source_steps)
        try:
            result = compile_source(
                out_text,
                str(path) if path is not None else None,
                operators=operators,
                base_dir=path.parent if path is not None else None,
            )
        except CompileError as e:
            removed = ", ".join(f"`{s.id}`" for s, _ in source_steps.values())
            first = e.message.split("\n\n", 1)[-1].strip().splitlines()
            raise AblationError(
                f"removing {removed} leaves the program ill-typed: {first[0] if first else e}"
            ) from e
    for node in ir_nodes:
        result = _remove_node(result, node, ops)
        out_text = None
    return Ablated(program=result, text=out_text)


# ---- source rewrites


def _source_stand_in(
    step: ir.Step, ablation: Any, ops: Mapping[str, Any], text: str
) -> A.Expr | None:
    """The source expression that stands in for the step, when the declaration has one."""
    if ablation.kind not in ("pass", "first") or step.span is None:
        return None
    found = _find_command(parse(text)[0], step.span.line, step.span.column)
    if found is None:
        return None
    sig = ops[step.op].signature
    param = next(p for p in sig.params if p.name == ablation.param)
    expr = _argument(found, param.prep, len(step.op.split()))
    if expr is None:
        return None
    if ablation.kind == "pass":
        return expr
    if isinstance(expr, A.ListLit) and expr.items:
        return expr.items[0]
    return None  # a named list: the IR reads its item 0


def _argument(cmd: A.Command, prep: str | None, words: int) -> A.Expr | None:
    if prep is None:  # the subject: the term right after the operator's words
        return cmd.terms[words] if len(cmd.terms) > words else None
    return next((a.value for a in cmd.args if a.prep == prep), None)


def _find_command(module: A.Module, line: int, column: int) -> A.Command | None:
    found: list[A.Command] = []

    def visit(body: Sequence[A.Statement]) -> None:
        for s in body:
            if isinstance(s, A.Step):
                v = s.value
                if isinstance(v, A.Command) and (s.span.line, s.span.column) == (line, column):
                    found.append(v)
                elif isinstance(v, A.ForEach):
                    c = v.command
                    here = {(s.span.line, s.span.column)}
                    if c is not None and (line, column) in here | {(c.span.line, c.span.column)}:
                        found.append(c)
                    visit(v.body or ())
            elif isinstance(s, A.If):
                for arm in s.arms:
                    visit(arm.body)
            elif isinstance(s, A.Repeat):
                visit(s.body)

    for wf in module.workflows:
        visit(wf.body)
    return found[0] if found else None


def _rewrite_source(text: str, steps: Mapping[tuple[int, int], tuple[ir.Step, A.Expr]]) -> str:
    module = parse(text)[0]
    targets = {pos: _find_command(module, *pos) for pos in steps}
    replace = {id(cmd): A.Command(terms=(steps[pos][1],)) for pos, cmd in targets.items() if cmd}
    return format_module(_replace_commands(module, replace))


def _replace_commands(node: Any, replace: Mapping[int, A.Command]) -> Any:
    if isinstance(node, A.Command):
        return replace.get(id(node), node)
    if isinstance(node, tuple):
        return tuple(_replace_commands(n, replace) for n in node)
    if isinstance(node, A.Node):
        update = {}
        for name in type(node).model_fields:
            value = getattr(node, name)
            if isinstance(value, A.Node | tuple):
                new = _replace_commands(value, replace)
                if new is not value:
                    update[name] = new
        return node.model_copy(update=update) if update else node
    return node


# ---- Graph IR rewrites

StandIn = Callable[[tuple[str, ...]], ir.Expr | None]


def _remove_node(
    program: ir.Program, node: ir.Step | ir.Call, ops: Mapping[str, Any]
) -> ir.Program:
    stand_in = (
        _call_stand_in(program, node) if isinstance(node, ir.Call) else _step_stand_in(node, ops)
    )
    failures: list[str] = []

    def expr(e: Any) -> Any:
        if isinstance(e, ir.Ref):
            if e.name != node.id:
                return e
            new = stand_in(e.path)
            if new is None:
                failures.append(".".join((node.name, *e.path)))
                return e
            return new
        if isinstance(e, ir.Template):
            return e.model_copy(
                update={"parts": tuple(p if isinstance(p, str) else expr(p) for p in e.parts)}
            )
        if isinstance(e, ir.ListExpr):
            return e.model_copy(update={"items": tuple(expr(i) for i in e.items)})
        if isinstance(e, ir.ObjectExpr):
            return e.model_copy(update={"fields": {k: expr(v) for k, v in e.fields.items()}})
        if isinstance(e, ir.Unary):
            return e.model_copy(update={"operand": expr(e.operand)})
        if isinstance(e, ir.Binary):
            return e.model_copy(update={"left": expr(e.left), "right": expr(e.right)})
        return e

    def exprs(d: Mapping[str, Any]) -> dict[str, Any]:
        return {k: expr(v) for k, v in d.items()}

    def graph(g: ir.Graph) -> ir.Graph:
        kept = []
        for n in g.nodes:
            if n.id == node.id:
                continue
            if isinstance(n, ir.Step):
                n = n.model_copy(update={"args": exprs(n.args), "options": exprs(n.options)})
            elif isinstance(n, ir.Call):
                n = n.model_copy(update={"args": exprs(n.args)})
            elif isinstance(n, ir.Branch):
                arms = tuple(
                    a.model_copy(
                        update={
                            "when": expr(a.when) if a.when is not None else None,
                            "body": graph(a.body),
                        }
                    )
                    for a in n.arms
                )
                n = n.model_copy(update={"arms": arms})
            elif isinstance(n, ir.Loop):
                n = n.model_copy(update={"init": exprs(n.init), "body": graph(n.body)})
            elif isinstance(n, ir.Map):
                n = n.model_copy(update={"over": expr(n.over), "body": graph(n.body)})
            kept.append(n)
        return g.model_copy(update={"nodes": tuple(kept), "outputs": exprs(g.outputs)})

    workflows = {
        k: wf.model_copy(update={"graph": graph(wf.graph)}) for k, wf in program.workflows.items()
    }
    if failures:
        raise AblationError(
            f"`{node.id}` cannot be removed: its value is read whole as `{failures[0]}`, and its "
            "stand-in takes fields from arguments (no record can be written in its place)"
        )
    # validate the rewritten program as the compiler's output would be
    return ir.Program.model_validate(
        {**program.model_dump(), "workflows": {k: w.model_dump() for k, w in workflows.items()}}
    )


def _extend(e: ir.Expr, path: tuple[str, ...]) -> ir.Expr | None:
    if not path:
        return e
    if isinstance(e, ir.Ref):
        return ir.Ref(name=e.name, path=(*e.path, *path))
    if isinstance(e, ir.Const):
        value = e.value
        for key in path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return None
        return ir.Const(value=value)
    return None


def _step_stand_in(step: ir.Step, ops: Mapping[str, Any]) -> StandIn:
    ablation = ops[step.op].ablation
    if ablation.kind == "pass":
        arg = step.args[ablation.param]
        return lambda path: _extend(arg, path)
    if ablation.kind == "first":
        arg = step.args[ablation.param]

        def first(path: tuple[str, ...]) -> ir.Expr | None:
            if isinstance(arg, ir.ListExpr):
                return _extend(arg.items[0], path) if arg.items else None
            return _extend(arg, ("0", *path))

        return first
    value = ablation.value
    fields = dict(ablation.fields_from)

    def const(path: tuple[str, ...]) -> ir.Expr | None:
        if path and path[0] in fields:
            arg = step.args.get(fields[path[0]])
            return (
                _extend(arg, path[1:])
                if arg is not None
                else _extend(ir.Const(value=None), path[1:])
            )
        if not path and fields:
            return None
        whole = ir.Const(value=value)
        if step.samples is not None:
            whole = ir.Const(value=[value] * step.samples)
        return _extend(whole, path)

    return const


def _call_stand_in(program: ir.Program, call: ir.Call) -> StandIn:
    wf = program.workflows[call.workflow]
    outputs = [o.name for o in wf.outputs]

    def bind(path: tuple[str, ...]) -> ir.Expr | None:
        # a call's value is the record of its outputs (a single output is read as `call.out`)
        if not path or path[0] not in outputs:
            return None
        return _extend(call.args[path[0]], path[1:])

    return bind
