"""Optimisation: `treadle optimize`, the search loop that composes evaluation, ranking,
attribution and generation (AFlow's search, SCALE's surrogate, AutoFlow's refinement).

    result = await treadle.optimize("answer.flow", "qa.jsonl", scorer="contains",
                                    settings=OptimizeSettings(rounds=5, budget_tokens=200_000))
    print(result.best, result.best_test)
"""

from __future__ import annotations

from treadle.optimization.loop import optimize, optimize_sync
from treadle.optimization.output import OptimizeResult
from treadle.optimization.settings import OptimizeSettings

__all__ = ["OptimizeResult", "OptimizeSettings", "optimize", "optimize_sync"]
