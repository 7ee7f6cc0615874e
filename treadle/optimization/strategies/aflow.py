"""AFlow's parent selection (FoundationAgents/AFlow, `select_round`): the pool is the seeds
plus the `sample` best rounds; with scores s in percent, P = λ·uniform + (1 − λ)·softmax(α·(s −
max s)), λ = 0.3, α = 0.2. A mix of exploitation and a floor of exploration."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from treadle.optimization.record import Node
from treadle.optimization.strategies.base import by_score

#: AFlow's defaults
LAMBDA = 0.3
ALPHA = 0.2


def probabilities(
    scores: Sequence[float], *, lam: float = LAMBDA, alpha: float = ALPHA
) -> list[float]:
    """P_i = λ/n + (1 − λ)·softmax(α·(100·s_i − max))_i."""
    n = len(scores)
    top = max(100 * s for s in scores)
    weights = [math.exp(alpha * (100 * s - top)) for s in scores]
    total = sum(weights)
    return [lam / n + (1 - lam) * w / total for w in weights]


@dataclass(frozen=True)
class AFlowStrategy:
    sample: int = 4
    name: str = "aflow"

    def parent(
        self, frontier: Sequence[Node], evaluated: Sequence[Node], rng: random.Random
    ) -> Node:
        seeds = [n for n in frontier if n.move == "seed"]
        best = [n for n in by_score(frontier) if n.move != "seed"][: self.sample]
        pool = seeds + best
        probs = probabilities([n.val or 0.0 for n in pool])
        return rng.choices(pool, weights=probs, k=1)[0]

    def note(self, parent: Node) -> str:
        return f"It is one of the best workflows so far (validation score {parent.val or 0:.3f})."


__all__ = ["ALPHA", "LAMBDA", "AFlowStrategy", "probabilities"]
