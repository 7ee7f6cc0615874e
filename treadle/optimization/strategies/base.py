"""The strategy interface: which flow the next round changes, and what the optimizer is told
about how the search has gone. One protocol, a small module per strategy."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from treadle.optimization.record import Node


class Strategy(Protocol):
    @property
    def name(self) -> str: ...

    def parent(
        self, frontier: Sequence[Node], evaluated: Sequence[Node], rng: random.Random
    ) -> Node:
        """The parent of the next child. `frontier`: the seeds and the accepted children (each
        with a full validation score); `evaluated`: every node run in full, in round order."""
        ...

    def note(self, parent: Node) -> str:
        """A line for the optimizer prompt about the parent's place in the search."""
        ...


def by_score(nodes: Sequence[Node]) -> list[Node]:
    """Best validation score first; ties: cheaper (static bound), then older."""
    return sorted(nodes, key=lambda n: (-(n.val or 0.0), n.cost_calls, n.id))


__all__ = ["Strategy", "by_score"]
