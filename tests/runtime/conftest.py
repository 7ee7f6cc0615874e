"""Fixtures for the runtime tests: tiny operators registered for one test only, and IR builders.

The operators are added to the registry with `monkeypatch`, so they vanish after each test and
never show up in `treadle ops list` or in another engineer's tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import Field

from treadle.errors import StepError
from treadle.runtime import ir
from treadle.runtime.context import OpContext
from treadle.runtime.models.base import GenParams, Message
from treadle.stdlib_ops import registry
from treadle.stdlib_ops.registry import OpArgs, Operator, OpOptions, prep, subject


@dataclass
class Recorder:
    """What the test operators saw: (event, step id, monotonic time) and per-key counters."""

    events: list[tuple[str, str, float]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    running: int = 0
    max_running: int = 0

    def times(self, event: str) -> dict[str, float]:
        return {step: t for e, step, t in self.events if e == event}


class ValueArgs(OpArgs):
    value: Any = subject("any value")


class SleepArgs(OpArgs):
    value: Any = subject("the value to return")
    seconds: float = prep("for", "how long to sleep")


class AddArgs(OpArgs):
    a: float = subject("left")
    b: float = prep("to", "right")


class FlakyArgs(OpArgs):
    key: str = subject("which counter")


class FlakyOptions(OpOptions):
    fail_times: int = Field(1, description="failures before success")
    retryable: bool = Field(True, description="whether the failures are retryable")


class AskArgs(OpArgs):
    prompt: str = subject("what to ask")


class AskOptions(OpOptions):
    model: str | None = Field(None, description="model spec")
    temperature: float = Field(0.0, description="temperature")


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def ops(monkeypatch: pytest.MonkeyPatch, rec: Recorder) -> Iterator[Recorder]:
    """Registers `t.echo`, `t.sleep`, `t.add`, `t.flaky`, `t.boom`, `t.ask` for one test."""
    registry.operators()  # load the stdlib first, so its registration cannot clash later

    async def echo(ctx: OpContext, args: ValueArgs, options: Any) -> Any:
        return args.value

    async def sleep(ctx: OpContext, args: SleepArgs, options: Any) -> Any:
        rec.events.append(("start", ctx.step_id, time.monotonic()))
        rec.running += 1
        rec.max_running = max(rec.max_running, rec.running)
        try:
            await asyncio.sleep(args.seconds)
        except asyncio.CancelledError:
            rec.events.append(("cancelled", ctx.step_id, time.monotonic()))
            raise
        finally:
            rec.running -= 1
        rec.events.append(("end", ctx.step_id, time.monotonic()))
        return args.value

    async def add(ctx: OpContext, args: AddArgs, options: Any) -> float:
        return args.a + args.b

    async def flaky(ctx: OpContext, args: FlakyArgs, options: FlakyOptions) -> str:
        n = rec.counts.get(args.key, 0) + 1
        rec.counts[args.key] = n
        if n <= options.fail_times:
            raise StepError(f"flaky failure {n}", retryable=options.retryable)
        return f"ok after {n}"

    async def boom(ctx: OpContext, args: ValueArgs, options: Any) -> Any:
        raise ValueError(f"boom: {args.value}")

    async def ask(ctx: OpContext, args: AskArgs, options: AskOptions) -> str:
        params = GenParams(temperature=options.temperature, seed=ctx.seed)
        messages = [Message(role="user", content=args.prompt)]
        return (await ctx.complete(messages, params, model=options.model)).text

    defs = [
        Operator("t.echo", "echo", ValueArgs, Any, echo),
        Operator("t.sleep", "sleep", SleepArgs, Any, sleep),
        Operator("t.add", "add", AddArgs, float, add),
        Operator("t.flaky", "flaky", FlakyArgs, str, flaky, options=FlakyOptions),
        Operator("t.boom", "boom", ValueArgs, Any, boom),
        Operator("t.ask", "ask", AskArgs, str, ask, options=AskOptions, uses_model=True),
    ]
    for op in defs:
        monkeypatch.setitem(registry._OPERATORS, op.name, op)
    yield rec


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
