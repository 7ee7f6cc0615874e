"""Parent-selection strategies: AFlow's soft top-k, GEPA's per-row Pareto front, AutoFlow's
in-context chain."""

from __future__ import annotations

from treadle.optimization.settings import OptimizeSettings
from treadle.optimization.strategies.aflow import AFlowStrategy
from treadle.optimization.strategies.autoflow import AutoFlowStrategy
from treadle.optimization.strategies.base import Strategy, by_score
from treadle.optimization.strategies.pareto import ParetoStrategy


def strategy_for(settings: OptimizeSettings) -> Strategy:
    if settings.strategy == "pareto":
        return ParetoStrategy()
    if settings.strategy == "autoflow":
        return AutoFlowStrategy()
    return AFlowStrategy(sample=settings.sample)


__all__ = [
    "AFlowStrategy",
    "AutoFlowStrategy",
    "ParetoStrategy",
    "Strategy",
    "by_score",
    "strategy_for",
]
