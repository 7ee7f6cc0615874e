"""AutoFlow's in-context chain: each round rewrites the previous round's flow (whatever came of
it), told "its performance is r"; the chain starts at the best seed."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from treadle.optimization.record import Node
from treadle.optimization.strategies.base import by_score


@dataclass(frozen=True)
class AutoFlowStrategy:
    name: str = "autoflow"

    def parent(
        self, frontier: Sequence[Node], evaluated: Sequence[Node], rng: random.Random
    ) -> Node:
        children = [n for n in evaluated if n.move != "seed"]
        return children[-1] if children else by_score(frontier)[0]

    def note(self, parent: Node) -> str:
        return (
            f"It is the previous workflow of the chain; its performance is {parent.val or 0:.3f}."
        )


__all__ = ["AutoFlowStrategy"]
