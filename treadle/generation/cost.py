"""A static cost bound: the most model calls and sandbox runs one run of a program can make.

Generated candidates are compared on it before any of them runs. It is read off the Graph IR:
a step costs its operator's calls (times `samples`, times `attempts` where the operator retries
on its own), a `repeat` its bound times its body, an `if` its dearest arm, a workflow call its
callee. A `for each` runs once per item, and the list's length is not known statically, so its
body's cost is kept apart as a per-item term, named after the map.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from treadle.runtime import ir


class Cost(BaseModel):
    """`model_calls + Σ per_item[map] × len(list of map)`, and the same for sandbox runs."""

    model_calls: int = 0
    sandbox_runs: int = 0
    #: map node name → (model calls, sandbox runs) for each item of its list
    per_item: dict[str, tuple[int, int]] = {}

    def __add__(self, other: Cost) -> Cost:
        per = dict(self.per_item)
        for k, (m, s) in other.per_item.items():
            pm, ps = per.get(k, (0, 0))
            per[k] = (pm + m, ps + s)
        return Cost(
            model_calls=self.model_calls + other.model_calls,
            sandbox_runs=self.sandbox_runs + other.sandbox_runs,
            per_item=per,
        )

    def times(self, n: int) -> Cost:
        return Cost(
            model_calls=self.model_calls * n,
            sandbox_runs=self.sandbox_runs * n,
            per_item={k: (m * n, s * n) for k, (m, s) in self.per_item.items()},
        )

    def at_most(self, other: Cost) -> Cost:
        """The pointwise maximum (the dearer of two arms)."""
        keys = set(self.per_item) | set(other.per_item)
        return Cost(
            model_calls=max(self.model_calls, other.model_calls),
            sandbox_runs=max(self.sandbox_runs, other.sandbox_runs),
            per_item={
                k: (
                    max(self.per_item.get(k, (0, 0))[0], other.per_item.get(k, (0, 0))[0]),
                    max(self.per_item.get(k, (0, 0))[1], other.per_item.get(k, (0, 0))[1]),
                )
                for k in keys
            },
        )

    def bound(self, items: dict[str, int] | None = None) -> tuple[int, int]:
        """The bound for given list lengths (maps not named count with length 0)."""
        m, s = self.model_calls, self.sandbox_runs
        for k, (pm, ps) in self.per_item.items():
            n = (items or {}).get(k, 0)
            m, s = m + pm * n, s + ps * n
        return m, s

    def describe(self) -> str:
        """`≤ 4 model calls, ≤ 3 sandbox runs (+ 1 model call per item of drafts)`."""
        text = f"≤ {_n(self.model_calls, 'model call')}, ≤ {_n(self.sandbox_runs, 'sandbox run')}"
        extra = [
            f"+ {_n(m, 'model call')}, {_n(s, 'sandbox run')} per item of {k}"
            for k, (m, s) in sorted(self.per_item.items())
            if m or s
        ]
        return text + (f" ({'; '.join(extra)})" if extra else "")


def _n(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


OperatorLookup = Callable[[str], Any]


def _const(e: ir.Expr | None) -> Any:
    return e.value if isinstance(e, ir.Const) else None


def _step_cost(step: ir.Step, operators: OperatorLookup) -> Cost:
    op = operators(step.op)
    if op is None:
        return Cost()
    per_call = 1
    # operators that retry on their own declare it as an `attempts` option
    if "attempts" in op.options.model_fields:
        value = _const(step.options.get("attempts"))
        if not isinstance(value, int | float):
            value = op.options.model_fields["attempts"].get_default()
        per_call = int(value)
    # a retried attempt calls again: the bound counts every retry the step allows
    n = (step.samples or 1) * per_call * (1 + (step.retries or 0))
    return Cost(
        model_calls=n if op.uses_model else 0,
        sandbox_runs=n if op.uses_sandbox else 0,
    )


def graph_cost(
    graph: ir.Graph,
    program: ir.Program,
    operators: OperatorLookup,
    _stack: tuple[str, ...] = (),
) -> Cost:
    total = Cost()
    for node in graph.nodes:
        if isinstance(node, ir.Step):
            total = total + _step_cost(node, operators)
        elif isinstance(node, ir.Call):
            callee = program.workflows.get(node.workflow)
            if callee is not None and node.workflow not in _stack:
                total = total + graph_cost(
                    callee.graph, program, operators, (*_stack, node.workflow)
                )
        elif isinstance(node, ir.Branch):
            dearest = Cost()
            for arm in node.arms:
                dearest = dearest.at_most(graph_cost(arm.body, program, operators, _stack))
            total = total + dearest
        elif isinstance(node, ir.Loop):
            total = total + graph_cost(node.body, program, operators, _stack).times(node.max_iters)
        elif isinstance(node, ir.Map):
            body = graph_cost(node.body, program, operators, _stack)
            # a map inside a map: the inner per-item terms stay per item of the inner list
            total = total + Cost(
                per_item={
                    node.name: (body.model_calls, body.sandbox_runs),
                    **body.per_item,
                }
            )
    return total


def cost_bound(
    program: ir.Program, workflow: str | None = None, operators: OperatorLookup | None = None
) -> Cost:
    """The static bound of one run of `workflow` (default: the program's entry)."""
    if operators is None:
        from treadle.stdlib_ops.registry import get

        operators = get
    name = workflow or program.entry
    return graph_cost(program.workflows[name].graph, program, operators, (name,))
