"""A minimal OpContext over the scripted model: operators run exactly as under the scheduler,
minus the cache, limits and spans (those are the scheduler's tests)."""

from __future__ import annotations

from typing import Any

import pytest

from treadle.runtime.context import OpContext
from treadle.runtime.models.base import Completion, GenParams, Message
from treadle.runtime.models.scripted import ScriptedBackend
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


async def call(op_name: str, ctx: OpContext, args: dict[str, Any], options: dict[str, Any] | None = None) -> Any:  # fmt: skip
    """Run an operator the way the scheduler does: validate args and options into the
    operator's own models, then call `run`."""
    op = registry.get(op_name)
    assert op is not None, f"operator {op_name!r} is not registered"
    return await op.run(ctx, op.args.model_validate(args), op.options.model_validate(options or {}))


def scripted(*answers: str) -> ScriptContext:
    return ScriptContext(ScriptedBackend(list(answers)))


@pytest.fixture
def ctx_of() -> Any:
    return scripted
