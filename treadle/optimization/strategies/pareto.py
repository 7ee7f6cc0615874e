"""GEPA-style parents: the per-row Pareto front. A flow is on it when no other flow scores at
least as well on every validation row; a parent is drawn among them in proportion to the rows
on which it is (one of) the best, so a flow that alone solves a few rows keeps being improved."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from treadle.optimization.record import Node


def row_wins(nodes: Sequence[Node]) -> dict[int, int]:
    """Node id → the rows on which it has the best score (ties shared)."""
    rows = {r for n in nodes for r in n.scores}
    wins = {n.id: 0 for n in nodes}
    for r in sorted(rows):
        top = max(n.scores.get(r, 0.0) for n in nodes)
        if top <= 0:
            continue
        for n in nodes:
            if n.scores.get(r, 0.0) == top:
                wins[n.id] += 1
    return wins


@dataclass(frozen=True)
class ParetoStrategy:
    name: str = "pareto"

    def parent(
        self, frontier: Sequence[Node], evaluated: Sequence[Node], rng: random.Random
    ) -> Node:
        wins = row_wins(frontier)
        front = [n for n in frontier if wins[n.id] > 0]
        if not front:
            return frontier[0]
        return rng.choices(front, weights=[wins[n.id] for n in front], k=1)[0]

    def note(self, parent: Node) -> str:
        return (
            "It is on the per-row Pareto front: some validation rows it solves, no other "
            "workflow solves better."
        )


__all__ = ["ParetoStrategy", "row_wins"]
