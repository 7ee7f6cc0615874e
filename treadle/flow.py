"""`Flow`: a compiled program, run any number of times, alone or in a shared `Session`.

It sits between the compiler (which makes the program) and everything that runs flows (eval,
studies, training, generation's dry runs, the CLI).

    flow = Flow.load("solve.flow")                  # or Flow.from_source(text)
    result = await flow.run({"problem": "2+2?"}, model="openai:http://localhost:8080/v1#m")
    result.outputs, result.trace_path, result.spans
    flow.run_sync({...})                            # the same, for code without an event loop
    async with Session(model=...) as session:       # many runs sharing backends, cache, sandbox
        await flow.run(row, session=session)

Every failure is a `treadle.errors.TreadleError` with a one-paragraph `.message`; when a trace
file was being written, the error's `trace_path` attribute says where.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treadle.errors import TreadleError
from treadle.runtime import ir
from treadle.runtime.ir import Program, Workflow
from treadle.runtime.models.base import ModelBackend
from treadle.runtime.scheduler import RunOptions, Scheduler, check_inputs, find_workflow
from treadle.runtime.session import SandboxConfig, SandboxSource, Session
from treadle.runtime.step_context import RunState
from treadle.runtime.tracing import (
    JsonlSink,
    Sink,
    Span,
    StreamTrace,
    Tracer,
    TraceStream,
    default_trace_path,
)

if TYPE_CHECKING:
    from treadle.runtime.cache import ModelCache


@dataclass
class RunResult:
    """What a run produced: the workflow's outputs and its trace."""

    outputs: dict[str, Any]
    #: the JSONL trace file (or the batch stream holding the trace), when one was written
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
        self._specs: frozenset[str] | None = None
        self._hash: str | None = None

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
    def program_hash(self) -> str:
        """The program's content hash (computed once: every traced run's header holds it)."""
        if self._hash is None:
            self._hash = self.program.content_hash()
        return self._hash

    @property
    def name(self) -> str:
        return self.program.entry

    def workflow(self, name: str | None = None) -> Workflow:
        return find_workflow(self.program, name)

    def check_inputs(self, inputs: Mapping[str, Any], workflow: str | None = None) -> None:
        """Raise `InputError` now if the inputs do not fit the workflow."""
        check_inputs(self.workflow(workflow), dict(inputs))

    async def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        *,
        workflow: str | None = None,
        session: Session | None = None,
        model: str | ModelBackend | None = None,
        models: Mapping[str, ModelBackend] | None = None,
        cache: bool | ModelCache = True,
        sandbox: SandboxSource = None,
        seed: int | None = None,
        trace: str | os.PathLike[str] | bool | TraceStream | StreamTrace | None = None,
        options: RunOptions | None = None,
        sinks: Iterable[Sink] = (),
        otel: bool = False,
    ) -> RunResult:
        """Run the flow's entry workflow (or `workflow`) on `inputs`.

        `session`: the `Session` whose backends, cache and sandbox the run uses (evaluations
        run every row in one); without one, the run opens a private session from `model`
        (the default model spec, None for the embedded SmolLM2, or a backend), `models`
        (backends for further specs steps name), `cache` (True: the on-disk cache, False, or a
        `ModelCache`) and `sandbox` (a `SandboxConfig`, "docker" — the default — "process",
        a `Sandbox` or a factory), and closes it at the end. `trace`: a JSONL path (the file is
        complete when `run` returns), True for `.treadle/traces/<time>-<workflow>.jsonl`,
        a batch stream or one run's place in it (`stream.trace(row=...)`: written with the
        stream's other runs, see `treadle.runtime.tracing.stream`), None/False for spans in
        memory only.
        `options`: concurrency, step timeout, retries (`RunOptions`). `otel`: also export
        spans through OpenTelemetry's global tracer provider (needs `opentelemetry-sdk`).
        """
        if session is not None and (
            model is not None or models or cache is not True or sandbox is not None
        ):
            raise TreadleError(
                "Flow.run takes either a session or model/models/cache/sandbox (which open a "
                "private session), not both: give them to the Session instead."
            )
        values = dict(inputs or {})
        wf = self.workflow(workflow)
        check_inputs(wf, values)  # before a trace file is created for nothing
        own = session is None
        if session is None:
            session = Session(model=model, models=models, cache=cache, sandbox=sandbox)
        session.check_specs(self.model_specs)
        tracer = Tracer(sinks)
        trace_path = self._trace_into(tracer, trace, wf.name, session.model_name, seed)
        if otel:
            from treadle.runtime.tracing import OtelSink

            tracer.add_sink(OtelSink())
        from treadle.stdlib_ops.registry import get as op_lookup

        state = RunState(tracer, session, seed=seed)
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
                if own:
                    await session.aclose()
            finally:
                tracer.close()
        return RunResult(outputs, trace_path, tracer.spans, tracer.trace_id)

    @property
    def model_specs(self) -> frozenset[str]:
        """The model specs the program's steps name as constants (`with model "..."`), for
        checking before a run (`Session.check_specs`)."""
        if self._specs is None:
            self._specs = frozenset(_step_specs(self.program))
        return self._specs

    def _trace_into(
        self,
        tracer: Tracer,
        trace: str | os.PathLike[str] | bool | TraceStream | StreamTrace | None,
        workflow: str,
        model: str | None,
        seed: int | None,
    ) -> Path | None:
        """Give `tracer` the sink `trace` asks for (a file, or a place in a stream); the path
        the trace is written to."""
        if not trace:
            return None
        header = {
            "workflow": workflow,
            "program_hash": self.program_hash,
            "source": str(self.path) if self.path else None,
            "model": model,
            "seed": seed,
        }
        if isinstance(trace, TraceStream):
            trace = trace.trace()
        if isinstance(trace, StreamTrace):
            trace.describe(header)
            tracer.attach(trace)
            return trace.stream.path
        path = default_trace_path(workflow) if trace is True else Path(trace)
        tracer.add_sink(JsonlSink(path, header=header))
        return path

    def run_sync(self, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """`run` for code without an event loop (takes the same options)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.run(inputs, **options))
        raise TreadleError(
            "Flow.run_sync was called from inside a running event loop; use `await flow.run(...)`."
        )


def _step_specs(program: Program) -> Iterator[str]:
    graphs = [wf.graph for wf in program.workflows.values()]
    while graphs:
        for node in graphs.pop().nodes:
            if isinstance(node, ir.Step):
                spec = node.options.get("model")
                if isinstance(spec, ir.Const) and isinstance(spec.value, str):
                    yield spec.value
            elif isinstance(node, ir.Branch):
                graphs.extend(arm.body for arm in node.arms)
            elif isinstance(node, ir.Loop | ir.Map):
                graphs.append(node.body)


def load(path: str | os.PathLike[str]) -> Flow:
    return Flow.load(path)


__all__ = ["Flow", "RunOptions", "RunResult", "SandboxConfig", "Session", "load"]
