"""The one runner every analysis goes through: run a flow on one row-epoch, score it, report it.

The executor seam. `evaluate()` turns the dataset into `RowJob`s: plain, picklable values (the
compiled program, the row, the scorer specs as strings with their options, the seed and epoch).
`run_row(job, runner)` is the single function that runs one job and returns its `RowReport`;
every executor calls it through a `RowRunner` (one `Session` plus the flows and scorers built
from the jobs):
- the local executor maps it over the jobs with bounded concurrency in one event loop, all
  jobs sharing one session;
- the Ray executor ships jobs to workers, each of which holds a `RemoteRowRunner` that opens
  its own session (backends, cache, one sandbox pool) from the pickled `RunConfig`.
Either way each finished job goes to the same `on_result` callback, which appends it to the
results file and updates the progress display.

Errors are not zeros (`classify`): a run that failed because of infrastructure (a `ModelError`,
a `SandboxError`, a step or row timeout, a scorer that could not run, a bug) is status "error",
kept out of the score; a workflow that failed on its own (a step raised on bad output, a
failed expression) is status "failed" and scores 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from treadle.errors import ModelError, SandboxError, StepTimeout, TreadleError
from treadle.eval.datasets import Row
from treadle.eval.options import RunConfig
from treadle.eval.report import RowReport, StepStats
from treadle.eval.scorers import Score, Scorer, ScorerError, as_text, resolve_scorer
from treadle.flow import Flow
from treadle.runtime.expr import ExprError
from treadle.runtime.ir import Program
from treadle.runtime.models.base import ModelBackend
from treadle.runtime.sandbox.base import Sandbox
from treadle.runtime.session import Session
from treadle.runtime.tracing import StreamTrace, TraceStream, open_stream

if TYPE_CHECKING:
    from treadle.runtime.tracing import Span


class ScorerSpec(BaseModel):
    spec: str
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.spec + "\0" + orjson.dumps(self.options, option=orjson.OPT_SORT_KEYS).decode()


class RowJob(BaseModel):
    """One row-epoch to run: everything but the shared settings, as plain values (it pickles,
    for Ray). It carries the compiled program, so a flow is compiled once per evaluation."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    program: Program
    flow_path: str | None = None
    workflow: str | None = None
    row: Row
    epoch: int = 0
    seed: int = 0
    scorers: list[ScorerSpec]
    #: which workflow output is scored (None: the workflow's first declared output)
    output: str | None = None
    #: the folder of the evaluation's trace streams (None: no trace), and the evaluation's
    #: name in them (its results file's), so runs of evaluations sharing a stream stay apart
    traces: str | None = None
    trace_group: str | None = None


def trace_stream_path(folder: str | os.PathLike[str], worker: str = "local") -> Path:
    """The trace stream a worker writes in an evaluation's trace folder: `WORKER.jsonl`."""
    return Path(folder) / f"{worker}.jsonl"


class RowRunner:
    """Runs row jobs in one `Session`: every row shares its backends, its cache and its one
    sandbox pool; a program is turned into a `Flow` once (its plans shared by every row) and a
    scorer is built once per spec. It is also what scorers see (`ScoreEnv`).

    Row traces go to one stream per worker in the job's trace folder, `WORKER.jsonl` (`worker`:
    "local" in the evaluating process, a name per process on Ray), opened at the first row and
    closed by `close_traces`."""

    def __init__(self, session: Session, run: RunConfig, *, worker: str = "local") -> None:
        self.session = session
        self.run_config = run
        self.worker = worker
        self._flows: dict[str, Flow] = {}
        self._by_id: dict[int, Flow] = {}
        self._scorers: dict[str, Scorer] = {}
        self._streams: dict[str, TraceStream] = {}

    def flow(self, job: RowJob) -> Flow:
        found = self._by_id.get(id(job.program))
        if found is None:
            key = job.program.content_hash() + "\0" + (job.flow_path or "")
            found = self._flows.get(key)
            if found is None:
                path = Path(job.flow_path) if job.flow_path else None
                found = self._flows[key] = Flow(job.program, path=path)
            self._by_id[id(job.program)] = found
        return found

    def scorer(self, spec: ScorerSpec) -> Scorer:
        found = self._scorers.get(spec.key)
        if found is None:
            found = self._scorers[spec.key] = resolve_scorer(spec.spec, **spec.options)
        return found

    def row_trace(self, job: RowJob) -> StreamTrace | None:
        """The job's place in this worker's trace stream (None when traces are off)."""
        if job.traces is None:
            return None
        stream = self._streams.get(job.traces)
        if stream is None:
            path = trace_stream_path(job.traces, self.worker)
            stream = self._streams[job.traces] = open_stream(path)
        labels = {"row": job.row.id, "epoch": job.epoch, "group": job.trace_group}
        return stream.trace(**labels)

    def close_traces(self) -> None:
        """Write what the streams hold and let go of them."""
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.close()

    def add_scorer(self, spec: ScorerSpec, scorer: Scorer) -> None:
        """Register an already-built scorer (API callers may pass Scorer objects)."""
        self._scorers[spec.key] = scorer

    # ---- ScoreEnv: what scorers use

    async def sandbox(self) -> Sandbox:
        return self.session.sandbox()

    async def model(self, spec: str | None) -> ModelBackend:
        return await self.session.model(spec)

    async def run_flow(self, flow: Flow, inputs: dict[str, Any], seed: int | None) -> Any:
        """Run a scorer flow in the session; its outputs."""
        result = await flow.run(inputs, session=self.session, seed=seed)
        return result.outputs

    async def run(self, job: RowJob) -> RowReport:
        return await run_row(job, self)


class RemoteRowRunner:
    """What a Ray worker holds: the run settings only (they pickle); `setup` opens the
    worker's own session (backends, cache, one sandbox pool) in the worker's loop."""

    def __init__(self, run: RunConfig) -> None:
        self.run_config = run
        self._runner: RowRunner | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"run_config": self.run_config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["run_config"])  # type: ignore[misc]

    async def setup(self) -> None:
        # one trace stream per worker process: workers of one machine share the folder
        worker = f"ray-{socket.gethostname()}-{os.getpid()}"
        self._runner = RowRunner(self.run_config.session(), self.run_config, worker=worker)

    async def run(self, job: RowJob) -> RowReport:
        if self._runner is None:
            await self.setup()
        assert self._runner is not None
        return await self._runner.run(job)

    async def aclose(self) -> None:
        if self._runner is not None:
            try:
                await self._runner.session.aclose()
            finally:
                self._runner.close_traces()
                self._runner = None


# ---------------------------------------------------------------- one row


#: what the infrastructure failed to produce: never a score (a refused or reset connection, a
#: full disk and every other OS error included)
_INFRASTRUCTURE = (ModelError, SandboxError, StepTimeout, TimeoutError, OSError)
#: a verdict the workflow produced on its own: an operator that rejected its input, an
#: expression that failed, a loop that ran out of turns
_THE_WORKFLOWS_OWN = (TreadleError, ExprError)


def causes(error: BaseException) -> list[BaseException]:
    """`error` and what it was explicitly raised from (a step failure's cause, `raise ... from
    e`), outermost first. An implicit context is not a cause: an operator that raises a
    `StepError` while handling a parse error has decided the failure is the input's."""
    chain: list[BaseException] = []
    e: BaseException | None = error
    while e is not None and all(e is not seen for seen in chain):
        chain.append(e)
        explicit = getattr(e, "cause", None)
        e = explicit if isinstance(explicit, BaseException) else e.__cause__
    return chain


def classify(error: BaseException) -> tuple[Literal["failed", "error"], str]:
    """("error" | "failed", kind). Only a verdict the workflow itself produced is a failure
    (scored 0); anything the infrastructure failed to produce is an error (kept out of the
    score, `None` to a trainer), and so is a bug in treadle or an operator (an exception that
    is not treadle's own, anywhere in the chain), with its cause in the kind."""
    chain = causes(error)
    kind = "/".join(type(e).__name__ for e in chain)
    if any(isinstance(e, _INFRASTRUCTURE) for e in chain):
        return "error", kind
    if all(isinstance(e, _THE_WORKFLOWS_OWN) for e in chain):
        return "failed", kind
    return "error", kind


def inputs_digest(inputs: Mapping[str, Any]) -> str:
    data = orjson.dumps(dict(inputs), option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(data).hexdigest()[:16]


def pick_output(outputs: Mapping[str, Any], declared: list[str], name: str | None) -> Any:
    if name is not None:
        return outputs.get(name)
    if declared:
        return outputs.get(declared[0])
    return next(iter(outputs.values()), None) if outputs else None


def _stats(spans: list[Span], report: RowReport) -> None:
    """Counters and per-step statistics of one run, from its spans."""
    by_id = {s.span_id: s for s in spans}
    workflow = next((s.name for s in spans if s.kind == "workflow" and s.parent_id is None), "")
    steps: dict[str, StepStats] = {}
    for s in spans:
        if s.kind == "model":
            report.model_calls += 1
            report.cached_calls += 1 if s.cached else 0
            report.tokens_in += s.tokens_in or 0
            report.tokens_out += s.tokens_out or 0
        elif s.kind == "sandbox":
            report.sandbox_runs += 1
        elif s.kind == "step":
            st = steps.setdefault(_step_key(s, workflow), StepStats())
            st.runs += 1
            if s.status == "skipped":
                st.skips += 1
            elif s.status == "error":
                st.failures += 1
            if s.status != "skipped" and s.end is not None:
                st.total_latency_s += s.end - s.start
    for s in spans:
        if s.kind == "model" and s.parent_id in by_id:
            parent = by_id[s.parent_id]
            if parent.kind == "step" and _step_key(parent, workflow) in steps:
                steps[_step_key(parent, workflow)].tokens_in += s.tokens_in or 0
                steps[_step_key(parent, workflow)].tokens_out += s.tokens_out or 0
    for st in steps.values():
        timed = st.runs - st.skips
        st.total_latency_s = round(st.total_latency_s, 6)
        st.mean_latency_s = st.total_latency_s / timed if timed else 0.0
    report.steps = steps


def _step_key(span: Span, workflow: str) -> str:
    """A step's identity in the per-step statistics: its IR node id, relative to the workflow
    run (`draft`, `repeat1.draft`, `draft#2`; a called workflow's `inner.answer`), never the
    name it binds, which several steps may share; a loop's turns by their number."""
    if span.step is None:
        return span.name
    key = span.step.removeprefix(f"{workflow}.")
    return f"{key} turn {span.name.rsplit(' ', 1)[-1]}" if span.op == "turn" else key


async def run_row(job: RowJob, runner: RowRunner) -> RowReport:
    """Run one row-epoch: the flow, then every scorer; never raises for the row's own problems
    (they are in the report's status and error), only for cancellation."""
    flow = runner.flow(job)
    settings = runner.run_config
    wf = flow.workflow(job.workflow)
    row = job.row
    report = RowReport(
        id=row.id,
        epoch=job.epoch,
        inputs_digest=inputs_digest(row.inputs),
        target=row.target,
        seed=job.seed,
    )
    start = time.perf_counter()
    spans: list[Span] = []
    trace = runner.row_trace(job)
    try:
        run = flow.run(
            row.inputs,
            workflow=wf.name,
            session=runner.session,
            seed=job.seed,
            trace=trace,
            options=settings.run_options,
        )
        limit = settings.row_timeout
        result = await (asyncio.wait_for(run, limit) if limit else run)
        spans = result.spans
    except TimeoutError:
        report.status, report.error_kind = "error", "row timeout"
        report.error = f"the row ran past its time limit of {limit:g} s"
    except asyncio.CancelledError:
        raise
    except Exception as e:
        spans = list(getattr(e, "spans", None) or [])
        report.status, report.error_kind = classify(e)
        report.error = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
    ref = trace.ref() if trace is not None else None  # on disk before the report points at it
    if ref is not None:
        report.trace_path, report.trace_id, report.trace_offset = (
            str(ref.path),
            ref.trace_id,
            ref.offset,
        )
    _stats(spans, report)
    if report.status != "ok":
        report.latency_s = round(time.perf_counter() - start, 6)
        if report.status == "failed":
            report.scores = {s.spec: 0.0 for s in job.scorers}
            report.score = 0.0
        return report
    report.outputs = {k: _jsonable(v) for k, v in result.outputs.items()}
    output = pick_output(result.outputs, [f.name for f in wf.outputs], job.output)
    report.output = _jsonable(output)
    for i, spec in enumerate(job.scorers):
        scorer = runner.scorer(spec)
        try:
            score: Score = await scorer.score(output, row.target, row, runner)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            report.status = "error"
            report.error_kind = f"scorer {scorer.name}: {classify(e)[1]}"
            message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            report.error = f"the scorer {scorer.name} could not score the output: {message}"
            report.scores = {}
            report.score = None
            break
        report.scores[spec.spec] = score.value
        report.sandbox_runs += int(score.metadata.get("sandbox_runs", 0))
        if score.explanation:
            report.explanations[spec.spec] = score.explanation
        if i == 0:
            report.score = score.value
    report.latency_s = round(time.perf_counter() - start, 6)
    return report


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return as_text(value)


__all__ = [
    "RemoteRowRunner",
    "RowJob",
    "RowRunner",
    "ScorerError",
    "ScorerSpec",
    "classify",
    "run_row",
    "trace_stream_path",
]
