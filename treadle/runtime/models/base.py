"""The one interface every model backend implements.

Operators never talk to a backend directly: they call `OpContext.complete`, which adds the
cache, the per-backend concurrency limit and the trace span around `ModelBackend.complete`.
"""

from __future__ import annotations

import abc
from typing import Literal

from pydantic import BaseModel, ConfigDict

from treadle.errors import ModelError


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class GenParams(BaseModel):
    """Sampling parameters. With temperature 0 or a fixed seed a call is cacheable."""

    model_config = ConfigDict(frozen=True)

    temperature: float = 0.0
    max_tokens: int = 512
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    #: a GBNF grammar (llama.cpp's format) the reply must match, for a backend whose
    #: `takes_grammar` is True; others never receive a call with one
    grammar: str | None = None
    #: llama.cpp's repeat penalty (1.0: none; 1.1–1.3 stops a small model looping), sent to a
    #: server as `repeat_penalty` (llama.cpp) and `repetition_penalty` (vLLM); None: the
    #: backend's default
    repeat_penalty: float | None = None

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0.0 or self.seed is not None

    def unset_extras(self) -> set[str] | None:
        """The fields added after the cache's keys were defined that a call leaves unset: left
        out of its key, so it keeps the key it had before they existed."""
        unset = {name for name in ("grammar", "repeat_penalty") if getattr(self, name) is None}
        return unset or None


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class Completion(BaseModel):
    text: str
    usage: Usage = Usage()
    finish_reason: str = "stop"
    #: the backend's own name for the model that answered
    model: str = ""
    cached: bool = False


class ModelBackend(abc.ABC):
    """A loaded model. Implementations raise `treadle.errors.ModelError` (retryable or not)."""

    #: backend kind, part of the cache key: "llama", "openai", "scripted"
    backend: str
    #: model identity, part of the cache key (a file hash or path, a server's model name)
    model: str
    #: how many calls the scheduler lets run at once against this backend
    max_concurrency: int = 1
    #: whether `complete` constrains the reply to `GenParams.grammar`
    takes_grammar: bool = False

    @property
    def cache_identity(self) -> str:
        """Everything about the backend, beyond its kind, that decides a reply: the cache key
        holds it. The model's identity, unless a backend knows more (a scripted model's script)."""
        return self.model

    @abc.abstractmethod
    async def complete(self, messages: list[Message], params: GenParams) -> Completion: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (a client, a loaded model)."""


def refuse_grammar(backend: ModelBackend, params: GenParams) -> None:
    """Raise for a grammar `backend` cannot apply: a reply it did not constrain must never pass
    for one it did (callers look at `takes_grammar` first)."""
    if params.grammar is not None and not backend.takes_grammar:
        raise ModelError(
            f"The {backend.backend} backend cannot constrain a reply to a grammar; "
            "call it without one (GenParams.grammar=None)."
        )


class WrappedBackend(ModelBackend):
    """A backend in front of another (a concurrency limit, the cache, lazy loading): it has
    the inner backend's identity and abilities, whatever `inner` is when asked."""

    inner: ModelBackend

    @property
    def backend(self) -> str:  # type: ignore[override]
        return self.inner.backend

    @property
    def model(self) -> str:  # type: ignore[override]
        return self.inner.model

    @property
    def cache_identity(self) -> str:
        return self.inner.cache_identity

    @property
    def max_concurrency(self) -> int:  # type: ignore[override]
        return self.inner.max_concurrency

    @property
    def takes_grammar(self) -> bool:  # type: ignore[override]
        return self.inner.takes_grammar

    async def complete(self, messages: list[Message], params: GenParams) -> Completion:
        return await self.inner.complete(messages, params)
