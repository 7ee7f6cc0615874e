"""The concrete `OpContext`: what a step's operator reaches while it runs.

`RunState` is one run's view of its `Session` (which owns the model backends, the cache and the
sandbox) with the run's tracer and seed. `StepContext` is the per-step (per-sample) view handed
to `Operator.run`; every model call and sandbox run it makes becomes a child span of the step's
span, with the GenAI attributes OpenTelemetry expects.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from treadle.errors import ModelError
from treadle.runtime.models.base import Completion, GenParams, Message, ModelBackend
from treadle.runtime.op_context import OpContext
from treadle.runtime.sandbox.base import ExecResult, Limits, Sandbox
from treadle.runtime.session import Session
from treadle.runtime.tracing import BLOB_MIN, Span, Tracer

if TYPE_CHECKING:
    from treadle.runtime.cache import CachedModel


class RunState:
    """One run's view of a `Session`: the session's backends and sandbox, the run's tracer and
    seed. Create one per run; the session outlives it (and is closed by its owner)."""

    def __init__(self, tracer: Tracer, session: Session, *, seed: int | None = None) -> None:
        self.tracer = tracer
        self.session = session
        self.seed = seed

    def context(self, step_id: str, span: Span, sample: int = 0) -> StepContext:
        return StepContext(self, step_id, span, sample)

    async def backend(self, spec: str | None) -> CachedModel:
        """The session's (cached, limited) backend for `spec`; None is the default model."""
        return await self.session.backend(spec)

    def retries_inside(self, backend: ModelBackend) -> bool:
        """Whether a backend retries failed calls itself (the OpenAI-compatible one does)."""
        while True:
            if int(getattr(backend, "max_retries", 0) or 0) > 0:
                return True
            inner = getattr(backend, "inner", None)
            if not isinstance(inner, ModelBackend):
                return False
            backend = inner


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
        return _TracedSandbox(self.state.session.sandbox(), self)

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
