"""The parent-selection strategies, by their definitions (AFlow's formula, GEPA's per-row
front, AutoFlow's chain)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treadle.optimization.record import Node
from treadle.optimization.strategies import AFlowStrategy, AutoFlowStrategy, ParetoStrategy
from treadle.optimization.strategies.aflow import probabilities
from treadle.optimization.strategies.pareto import row_wins


def _node(i: int, val: float, scores: dict[str, float] | None = None, move: str = "model") -> Node:
    return Node(id=i, round=i, path=f"{i}.flow", ir_hash=str(i), val=val, move=move,
                scores=scores or {})  # fmt: skip


@given(st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_aflow_probabilities_are_a_distribution_with_an_exploration_floor(
    scores: list[float],
) -> None:
    p = probabilities(scores)
    assert sum(p) == pytest.approx(1.0)
    assert min(p) >= 0.3 / len(scores) - 1e-12
    best = max(range(len(scores)), key=lambda i: scores[i])
    assert p[best] == pytest.approx(max(p))


def test_aflow_probabilities_match_the_formula() -> None:
    # two rounds scoring 0.5 and 0.6: softmax(0.2 * (s - 60)) over [-10, 0]
    w = [math.exp(-2.0), 1.0]
    expected = [0.15 + 0.7 * w[0] / sum(w), 0.15 + 0.7 * w[1] / sum(w)]
    assert probabilities([0.5, 0.6]) == pytest.approx(expected)


def test_aflow_pool_is_the_seeds_and_the_best_rounds() -> None:
    nodes = [_node(0, 0.1, move="seed"), *(_node(i, 0.1 * i) for i in range(1, 8))]
    picked = {AFlowStrategy(sample=2).parent(nodes, nodes, random.Random(s)).id for s in range(200)}
    assert picked == {0, 6, 7}


def test_pareto_parents_are_the_flows_best_on_some_row() -> None:
    a = _node(0, 0.5, {"r1": 1, "r2": 0}, move="seed")
    b = _node(1, 0.5, {"r1": 0, "r2": 1})
    c = _node(2, 0.4, {"r1": 0, "r2": 0.5})
    assert row_wins([a, b, c]) == {0: 1, 1: 1, 2: 0}
    picked = {
        ParetoStrategy().parent([a, b, c], [a, b, c], random.Random(s)).id for s in range(100)
    }
    assert picked == {0, 1}


def test_autoflow_chains_the_previous_child() -> None:
    seed, x, y = _node(0, 0.5, move="seed"), _node(1, 0.9), _node(2, 0.2)
    assert AutoFlowStrategy().parent([seed, x], [seed, x, y], random.Random(0)).id == 2
    assert AutoFlowStrategy().parent([seed], [seed], random.Random(0)).id == 0
