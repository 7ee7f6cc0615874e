"""The one runner every analysis goes through: run a flow on one row-epoch, score it, report it.

The executor seam. `evaluate()` turns the dataset into `RowJob`s: plain, picklable values (the
flow's source text and path, the row, the scorer specs as strings with their options, the
model spec string, the seed and epoch, the options). `run_row(job, resources)` is the single
function that runs one job and returns its `RowReport`; every executor calls it:
- the local executor (`evaluate.py`) maps it over the jobs with bounded concurrency in one event
  loop, all jobs sharing one `EvalResources`;
- the Ray executor (`ray_executor.py`) ships jobs to workers, each of which holds its own
  `EvalResources` (compiled flows, backends, cache, one sandbox pool) and calls `run_row`.
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
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, Field

from treadle.eval.datasets import Row
from treadle.eval.report import RowReport, StepStats
from treadle.eval.scorers import Score, Scorer, ScorerError, as_text, resolve_scorer
from treadle.errors import InputError, ModelError, SandboxError, StepTimeout, TreadleError
from treadle.runtime.models.base import ModelBackend, WrappedBackend
from treadle.runtime.sandbox.base import ExecResult, Limits, Sandbox

if TYPE_CHECKING:
    from treadle.flow import Flow
    from treadle.runtime.tracing import Span


class ScorerSpec(BaseModel):
    spec: str
    options: dict[str, Any] = Field(default_factory=dict)


class RowJob(BaseModel):
    """One row-epoch to run: everything `run_row` needs, as plain values (picklable)."""

    flow_source: str
    #: Graph IR JSON, for a flow given without source text (`Flow.from_json`)
    flow_ir: str | None = None
    flow_path: str | None = None
    workflow: str | None = None
    row: Row
    epoch: int = 0
    seed: int = 0
    scorers: list[ScorerSpec]
    #: which workflow output is scored (None: the workflow's first declared output)
    output: str | None = None
    model: str | None = None
    trace_path: str | None = None
    row_timeout: float | None = None
    step_timeout: float | None = None
    retries: int = 2
    #: most steps of one row running at once
    step_concurrency: int = 16


class _SharedSandbox(Sandbox):
    """One sandbox (a Docker warm pool) for every row, opened on the first run that needs it,
    so an evaluation that runs no code never starts Docker."""

    def __init__(self, kind: str, pool_size: int, isolation: str | None = None) -> None:
        self.kind = kind
        self.pool_size = pool_size
        self.isolation = isolation
        self._inner: Sandbox | None = None
        self._lock = asyncio.Lock()
        self.runs = 0

    async def get(self) -> Sandbox:
        if self._inner is None:
            async with self._lock:
                if self._inner is None:
                    from treadle.runtime.sandbox import open_sandbox

                    self._inner = await open_sandbox(
                        self.kind,  # type: ignore[arg-type]
                        pool_size=self.pool_size,
                        run_id=f"eval-{uuid.uuid4().hex[:8]}",
                        isolation=self.isolation,  # type: ignore[arg-type]
                    )
        return self._inner

    async def run(
        self,
        command: list[str],
        *,
        files: dict[str, bytes] | None = None,
        stdin: bytes | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        inner = await self.get()
        self.runs += 1
        return await inner.run(command, files=files, stdin=stdin, limits=limits)

    async def aclose(self) -> None:
        if self._inner is not None:
            inner, self._inner = self._inner, None
            await inner.aclose()


class EvalResources:
    """What every row of an evaluation shares: ONE set of model backends, the cache, ONE
    sandbox pool, and the compiled flows and scorers. An async context manager.

    `model`: the default model (a spec string, None for the embedded SmolLM2, or a backend);
    `models`: ready backends for further specs; `cache`: True (the on-disk cache), False or a
    `ModelCache`; `sandbox`: "docker", "process" (no isolation: explicit opt-in) or a `Sandbox`
    instance; `isolation`: the Docker sandbox's "reset" (a container reused after a verified
    reset; None: the sandbox's default) or "fresh" (a new container per run).
    """

    def __init__(
        self,
        *,
        model: str | ModelBackend | None = None,
        models: Mapping[str, ModelBackend] | None = None,
        cache: Any = True,
        sandbox: str | Sandbox = "docker",
        isolation: str | None = None,
        sandbox_pool: int = 2,
    ) -> None:
        self.model_spec = model if isinstance(model, str | None) else None
        self._default: ModelBackend | None = model if isinstance(model, ModelBackend) else None
        self._given: dict[str, ModelBackend] = dict(models or {})
        self._loaded: dict[str | None, ModelBackend] = {}
        self._owned: list[ModelBackend] = []
        self._load_lock = threading.Lock()
        self.cache_enabled = cache is not False and cache is not None
        self._cache_setting = cache
        self._cache: Any = None
        if isolation not in (None, "fresh", "reset"):
            raise InputError(f"--isolation is fresh or reset, got {isolation!r}.")
        kind = sandbox
        if isinstance(kind, Sandbox):
            self._sandbox: Sandbox = kind
            self._sandbox_owned = False
        else:
            if kind not in ("docker", "process"):
                raise InputError(f"--sandbox is docker or process, got {kind!r}.")
            self._sandbox = _SharedSandbox(kind, sandbox_pool, isolation)
            self._sandbox_owned = True
        self._flows: dict[tuple[str, str | None], Flow] = {}
        #: the default model as the flows see it: loaded when a step first calls it, so an
        #: evaluation whose flow makes no model call never loads one
        self._lazy = _LazyBackend(self)
        self._scorers: dict[str, Scorer] = {}
        self.sandbox_kind = kind if isinstance(kind, str) else "custom"

    async def __aenter__(self) -> EvalResources:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ shared parts

    @property
    def cache(self) -> Any:
        """The one `ModelCache` (None with caching off); opened on first use."""
        if not self.cache_enabled:
            return None
        if self._cache is None:
            from treadle.runtime.cache import ModelCache

            setting = self._cache_setting
            self._cache = setting if isinstance(setting, ModelCache) else ModelCache()
        return self._cache

    async def backend(self, spec: str | None = None) -> ModelBackend:
        """The backend for `spec` (None: the evaluation's default), loaded once and shared."""
        if spec is None and self._default is not None:
            return self._default
        key = spec if spec is not None else self.model_spec
        if key is not None and key in self._given:
            return self._given[key]
        found = self._loaded.get(key)
        if found is not None:
            return found
        # building a backend can hash a multi-GB file: keep the loop free
        return await asyncio.to_thread(self.load_now, key)

    def load_now(self, key: str | None) -> ModelBackend:
        """Load the backend of a spec (once; thread-safe)."""
        with self._load_lock:
            found = self._loaded.get(key)
            if found is None:
                from treadle.runtime.models.spec import load_model

                found = load_model(key)
                if key is not None and key.startswith("scripted:"):
                    # every script is "scripted" to the cache key: name this one by its text,
                    # so a cached answer of another script is never replayed for it
                    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
                    found.model = f"{found.model}#{digest}"
                self._owned.append(found)
                self._loaded[key] = found
        return found

    async def model(self, spec: str | None) -> ModelBackend:
        """A backend for a scorer (the judge), behind the shared cache."""
        from treadle.runtime.cache import CachedModel

        inner = await self.backend(spec)
        if self.cache is None:
            return inner
        cached = CachedModel(inner, self.cache)
        return _Adapter(cached)

    async def sandbox(self) -> Sandbox:
        return self._sandbox

    @property
    def sandbox_runs(self) -> int:
        return getattr(self._sandbox, "runs", 0)

    def flow(self, job: RowJob) -> Flow:
        """The compiled flow of a job (compiled once per source and path, then shared)."""
        text = job.flow_source or job.flow_ir or ""
        key = (hashlib.sha256(text.encode()).hexdigest(), job.flow_path)
        found = self._flows.get(key)
        if found is None:
            from treadle.flow import Flow
            from treadle.compiler import compile_source

            path = job.flow_path
            if job.flow_source:
                base = Path(path).resolve().parent if path else None
                program = compile_source(job.flow_source, path, base_dir=base)
                found = Flow(program, path=Path(path) if path else None)
            else:
                found = Flow.from_json(text)
            self._flows[key] = found
        return found

    def scorer(self, spec: ScorerSpec) -> Scorer:
        key = spec.spec + "\0" + orjson.dumps(spec.options, option=orjson.OPT_SORT_KEYS).decode()
        found = self._scorers.get(key)
        if found is None:
            found = self._scorers[key] = resolve_scorer(spec.spec, **spec.options)
        return found

    def add_scorer(self, spec: ScorerSpec, scorer: Scorer) -> None:
        """Register an already-built scorer (API callers may pass Scorer objects)."""
        key = spec.spec + "\0" + orjson.dumps(spec.options, option=orjson.OPT_SORT_KEYS).decode()
        self._scorers[key] = scorer

    async def run_flow(self, scorer_or_flow: Any, inputs: dict[str, Any], seed: int | None) -> Any:
        """Run a scorer flow on the shared resources; its outputs."""
        flow = getattr(scorer_or_flow, "flow", scorer_or_flow)
        result = await flow.run(inputs, **await self.run_options(seed))
        return result.outputs

    async def run_options(self, seed: int | None) -> dict[str, Any]:
        return {
            "model": self._default or self._lazy,
            "models": self._given or None,
            "cache": self.cache if self.cache_enabled else False,
            "seed": seed,
            "sandbox": self._sandbox,
        }

    async def aclose(self) -> None:
        errors: list[BaseException] = []
        if self._sandbox_owned:
            try:
                await self._sandbox.aclose()
            except Exception as e:
                errors.append(e)
        for backend in self._owned:
            try:
                await backend.aclose()
            except Exception as e:
                errors.append(e)
        self._owned.clear()
        self._loaded.clear()
        if self._cache is not None and self._cache is not self._cache_setting:
            self._cache.close()
        self._cache = None


class _LazyBackend(WrappedBackend):
    """The evaluation's default model, loaded on first use (by the run that first needs it)
    and then shared by every row: one object, so one concurrency limit across rows."""

    def __init__(self, resources: EvalResources) -> None:
        self._resources = resources

    @property
    def inner(self) -> ModelBackend:  # type: ignore[override]
        return self._resources.load_now(self._resources.model_spec)


class _Adapter(WrappedBackend):
    """A `CachedModel` seen as a plain backend (its `complete` takes an extra `sample`)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner


class RowJobRunner:
    """What a Ray worker holds: plain settings (picklable); `setup` builds its own
    `EvalResources` (backends, cache, one sandbox pool) in the worker's loop, then `run` calls
    `run_row` for each job it is sent."""

    def __init__(
        self,
        *,
        model: str | None,
        cache: bool = True,
        sandbox: str = "docker",
        isolation: str | None = None,
    ) -> None:
        self.model = model
        self.cache = cache
        self.sandbox = sandbox
        self.isolation = isolation
        self._resources: EvalResources | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "cache": self.cache,
            "sandbox": self.sandbox,
            "isolation": self.isolation,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    async def setup(self) -> None:
        self._resources = EvalResources(
            model=self.model, cache=self.cache, sandbox=self.sandbox, isolation=self.isolation
        )

    async def run(self, job: RowJob) -> RowReport:
        if self._resources is None:
            await self.setup()
        assert self._resources is not None
        return await run_row(job, self._resources)

    async def aclose(self) -> None:
        if self._resources is not None:
            await self._resources.aclose()
            self._resources = None


# ---------------------------------------------------------------- one row


def classify(error: BaseException) -> tuple[Literal["failed", "error"], str]:
    """("error" | "failed", kind): infrastructure vs the workflow's own failure."""
    seen: set[int] = set()
    e: BaseException | None = error
    kinds = []
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        kinds.append(type(e).__name__)
        if isinstance(e, ModelError | SandboxError | StepTimeout | TimeoutError):
            return "error", "/".join(kinds)
        nxt = getattr(e, "cause", None)
        e = nxt if isinstance(nxt, BaseException) else (e.__cause__ or e.__context__)
    if isinstance(error, TreadleError):
        return "failed", "/".join(kinds)
    return "error", "/".join(kinds)  # a bug (in treadle or an operator): not the flow's fault


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
            st = steps.setdefault(s.name, StepStats())
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
            if parent.kind == "step" and parent.name in steps:
                steps[parent.name].tokens_in += s.tokens_in or 0
                steps[parent.name].tokens_out += s.tokens_out or 0
    for st in steps.values():
        timed = st.runs - st.skips
        st.total_latency_s = round(st.total_latency_s, 6)
        st.mean_latency_s = st.total_latency_s / timed if timed else 0.0
    report.steps = steps


async def run_row(job: RowJob, resources: EvalResources) -> RowReport:
    """Run one row-epoch: the flow, then every scorer; never raises for the row's own problems
    (they are in the report's status and error), only for cancellation."""
    flow = resources.flow(job)
    wf = flow.workflow(job.workflow)
    row = job.row
    report = RowReport(
        id=row.id,
        epoch=job.epoch,
        inputs_digest=inputs_digest(row.inputs),
        target=row.target,
        trace_path=job.trace_path,
        seed=job.seed,
    )
    start = time.perf_counter()
    spans: list[Span] = []
    try:
        options = await resources.run_options(job.seed)
        run = flow.run(
            row.inputs,
            workflow=wf.name,
            trace=job.trace_path or None,
            concurrency=job.step_concurrency,
            step_timeout=job.step_timeout,
            retries=job.retries,
            **options,
        )
        result = await (asyncio.wait_for(run, job.row_timeout) if job.row_timeout else run)
        spans = result.spans
    except TimeoutError:
        report.status, report.error_kind = "error", "row timeout"
        report.error = f"the row ran past its time limit of {job.row_timeout:g} s"
    except asyncio.CancelledError:
        raise
    except Exception as e:
        spans = list(getattr(e, "spans", None) or [])
        report.status, report.error_kind = classify(e)
        report.error = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
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
        scorer = resources.scorer(spec)
        try:
            score: Score = await scorer.score(output, row.target, row, resources)
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
    "EvalResources",
    "RowJob",
    "ScorerError",
    "ScorerSpec",
    "classify",
    "run_row",
]
