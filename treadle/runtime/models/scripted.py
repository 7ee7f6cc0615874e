"""A backend that replays given answers, for tests of control flow (never of model quality).

It records every call, so a test can assert which prompts reached the model and in what order,
and with which parameters; a reply stops before the first of the call's stop sequences.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from treadle.errors import ModelError
from treadle.runtime.models.base import (
    Completion,
    GenParams,
    Message,
    ModelBackend,
    Usage,
    refuse_grammar,
)

Answer: TypeAlias = str | Completion | BaseException
Script: TypeAlias = (
    Sequence[Answer] | Mapping[str, Answer] | Callable[[list[Message]], str | Completion]
)


@dataclass(frozen=True)
class ScriptedCall:
    messages: list[Message]
    params: GenParams

    @property
    def prompt(self) -> str:
        """The last user message: what a test usually wants to check."""
        return _last_user(self.messages)


class ScriptedBackend(ModelBackend):
    """Replays answers: a list (in order), a dict keyed by a substring of the last user
    message (first matching key wins), or a function of the messages.

    An answer that is an exception instance is raised instead, to script failures.
    """

    backend = "scripted"

    def __init__(
        self,
        script: Script,
        *,
        model: str = "scripted",
        default: Answer | None = None,
        delay: float = 0.0,
        max_concurrency: int = 8,
    ) -> None:
        if isinstance(script, str | bytes):
            raise TypeError("a script is a list, a dict or a function, not a single string")
        self.script = script
        self.model = model
        self.default = default
        self.delay = delay
        self.max_concurrency = max_concurrency
        self.calls: list[ScriptedCall] = []
        self._next = 0

    @property
    def cache_identity(self) -> str:
        """The script decides the replies, so it is part of the cache key: a changed script
        never replays the old one's cached answers. A script given as a function is known
        only by its object (its answers are cached within this process, never across)."""
        script = self.script
        if callable(script):
            what = f"fn:{getattr(script, '__qualname__', type(script).__name__)}@{id(script):x}"
        else:
            what = repr((_plain(script), _plain(self.default)))
        return f"{self.model}#{hashlib.sha256(what.encode()).hexdigest()[:16]}"

    @property
    def prompts(self) -> list[str]:
        """The last user message of each call, in call order."""
        return [c.prompt for c in self.calls]

    async def complete(self, messages: list[Message], params: GenParams) -> Completion:
        refuse_grammar(self, params)
        self.calls.append(ScriptedCall(list(messages), params))
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self._answer(messages)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, Completion):
            return answer
        text = _until_stop(str(answer), params.stop)
        return Completion(
            text=text,
            usage=Usage(
                input_tokens=sum(len(m.content.split()) for m in messages),
                output_tokens=len(text.split()),
            ),
            finish_reason="stop",
            model=self.model,
        )

    def _answer(self, messages: list[Message]) -> Answer:
        script = self.script
        if callable(script):
            return script(messages)
        if isinstance(script, Mapping):
            prompt = _last_user(messages)
            for key, answer in script.items():
                if key in prompt:
                    return answer
            if self.default is not None:
                return self.default
            keys = ", ".join(repr(k) for k in script)
            raise ModelError(
                f"The scripted model has no answer for the prompt {_short(prompt)}: none of "
                f"its keys ({keys}) occurs in it. Add a key or give a default answer."
            )
        index = self._next
        self._next += 1
        if index < len(script):
            return script[index]
        if self.default is not None:
            return self.default
        raise ModelError(
            f"The scripted model ran out of answers: call {index + 1} asked for one, but the "
            f"script has only {len(script)}. The last prompt was {_short(_last_user(messages))}. "
            "Add answers to the script (or a default), or check why the workflow made more "
            "model calls than expected."
        )


def _until_stop(text: str, stop: Sequence[str]) -> str:
    """The answer cut before its first stop sequence, as a model's reply would be."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return text[: min(cuts)] if cuts else text


def _plain(value: object) -> object:
    """A script as plain data for its digest (a Completion by its fields, an exception by
    its type and message)."""
    if isinstance(value, Mapping):
        return sorted((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Completion):
        return value.model_dump(mode="json")
    if isinstance(value, BaseException):
        return [type(value).__name__, str(value)]
    return value


def _last_user(messages: list[Message]) -> str:
    for m in reversed(messages):
        if m.role == "user":
            return m.content
    return messages[-1].content if messages else ""


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "…")
