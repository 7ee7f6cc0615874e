"""A minimal OpContext over the scripted model: operators run exactly as under the scheduler,
minus the cache, limits and spans (those are the scheduler's tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from treadle.runtime.models.base import Completion, GenParams, Message
from treadle.runtime.models.scripted import ScriptedBackend
from treadle.runtime.op_context import OpContext
from treadle.runtime.sandbox.base import Sandbox
from treadle.stdlib_ops import registry


class ScriptContext(OpContext):
    def __init__(self, backend: ScriptedBackend, *, seed: int | None = None, sample: int = 0):
        self.backend = backend
        self.step_id = "step"
        self.seed = seed
        self.sample = sample
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.models: list[str | None] = []

    async def complete(
        self, messages: list[Message], params: GenParams, *, model: str | None = None
    ) -> Completion:
        self.models.append(model)
        return await self.backend.complete(messages, params)

    async def sandbox(self) -> Sandbox:
        raise AssertionError("these operators never use the sandbox")

    def event(self, name: str, **attributes: Any) -> None:
        self.events.append((name, attributes))

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


async def run_op(
    op_name: str, ctx: OpContext, args: dict[str, Any], options: dict[str, Any] | None = None
) -> Any:
    """Run an operator the way the scheduler does: validate args and options into the
    operator's own models, then call `run`."""
    op = registry.get(op_name)
    assert op is not None, f"operator {op_name!r} is not registered"
    return await op.run(ctx, op.args.model_validate(args), op.options.model_validate(options or {}))


def script_context(*answers: str) -> ScriptContext:
    """A context whose model replies with `answers`, in order."""
    return ScriptContext(ScriptedBackend(list(answers)))


Call = Callable[..., Awaitable[Any]]
Scripted = Callable[..., ScriptContext]


@pytest.fixture
def call() -> Call:
    return run_op


@pytest.fixture
def scripted() -> Scripted:
    return script_context
