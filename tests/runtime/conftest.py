"""Fixtures for the runtime tests: tiny operators registered for one test only, and IR builders.

The operators are added to the registry with `monkeypatch`, so they vanish after each test and
never show up in `treadle ops list` or in another engineer's tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import Field
from rt_helpers import Recorder

from treadle.errors import StepError
from treadle.runtime.models.base import GenParams, Message
from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops import registry
from treadle.stdlib_ops.registry import OpArgs, Operator, OpOptions, prep, subject


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


@pytest.fixture(scope="session")
def otel_global() -> Any:
    """OpenTelemetry's global tracer provider, exporting to memory (it can be set only once
    per process, so every test that needs it shares it and clears it first)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
