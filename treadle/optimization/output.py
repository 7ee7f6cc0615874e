"""What a search hands back: the best flow, the top-K portfolio with validation and test
scores, the coverage of the top K against the best flow repeated K times (SCALE's analysis,
`eval compare --coverage`'s figure), the score-vs-tokens Pareto front of every flow run in
full, and the lineage (which parent and move made each child)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from treadle.optimization.budget import Spent
from treadle.optimization.record import Node
from treadle.optimization.strategies.base import by_score
from treadle.studies.ranking import Coverage


class PortfolioEntry(BaseModel):
    node: int
    path: str
    val: float | None
    test: float | None
    test_rows: int = 0
    cost_calls: int
    tokens_per_row: float


class LineageEntry(BaseModel):
    node: int
    round: int
    parent: int | None
    move: str
    status: str
    val: float | None
    surrogate: float | None


class OptimizeResult(BaseModel):
    out: str
    best: str | None
    best_node: int | None
    best_val: float | None
    best_test: float | None
    portfolio: list[PortfolioEntry]
    coverage: Coverage | None = None
    #: node ids on the score-vs-tokens Pareto front (higher score, fewer tokens per row)
    pareto: list[int] = Field(default_factory=list)
    lineage: list[LineageEntry]
    rounds: int
    evaluations_full: int
    evaluations_few: int
    invalid_proposals: int
    wasted_rounds: int
    spent: Spent
    budget_tokens: int | None
    stopped: str | None
    leaks: dict[int, list[str]] = Field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> str:
        """Lines for a person."""
        lines = [
            f"best: {self.best} (validation {_f(self.best_val)}, test {_f(self.best_test)})",
            f"rounds {self.rounds}; full evaluations {self.evaluations_full}, few-shot "
            f"{self.evaluations_few}; invalid proposals {self.invalid_proposals} (never "
            f"evaluated); wasted rounds {self.wasted_rounds}",
            f"tokens: {self.spent.total:,}"
            + (f" of {self.budget_tokens:,}" if self.budget_tokens else "")
            + f" (executor {self.spent.executor:,}, optimizer {self.spent.optimizer:,}, "
            f"judge {self.spent.judge:,})",
        ]
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        lines.append("portfolio (top K): node  val    test   calls  tokens/row  flow")
        for p in self.portfolio:
            lines.append(
                f"  {p.node:>4}  {_f(p.val)}  {_f(p.test)}  {p.cost_calls:>5}  "
                f"{p.tokens_per_row:>10.1f}  {p.path}"
            )
        if self.coverage is not None:
            lines.append(self.coverage.summary())
        lines.append(f"Pareto front (score vs tokens): nodes {self.pareto}")
        for leak, rows in self.leaks.items():
            lines.append(f"warning: node {leak}'s text quotes test rows {rows}")
        return "\n".join(lines)


def _f(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def pareto_front(nodes: Sequence[Node]) -> list[int]:
    """Nodes no other node beats on both score (higher) and tokens per row (lower)."""
    full = [n for n in nodes if n.val is not None]
    front = []
    for n in full:
        dominated = any(
            (m.val or 0) >= (n.val or 0)
            and m.tokens_per_row <= n.tokens_per_row
            and ((m.val or 0) > (n.val or 0) or m.tokens_per_row < n.tokens_per_row)
            for m in full
        )
        if not dominated:
            front.append(n.id)
    return sorted(front)


def top_k(frontier: Sequence[Node], k: int) -> list[Node]:
    return by_score([n for n in frontier if n.val is not None])[:k]


def lineage(nodes: Sequence[Node]) -> list[LineageEntry]:
    return [
        LineageEntry(
            node=n.id,
            round=n.round,
            parent=n.parent,
            move=n.move,
            status=n.status,
            val=n.val,
            surrogate=n.surrogate,
        )
        for n in nodes
    ]


__all__ = ["LineageEntry", "OptimizeResult", "PortfolioEntry", "lineage", "pareto_front", "top_k"]
