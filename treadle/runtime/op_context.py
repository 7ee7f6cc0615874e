"""What an operator may use while it runs: models, the sandbox, the trace.

The scheduler implements this; operators depend only on this interface, so they can be tested
with a scripted model and never import the scheduler or the CLI.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pydantic import BaseModel

from treadle.runtime.models.base import Completion, GenParams, Message
from treadle.runtime.sandbox.base import Sandbox


class OpContext(abc.ABC):
    #: the IR node id of the step being run
    step_id: str
    #: the run's seed, if any; operators derive per-sample seeds from it
    seed: int | None = None
    #: which of a step's `samples` this call is (0-based); part of the model cache key, so
    #: the samples of one step stay distinct while a re-run of the same sample hits the cache
    sample: int = 0

    @abc.abstractmethod
    async def complete(
        self, messages: list[Message], params: GenParams, *, model: str | None = None
    ) -> Completion:
        """Call a model (the run's default, or the spec `model`) through cache, limits and trace."""

    @abc.abstractmethod
    async def sandbox(self) -> Sandbox:
        """The run's sandbox (started on first use)."""

    @abc.abstractmethod
    def event(self, name: str, **attributes: Any) -> None:
        """Record a notable event on the step's trace span (e.g. a fallback taken)."""


class RunnableOperator(Protocol):
    """What the scheduler needs of an operator (`treadle.stdlib_ops.registry.Operator` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def args(self) -> type[BaseModel]: ...

    @property
    def options(self) -> type[BaseModel]: ...

    @property
    def run(self) -> Callable[[OpContext, Any, Any], Awaitable[Any]]: ...


#: how a run finds an operator by name; the layer above the runtime hands it in (the runtime
#: imports no operator library)
OperatorLookup = Callable[[str], RunnableOperator | None]
