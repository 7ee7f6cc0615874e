"""Small operators for compiler tests, so they never depend on the stdlib's exact set."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from treadle.stdlib_ops.registry import OpArgs, Operator, OpOptions, prep, subject


async def _never(ctx: Any, args: Any, options: Any) -> Any:
    raise AssertionError("compiler tests never run operators")


class GenArgs(OpArgs):
    prompt: str = prep("from", "the prompt")
    input: str | None = prep("given", "extra input", default=None)


class GenOptions(OpOptions):
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    samples: int = 1
    style: Literal["plain", "fancy"] = "plain"


class VoteArgs(OpArgs):
    values: list[Any] = subject("candidates")


class ExtractArgs(OpArgs):
    text: str = prep("from", "the text")


class Review(BaseModel):
    approved: bool
    feedback: str


class ReviewArgs(OpArgs):
    solution: str = subject("what to review")
    problem: str | None = prep("for", "the task", default=None)


class PickArgs(OpArgs):
    mode: Literal["fast", "slow"] = subject("how")
    items: list[str] = prep("from", "the items")


class SumArgs(OpArgs):
    values: list[float] = subject("numbers")


def make_ops() -> dict[str, Operator]:
    ops = [
        Operator("generate", "text from a prompt", GenArgs, str, _never, GenOptions),
        Operator("vote", "majority", VoteArgs, Any, _never),
        Operator("extract number", "a number in text", ExtractArgs, float, _never),
        Operator("review", "a review", ReviewArgs, Review, _never),
        Operator("pick", "one item", PickArgs, str, _never),
        Operator("total", "a sum", SumArgs, float, _never),
    ]
    return {o.name: o for o in ops}


OPS = make_ops()
