"""The budget: one hard cap on tokens over every model a search uses (the executor running the
flows, the optimizer writing and predicting them, a judge scoring them), and optionally on
wall time.

A cap that is checked after spending is a report, not a cap (DSPy users asked for exactly
this, #397). Here nothing starts unless its bound fits what is left: an evaluation is admitted
a chunk of rows at a time, each row bounded by the dearest row seen so far (with a margin);
an optimizer call by its prompt plus its reply's token limit, repairs included. Tokens are
counted as a fresh run spends them (a cache hit at its tokens), so a resumed search counts
what an uninterrupted one does.
"""

from __future__ import annotations

import math
import time
from typing import Literal

from pydantic import BaseModel, Field

Kind = Literal["executor", "optimizer", "judge"]
#: the margin on the dearest row seen when bounding the next rows
ROW_MARGIN = 1.25
#: characters per token when bounding a prompt before it is tokenized (a low guess: safe)
CHARS_PER_TOKEN = 3


class Spent(BaseModel):
    executor: int = 0
    optimizer: int = 0
    judge: int = 0

    @property
    def total(self) -> int:
        return self.executor + self.optimizer + self.judge


class Budget(BaseModel):
    """The caps, what has been spent, and what is kept back for the test split at the end."""

    tokens: int | None = None
    seconds: float | None = None
    spent: Spent = Field(default_factory=Spent)
    #: tokens kept for the final test evaluation (the search may not use them)
    reserve: int = 0
    #: seconds spent before this process (a resumed search continues its clock)
    seconds_before: float = 0.0
    started: float = Field(default_factory=time.monotonic, exclude=True)

    def charge(self, kind: Kind, tokens: int) -> None:
        setattr(self.spent, kind, getattr(self.spent, kind) + max(0, tokens))

    @property
    def elapsed(self) -> float:
        return self.seconds_before + time.monotonic() - self.started

    def left(self, *, final: bool = False) -> float:
        """Tokens left for the search (`final`: the reserve included)."""
        if self.tokens is None:
            return math.inf
        return self.tokens - self.spent.total - (0 if final else self.reserve)

    def admits(self, bound: float, *, final: bool = False) -> bool:
        return bound <= self.left(final=final) and not self.out_of_time()

    def out_of_time(self) -> bool:
        return self.seconds is not None and self.elapsed >= self.seconds

    def rows_admitted(self, row_bound: float, wanted: int, *, final: bool = False) -> int:
        """How many of `wanted` rows fit, each at most `row_bound` tokens."""
        if self.out_of_time():
            return 0
        left = self.left(final=final)
        if math.isinf(left):
            return wanted
        return max(0, min(wanted, int(left // max(row_bound, 1.0))))

    def describe(self) -> str:
        cap = f"{self.tokens:,}" if self.tokens is not None else "no cap"
        s = self.spent
        return (
            f"{s.total:,} tokens of {cap} (executor {s.executor:,}, optimizer {s.optimizer:,}, "
            f"judge {s.judge:,})"
        )


def prompt_bound(prompt_chars: int, max_tokens: int, turns: int) -> int:
    """The most tokens `turns` calls with this prompt can take (a repair turn re-reads the
    prompt and the previous reply, and its diagnostics fit in a reply's length)."""
    per_turn = math.ceil(prompt_chars / CHARS_PER_TOKEN) + max_tokens
    return sum(per_turn + i * max_tokens for i in range(turns))


__all__ = ["Budget", "Kind", "Spent", "prompt_bound"]
