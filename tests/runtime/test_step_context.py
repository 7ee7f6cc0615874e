"""The run context: model calls through limits, cache and trace; the sandbox opened lazily."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from http_faults import FaultServer
from rt_helpers import Recorder, c, program, r, step

from treadle.errors import ModelError
from treadle.runtime import ir
from treadle.runtime.cache import ModelCache
from treadle.runtime.models.base import Completion, GenParams, Message, ModelBackend
from treadle.runtime.models.openai import OpenAIBackend
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.op_context import OpContext
from treadle.runtime.sandbox.base import ExecResult, Limits, Sandbox
from treadle.runtime.scheduler import RunOptions, Scheduler, StepFailed
from treadle.runtime.session import Session
from treadle.runtime.step_context import RunState
from treadle.runtime.tracing import Tracer
from treadle.stdlib_ops import registry
from treadle.stdlib_ops.registry import OpArgs, Operator, subject

FAST = RunOptions(backoff_base=0.001, backoff_max=0.01)


async def run(prog: ir.Program, tracer: Tracer | None = None, **resources: Any) -> dict[str, Any]:
    """One run in its own session (`resources` are the Session's: model, models, cache,
    sandbox), closed at the end as `Flow.run` closes a private one."""
    session = Session(**resources)
    st = RunState(tracer or Tracer(), session)
    try:
        return await Scheduler(prog, state=st, options=FAST, operators=registry.get).run({})
    finally:
        await session.aclose()


class Counting(ModelBackend):
    """Counts calls in flight, to check the per-backend limit."""

    backend = "counting"
    model = "counting-1"

    def __init__(self, limit: int) -> None:
        self.max_concurrency = limit
        self.running = 0
        self.peak = 0

    async def complete(self, messages: list[Message], params: GenParams) -> Completion:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(0.02)
        self.running -= 1
        return Completion(text=messages[-1].content.upper(), model=self.model)


def ask(id: str, prompt: Any, **options: Any) -> ir.Step:
    return step(id, "t.ask", prompt=prompt, options=options)


async def test_model_call_is_a_child_span_with_gen_ai_attributes(ops: Recorder) -> None:
    tracer = Tracer()
    model = ScriptedBackend(["four"])
    out = await run(
        program(ask("q", "2+2?"), outputs={"a": r("q")}), tracer, model=model, cache=False
    )
    assert out == {"a": "four"}
    spans = {s.kind: s for s in tracer.spans}
    m, s = spans["model"], spans["step"]
    assert m.parent_id == s.span_id and m.step == "q" and m.status == "ok"
    assert m.tokens_in == 1 and m.tokens_out == 1 and m.cached is False
    assert m.attrs["gen_ai.operation.name"] == "chat"
    assert m.attrs["gen_ai.request.model"] == "scripted"
    assert m.attrs["gen_ai.usage.output_tokens"] == 1
    assert m.inputs["value"] == [{"role": "user", "content": "2+2?"}]
    assert m.outputs["value"] == "four"


async def test_per_backend_concurrency_limit(ops: Recorder) -> None:
    model = Counting(limit=2)
    body = ir.Graph(params=("x",), nodes=(ask("m.q", r("x")),), outputs={"$item": r("m.q")})
    prog = program(
        ir.Map(id="m", name="m", over=c([f"q{i}" for i in range(8)]), var="x", body=body),
        outputs={"out": r("m")},
    )
    out = await run(prog, model=model, cache=False)
    assert out == {"out": [f"Q{i}" for i in range(8)]}
    assert model.peak == 2


async def test_cache_answers_a_rerun(ops: Recorder, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "cache.sqlite")
    prog = program(ask("q", "hello"), outputs={"a": r("q")})
    model = ScriptedBackend(["first"], default="second")
    assert await run(prog, model=model, cache=cache) == {"a": "first"}
    tracer = Tracer()
    assert await run(prog, tracer, model=model, cache=cache) == {"a": "first"}
    assert len(model.calls) == 1
    assert next(s for s in tracer.spans if s.kind == "model").cached is True
    # without the cache the model is asked again
    assert await run(prog, model=model, cache=False) == {"a": "second"}


async def test_step_can_name_another_model(ops: Recorder) -> None:
    default, other = ScriptedBackend(["d"]), ScriptedBackend(["o"], model="other-model")
    prog = program(ask("a", "x"), ask("b", "y", model="other"), outputs={"a": r("a"), "b": r("b")})
    assert await run(prog, model=default, models={"other": other}, cache=False) == {
        "a": "d",
        "b": "o",
    }


async def test_retryable_model_errors_are_retried(ops: Recorder) -> None:
    model = ScriptedBackend([ModelError("HTTP 429: slow down", retryable=True), "ok"])
    tracer = Tracer()
    out = await run(program(ask("q", "x"), outputs={"a": r("q")}), tracer, model=model, cache=False)
    assert out == {"a": "ok"}
    assert [s.status for s in tracer.spans if s.kind == "model"] == ["error", "ok"]


def failing(status: int) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A model server's error reply, answered to every request."""
    return status, {"Content-Type": "application/json"}, {"error": {"message": "down"}}


def http_backend(url: str, max_retries: int) -> OpenAIBackend:
    return OpenAIBackend(
        url, "m", api_key="", max_retries=max_retries, backoff_base=0.001, backoff_max=0.01
    )


async def test_a_step_does_not_retry_a_backend_that_retries(ops: Recorder) -> None:
    """The backend tries 3 times; the step's 2 retries on top would make it 9 requests."""
    async with FaultServer(failing(500)) as server:
        model = http_backend(server.url, max_retries=2)
        tracer = Tracer()
        with pytest.raises(StepFailed, match=r"HTTP 500.*tried 3 times") as info:
            await run(program(ask("q", "x"), outputs={}), tracer, model=model, cache=False)
        await model.aclose()
    assert len(server.requests) == 3 and model.requests == 3
    assert isinstance(info.value.cause, ModelError) and not info.value.cause.retryable
    (model_span,) = [s for s in tracer.spans if s.kind == "model"]
    assert model_span.status == "error"
    step_span = next(s for s in tracer.spans if s.kind == "step")
    assert [e["name"] for e in step_span.events] == []  # no step retry


async def test_a_step_retries_a_backend_that_does_not(ops: Recorder) -> None:
    async with FaultServer(failing(503)) as server:
        model = http_backend(server.url, max_retries=0)
        tracer = Tracer()
        with pytest.raises(StepFailed, match="HTTP 503"):
            await run(program(ask("q", "x"), outputs={}), tracer, model=model, cache=False)
        await model.aclose()
    assert len(server.requests) == 3  # 1 attempt + the step's 2 retries
    step_span = next(s for s in tracer.spans if s.kind == "step")
    retries = [e for e in step_span.events if e["name"] == "retry"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert all("HTTP 503" in e["error"] and e["delay_s"] >= 0 for e in retries)
    assert [s.status for s in tracer.spans if s.kind == "model"] == ["error"] * 3


async def test_model_failure_names_the_step(ops: Recorder) -> None:
    model = ScriptedBackend([ModelError("the server answered 500")])
    with pytest.raises(StepFailed) as info:
        await run(program(ask("q", "x"), outputs={}), model=model, cache=False)
    assert info.value.message == "Step 'q' (t.ask) failed: the server answered 500"
    assert isinstance(info.value.cause, ModelError)


async def test_missing_model_file_is_a_model_error(ops: Recorder, tmp_path: Path) -> None:
    with pytest.raises(StepFailed) as info:
        await run(program(ask("q", "x"), outputs={}), model=f"llama:{tmp_path}/nope.gguf")
    assert "nope.gguf" in info.value.message and isinstance(info.value.cause, ModelError)


class FakeSandbox(Sandbox):
    def __init__(self) -> None:
        self.runs = 0
        self.closed = 0

    async def run(
        self,
        command: list[str],
        *,
        files: dict[str, bytes] | None = None,
        stdin: bytes | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        self.runs += 1
        return ExecResult(stdout=" ".join(command), stderr="", exit_code=0)

    async def aclose(self) -> None:
        self.closed += 1


class ShellArgs(OpArgs):
    command: str = subject("a command")


async def test_sandbox_opens_once_and_closes_at_the_end(
    ops: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def shell(ctx: OpContext, args: ShellArgs, options: Any) -> str:
        sandbox = await ctx.sandbox()
        return (await sandbox.run(["echo", args.command])).stdout

    monkeypatch.setitem(
        registry._OPERATORS, "t.shell", Operator("t.shell", "shell", ShellArgs, str, shell)
    )
    made: list[FakeSandbox] = []

    async def factory() -> Sandbox:
        await asyncio.sleep(0.01)  # both steps ask while the first is still opening
        made.append(FakeSandbox())
        return made[-1]

    prog = program(
        step("a", "t.shell", command="1"),
        step("b", "t.shell", command="2"),
        outputs={"a": r("a"), "b": r("b")},
    )
    tracer = Tracer()
    assert await run(prog, tracer, sandbox=factory) == {"a": "echo 1", "b": "echo 2"}
    assert len(made) == 1 and made[0].runs == 2 and made[0].closed == 1
    sandbox_spans = [s for s in tracer.spans if s.kind == "sandbox"]
    assert len(sandbox_spans) == 2 and all(s.attrs["exit_code"] == 0 for s in sandbox_spans)


async def test_no_sandbox_opened_when_no_step_needs_one(ops: Recorder) -> None:
    made: list[int] = []
    await run(program(step("a", "t.echo", value=1), outputs={}), sandbox=lambda: made.append(1))
    assert made == []


async def test_runs_sharing_a_backend_share_its_limit(ops: Recorder) -> None:
    model = Counting(limit=2)
    body = ir.Graph(params=("x",), nodes=(ask("m.q", r("x")),), outputs={"$item": r("m.q")})
    prog = program(
        ir.Map(id="m", name="m", over=c([f"q{i}" for i in range(4)]), var="x", body=body),
        outputs={"out": r("m")},
    )
    await asyncio.gather(*(run(prog, model=model, cache=False) for _ in range(3)))
    assert model.peak == 2
