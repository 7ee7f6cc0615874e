"""The public API for embedding treadle in an agent: load or compile a flow, run it, read the trace.

    flow = Flow.load("solve.flow")                  # or Flow.from_source(text)
    result = await flow.run({"problem": "2+2?"}, model="openai:http://localhost:8080/v1#m")
    result.outputs, result.trace_path, result.spans
    flow.run_sync({...})                            # the same, for code without an event loop

Every failure is a `treadle.errors.TreadleError` with a one-paragraph `.message`; when a trace
file was being written, the error's `trace_path` attribute says where.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from treadle.errors import TreadleError
from treadle.runtime.ir import Program, Workflow
from treadle.runtime.models.base import ModelBackend
from treadle.runtime.run_context import RunState, SandboxFactory
from treadle.runtime.sandbox.base import Sandbox
from treadle.runtime.scheduler import RunOptions, Scheduler, check_inputs
from treadle.runtime.tracing import JsonlSink, Sink, Span, Tracer, default_trace_path


@dataclass
class RunResult:
    """What a run produced: the workflow's outputs and its trace."""

    outputs: dict[str, Any]
    #: the JSONL trace file, when one was written
    trace_path: Path | None
    #: every span of the run, in start order (workflow, steps, model calls, sandbox runs)
    spans: list[Span] = field(default_factory=list)
    trace_id: str = ""

    @property
    def tokens(self) -> tuple[int, int]:
        """Total (input, output) tokens of the run's model calls."""
        models = [s for s in self.spans if s.kind == "model"]
        return sum(s.tokens_in or 0 for s in models), sum(s.tokens_out or 0 for s in models)


class Flow:
    """A compiled program, ready to run any number of times (concurrently too)."""

    def __init__(self, program: Program, *, path: Path | None = None) -> None:
        self.program = program
        self.path = path
        # plans depend only on the program, so every run of this flow shares them
        self._plans: dict[int, Any] = {}

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Flow:
        """Compile a `.flow` file (raises `CompileError` with its diagnostics)."""
        from treadle.compiler import compile_file

        p = Path(path)
        return cls(compile_file(p), path=p)

    @classmethod
    def from_source(cls, text: str) -> Flow:
        """Compile `.flow` source text."""
        from treadle.compiler import compile_source

        return cls(compile_source(text))

    @classmethod
    def from_json(cls, text: str) -> Flow:
        """A flow from Graph IR JSON (what `treadle compile` writes)."""
        return cls(Program.model_validate_json(text))

    @property
    def name(self) -> str:
        return self.program.entry

    def workflow(self, name: str | None = None) -> Workflow:
        return Scheduler(self.program).workflow(name)

    def check_inputs(self, inputs: Mapping[str, Any], workflow: str | None = None) -> None:
        """Raise `InputError` now if the inputs do not fit the workflow."""
        check_inputs(self.workflow(workflow), dict(inputs))

    async def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        workflow: str | None = None,
        model: str | ModelBackend | None = None,
        models: Mapping[str, ModelBackend] | None = None,
        trace: str | os.PathLike[str] | bool | None = None,
        concurrency: int | None = 16,
        cache: Any = True,
        seed: int | None = None,
        sandbox: Sandbox | SandboxFactory | str | None = None,
        isolation: Literal["fresh", "reset"] | None = None,
        step_timeout: float | None = None,
        retries: int = 2,
        otel: bool = False,
        sinks: Iterable[Sink] = (),
    ) -> RunResult:
        """Run the flow's entry workflow (or `workflow`) on `inputs`.

        `model`: the default model spec (None: the embedded SmolLM2) or a backend; `models`:
        backends for further specs steps name. `trace`: a JSONL path, True for
        `.treadle/traces/<time>-<workflow>.jsonl`, None/False for spans in memory only.
        `cache`: True (the on-disk model cache), False, or a `ModelCache`. `sandbox`: "docker"
        (the default), "process" (no isolation: an explicit opt-in), a `Sandbox` or a factory.
        `isolation`: for the Docker sandbox, "reset" (the default: containers reused after a
        verified reset) or "fresh" (a new container for every run).
        `otel`: also export spans through OpenTelemetry's global tracer provider (needs
        `opentelemetry-sdk`).
        """
        values = dict(inputs or {})
        wf = self.workflow(workflow)
        check_inputs(wf, values)  # before a trace file is created for nothing
        trace_path: Path | None = None
        if trace is True:
            trace_path = default_trace_path(wf.name)
        elif trace:
            trace_path = Path(trace)
        tracer = Tracer(sinks)
        if trace_path is not None:
            header = {
                "workflow": wf.name,
                "program_hash": self.program.content_hash(),
                "source": str(self.path) if self.path else None,
                "model": model if isinstance(model, str | None) else repr(model),
                "seed": seed,
            }
            tracer.add_sink(JsonlSink(trace_path, header=header))
        if otel:
            from treadle.runtime.tracing import OtelSink

            tracer.add_sink(OtelSink())
        from treadle.stdlib_ops.registry import get as op_lookup

        state = RunState(
            tracer,
            model=model,
            models=models,
            cache=cache,
            seed=seed,
            sandbox=sandbox,
            isolation=isolation,
        )
        options = RunOptions(concurrency=concurrency, step_timeout=step_timeout, retries=retries)
        scheduler = Scheduler(
            self.program, state=state, options=options, plans=self._plans, operators=op_lookup
        )
        try:
            outputs = await scheduler.run(values, wf.name)
        except TreadleError as e:
            e.trace_path = trace_path  # type: ignore[attr-defined]
            e.spans = tracer.spans  # type: ignore[attr-defined]
            raise
        finally:
            try:
                await state.aclose()
            finally:
                tracer.close()
        return RunResult(outputs, trace_path, tracer.spans, tracer.trace_id)

    def run_sync(self, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """`run` for code without an event loop (takes the same options)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(inputs, **options))
        raise TreadleError(
            "Flow.run_sync was called from inside a running event loop; use `await flow.run(...)`."
        )


def load(path: str | os.PathLike[str]) -> Flow:
    return Flow.load(path)


__all__ = ["Flow", "RunResult", "load"]
