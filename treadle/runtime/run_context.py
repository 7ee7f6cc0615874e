"""The concrete `OpContext`: what a step's operator reaches while it runs.

`RunState` holds what the steps of one run share: the model backends (loaded on first use, one
per spec), each wrapped in a per-backend concurrency limit and the content-addressed cache, the
sandbox (opened on first use, once per run, closed at the end) and the tracer. `StepContext` is
the per-step (per-sample) view handed to `Operator.run`; every model call and sandbox run it
makes becomes a child span of the step's span, with the GenAI attributes OpenTelemetry expects.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from treadle.errors import ModelError, SandboxError
from treadle.runtime.context import OpContext
from treadle.runtime.models.base import (
    Completion,
    GenParams,
    Message,
    ModelBackend,
    WrappedBackend,
)
from treadle.runtime.sandbox.base import ExecResult, Limits, Sandbox
from treadle.runtime.tracing import BLOB_MIN, Span, Tracer

if TYPE_CHECKING:
    from treadle.runtime.cache import CachedModel

SandboxFactory = Callable[[], Sandbox | Awaitable[Sandbox]]


#: one semaphore per backend object and event loop, so concurrent runs that share a backend
#: object (an agent passing the same `model=` to many runs) share its limit too
_SLOTS: weakref.WeakKeyDictionary[Any, dict[int, asyncio.Semaphore]] = weakref.WeakKeyDictionary()


def _slots_for(backend: ModelBackend, limit: int) -> asyncio.Semaphore:
    loop_id = id(asyncio.get_running_loop())
    try:
        per_loop = _SLOTS.setdefault(backend, {})
    except TypeError:  # a backend that cannot be weakly referenced: a limit per run
        return asyncio.Semaphore(limit)
    slots = per_loop.get(loop_id)
    if slots is None:
        per_loop.clear()  # the loops of earlier `run_sync` calls are gone
        slots = per_loop[loop_id] = asyncio.Semaphore(limit)
    return slots


class _Limited(WrappedBackend):
    """A backend behind a semaphore sized by its `max_concurrency`.

    It sits under the cache, so cache hits never wait for a slot.
    """

    def __init__(self, inner: ModelBackend) -> None:
        self.inner = inner
        self._limit = max(1, int(inner.max_concurrency or 1))
        self._slots = _slots_for(inner, self._limit)

    @property
    def max_concurrency(self) -> int:  # type: ignore[override]
        return self._limit

    async def complete(self, messages: list[Message], params: GenParams) -> Completion:
        async with self._slots:
            return await self.inner.complete(messages, params)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RunState:
    """Per-run resources shared by every step. Create one per run; `aclose()` it at the end.

    `model` is the run's default: a spec string (None = the embedded SmolLM2) or a backend.
    `models` maps further specs to ready backends (tests, embedding agents); other specs a step
    names are loaded with `load_model`. `cache` is True (the default on-disk cache), False, or a
    `ModelCache`.
    """

    def __init__(
        self,
        tracer: Tracer,
        *,
        model: str | ModelBackend | None = None,
        models: Mapping[str, ModelBackend] | None = None,
        cache: Any = True,
        seed: int | None = None,
        sandbox: Sandbox | SandboxFactory | str | None = None,
        isolation: str | None = None,
    ) -> None:
        self.tracer = tracer
        self.isolation = isolation  # "fresh" | "reset" | None (the sandbox's default)
        self.seed = seed
        self._default = model
        self._given: dict[str, ModelBackend] = dict(models or {})
        self._cache_setting = cache
        self._cache: Any = None
        self._backends: dict[str | None, CachedModel] = {}
        self._owned: list[ModelBackend] = []
        self._loading = asyncio.Lock()
        self._sandbox_source = sandbox
        self._sandbox: Sandbox | None = None
        self._sandbox_owned = False
        self._sandbox_lock = asyncio.Lock()

    def context(self, step_id: str, span: Span, sample: int = 0) -> StepContext:
        return StepContext(self, step_id, span, sample)

    # ------------------------------------------------------------ models

    async def backend(self, spec: str | None) -> CachedModel:
        """The (cached, limited) backend for `spec`; None is the run's default model."""
        found = self._backends.get(spec)
        if found is not None:
            return found
        async with self._loading:
            found = self._backends.get(spec)
            if found is None:
                found = self._wrap(await self._load(spec))
                self._backends[spec] = found
        return found

    async def _load(self, spec: str | None) -> ModelBackend:
        if spec is None:
            if isinstance(self._default, ModelBackend):
                return self._default
            spec = self._default
        if spec is not None and spec in self._given:
            return self._given[spec]
        from treadle.runtime.models.spec import load_model

        # building a backend can hash a multi-GB file: keep the loop free
        backend = await asyncio.to_thread(load_model, spec)
        self._owned.append(backend)
        return backend

    def _wrap(self, backend: ModelBackend) -> CachedModel:
        from treadle.runtime.cache import CachedModel, ModelCache

        limited = _Limited(backend)
        setting = self._cache_setting
        if setting is False or setting is None:
            return CachedModel(limited, enabled=False)
        if self._cache is None:
            self._cache = setting if isinstance(setting, ModelCache) else ModelCache()
        return CachedModel(limited, self._cache)

    def retries_inside(self, backend: ModelBackend) -> bool:
        """Whether a backend retries failed calls itself (the OpenAI-compatible one does)."""
        while True:
            if int(getattr(backend, "max_retries", 0) or 0) > 0:
                return True
            inner = getattr(backend, "inner", None)
            if not isinstance(inner, ModelBackend):
                return False
            backend = inner

    # ------------------------------------------------------------ sandbox

    async def sandbox(self) -> Sandbox:
        if self._sandbox is not None:
            return self._sandbox
        async with self._sandbox_lock:
            if self._sandbox is None:
                self._sandbox = await self._open_sandbox()
        return self._sandbox

    async def _open_sandbox(self) -> Sandbox:
        source = self._sandbox_source
        if isinstance(source, Sandbox):
            return source
        if source is None or isinstance(source, str):
            source = _default_sandbox_factory(
                source or "docker", self.tracer.trace_id[:12], self.isolation
            )
        self._sandbox_owned = True
        made = source()
        if inspect.isawaitable(made):
            made = await made
        if not isinstance(made, Sandbox):
            raise SandboxError(f"the sandbox factory returned {type(made).__name__}, not a Sandbox")
        return made

    # ------------------------------------------------------------ the end

    async def aclose(self) -> None:
        """Close what this run opened (the sandbox it started, backends it loaded)."""
        errors: list[BaseException] = []
        if self._sandbox is not None and self._sandbox_owned:
            try:
                await self._sandbox.aclose()
            except Exception as e:  # a failed cleanup must not hide the run's result
                errors.append(e)
            self._sandbox = None
        for backend in self._owned:
            try:
                await backend.aclose()
            except Exception as e:
                errors.append(e)
        self._owned.clear()
        if self._cache is not None and self._cache is not self._cache_setting:
            self._cache.close()
        self._cache = None


def _default_sandbox_factory(
    kind: str, run_id: str, isolation: str | None = None
) -> SandboxFactory:
    """`open_sandbox` of the sandbox package (Docker unless `kind` is "process"), imported only
    when a step needs a sandbox; its containers are labelled with the run's trace id."""
    if kind not in ("docker", "process"):
        raise SandboxError(f"unknown sandbox kind {kind!r}; use 'docker' or 'process'")
    if isolation not in (None, "fresh", "reset"):
        raise SandboxError(f"unknown isolation {isolation!r}; use 'fresh' or 'reset'")
    from treadle.runtime.sandbox import open_sandbox

    return functools.partial(
        open_sandbox,
        kind,  # type: ignore[arg-type]
        run_id=run_id,
        isolation=isolation,  # type: ignore[arg-type]
    )


class StepContext(OpContext):
    """What one step (one sample of it) may use; see `OpContext`."""

    def __init__(self, state: RunState, step_id: str, span: Span, sample: int = 0) -> None:
        self.state = state
        self.step_id = step_id
        self.span = span
        self.sample = sample
        self.seed = state.seed

    async def complete(
        self, messages: list[Message], params: GenParams, *, model: str | None = None
    ) -> Completion:
        backend = await self.state.backend(model)
        tracer = self.state.tracer
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": backend.backend,
            "gen_ai.request.model": backend.model,
            "gen_ai.request.temperature": params.temperature,
            "gen_ai.request.max_tokens": params.max_tokens,
            "gen_ai.request.top_p": params.top_p,
        }
        if params.seed is not None:
            attrs["gen_ai.request.seed"] = params.seed
        if self.sample:
            attrs["sample"] = self.sample
        span = tracer.start(
            "model",
            f"chat {backend.model}",
            self.span,
            step=self.step_id,
            op=self.span.op,
            inputs=[{"role": m.role, "content": m.content} for m in messages],
            attrs=attrs,
        )
        try:
            completion = await backend.complete(messages, params, sample=self.sample)
        except asyncio.CancelledError:
            tracer.end(span, "cancelled")
            raise
        except ModelError as e:
            tracer.end(span, "error", error=e.message)
            if e.retryable and self.state.retries_inside(backend):
                # the backend already retried with its own backoff (and Retry-After): a step
                # retry on top would multiply the attempts and the wait
                e.retryable = False
            raise
        except Exception as e:
            message = f"the model backend {backend.backend} failed: {type(e).__name__}: {e}"
            tracer.end(span, "error", error=message)
            raise ModelError(message) from e
        span.tokens_in = completion.usage.input_tokens
        span.tokens_out = completion.usage.output_tokens
        span.cached = completion.cached
        attrs["gen_ai.usage.input_tokens"] = completion.usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = completion.usage.output_tokens
        attrs["gen_ai.response.model"] = completion.model or backend.model
        attrs["gen_ai.response.finish_reasons"] = [completion.finish_reason]
        tracer.end(span, "ok", outputs=completion.text)
        return completion

    async def sandbox(self) -> Sandbox:
        return _TracedSandbox(await self.state.sandbox(), self)

    def event(self, name: str, **attributes: Any) -> None:
        self.state.tracer.event(self.span, name, **attributes)


def _file_input(tracer: Tracer, data: bytes) -> Any:
    """A sandbox file as a span input: its text, or for a large file (the harness script, the
    same in every run) a reference to the one copy the trace stores."""
    if not tracer.record_values:
        return None
    if len(data) >= BLOB_MIN:
        return tracer.blob(data)
    return data.decode("utf-8", "replace")


class _TracedSandbox(Sandbox):
    """The run's sandbox as one step sees it: each run is a `sandbox` span under the step."""

    def __init__(self, inner: Sandbox, ctx: StepContext) -> None:
        self.inner = inner
        self.ctx = ctx

    async def run(
        self,
        command: list[str],
        *,
        files: dict[str, bytes] | None = None,
        stdin: bytes | None = None,
        limits: Limits | None = None,
    ) -> ExecResult:
        tracer = self.ctx.state.tracer
        span = tracer.start(
            "sandbox",
            "sandbox " + (command[0] if command else "run"),
            self.ctx.span,
            step=self.ctx.step_id,
            op=self.ctx.span.op,
            inputs={
                "command": command,
                "files": {name: _file_input(tracer, data) for name, data in (files or {}).items()},
            },
        )
        try:
            result = await self.inner.run(command, files=files, stdin=stdin, limits=limits)
        except asyncio.CancelledError:
            tracer.end(span, "cancelled")
            raise
        except Exception as e:
            tracer.end(
                span, "error", error=getattr(e, "message", None) or f"{type(e).__name__}: {e}"
            )
            raise
        span.attrs.update(
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            oom_killed=result.oom_killed,
            duration_s=result.duration_s,
        )
        tracer.end(
            span,
            "ok",
            outputs={
                "stdout": result.stdout,
                "stderr": result.stderr,
                "exit_code": result.exit_code,
            },
        )
        return result

    async def aclose(self) -> None:
        """The run owns the sandbox: a step closing its view must not stop it."""
