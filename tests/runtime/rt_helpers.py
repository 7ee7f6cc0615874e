"""Helpers shared by the runtime tests: a recorder for the test operators, IR builders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from treadle.runtime import ir


@dataclass
class Recorder:
    """What the test operators saw: (event, step id, monotonic time) and per-key counters."""

    events: list[tuple[str, str, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    running: int = 0
    max_running: int = 0

    def times(self, event: str) -> dict[str, float]:
        return {step: t for e, step, t in self.events if e == event}


# ---------------------------------------------------------------- IR builders


def c(value: Any) -> ir.Const:
    return ir.Const(value=value)


def r(name: str, *path: str) -> ir.Ref:
    return ir.Ref(name=name, path=tuple(path))


def step(id: str, op: str, *, options: dict[str, Any] | None = None, **args: Any) -> ir.Step:
    """A step; plain Python values become constants."""
    return ir.Step(
        id=id,
        name=id.rsplit(".", 1)[-1],
        op=op,
        args={k: _expr(v) for k, v in args.items()},
        options={k: _expr(v) for k, v in (options or {}).items()},
    )


def _expr(v: Any) -> Any:
    exprs = ir.Const | ir.Ref | ir.Template | ir.ListExpr | ir.Unary | ir.Binary
    return v if isinstance(v, exprs) else c(v)


def program(
    *nodes: Any, outputs: dict[str, Any], inputs: dict[str, str] | None = None, name: str = "main"
) -> ir.Program:
    inputs = inputs or {}
    wf = ir.Workflow(
        name=name,
        inputs=tuple(ir.Field_(name=k, type=t) for k, t in inputs.items()),
        outputs=tuple(ir.Field_(name=k, type="json") for k in outputs),
        graph=ir.Graph(
            params=tuple(inputs), nodes=nodes, outputs={k: _expr(v) for k, v in outputs.items()}
        ),
    )
    return ir.Program(entry=name, workflows={name: wf})
