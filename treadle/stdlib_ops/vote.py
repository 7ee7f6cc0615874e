"""`vote VALUES`: deterministic majority over normalized answers (self-consistency)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import Field

from treadle.runtime.op_context import OpContext
from treadle.stdlib_ops._text import normalize
from treadle.stdlib_ops.registry import OpArgs, Operator, OpOptions, first_of, register, subject


class VoteArgs(OpArgs):
    values: list[Any] = subject("the candidate answers; nulls are ignored")


class VoteOptions(OpOptions):
    compare: Literal["auto", "number", "text", "code"] = Field(
        "auto", description="how answers are made comparable (auto: by the values' shape)"
    )


def majority(values: list[Any], compare: str = "auto") -> Any:
    """The most common answer (first seen wins a tie), in the form it first appeared; None
    when every value is null."""
    keys = [normalize(v, compare) for v in values]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    best = max(counts.values())
    winner = next(k for k in keys if k is not None and counts[k] == best)
    return values[keys.index(winner)]


async def run(ctx: OpContext, args: VoteArgs, options: VoteOptions) -> Any:
    return majority(args.values, options.compare)


register(
    Operator(
        name="vote",
        summary="The most common of several answers, compared as numbers, text or code (by AST).",
        args=VoteArgs,
        options=VoteOptions,
        output=Any,
        run=run,
        ablation=first_of("values"),
        output_item_of="values",
    )
)
