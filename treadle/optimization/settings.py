"""`OptimizeSettings`: how a search runs, in one value object (the loop's knobs, checked where
they are built), so `treadle.optimize(...)` keeps a short signature and the CLI fills one model.

The defaults follow AFlow where it has one (20 rounds, a parent pool of the top 4, 3 failure
rows in the prompt, patience 5 on the top-3 mean) and SCALE for the surrogate (warm-up rounds
in full, then a stratified few-shot sample plus the optimizer's self-prediction).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from treadle.runtime.models.base import ModelBackend

StrategyName = Literal["aflow", "pareto", "autoflow"]
#: the deterministic moves the loop can make itself (besides the optimizer model's proposals)
MoveName = Literal["prune", "self_consistency", "review", "program_check", "test_revise"]
ALL_MOVES: tuple[MoveName, ...] = (
    "prune",
    "self_consistency",
    "review",
    "program_check",
    "test_revise",
)


class OptimizeSettings(BaseModel):
    """The search: `strategy` picks parents; `rounds` children at most; `budget_tokens` caps
    every model's tokens (executor, optimizer, judge), `budget_seconds` the wall time;
    `patience` rounds without a better top-3 mean stop it. Rounds 1..`warmup` evaluate each
    child on the whole validation split, later rounds use the calibrated surrogate
    (`surrogate=False`: full validation every round, AFlow's loop) and run in full only a child
    whose surrogate score could reach the top `top_k`. `optimizer_model` writes the children
    (default: the run's model) in up to `attempts` proposals a round, each with `repairs`
    compiler-guided repairs; `moves` are the deterministic moves allowed."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    strategy: StrategyName = "aflow"
    rounds: int = Field(20, ge=0)
    budget_tokens: int | None = Field(None, ge=1)
    budget_seconds: float | None = Field(None, gt=0)
    patience: int = Field(5, ge=1)
    warmup: int = Field(2, ge=0)
    surrogate: bool = True
    top_k: int = Field(3, ge=1)
    #: AFlow's `sample`: how many of the best rounds (besides the seeds) a parent comes from
    sample: int = Field(4, ge=1)
    #: failure rows (inputs, expected, output, failing step) shown to the optimizer
    failures: int = Field(3, ge=0)
    optimizer_model: str | ModelBackend | None = None
    attempts: int = Field(3, ge=1)
    repairs: int = Field(2, ge=0)
    max_tokens: int = Field(768, ge=16)
    moves: tuple[MoveName, ...] = ALL_MOVES
    #: library `.flow` files whose capabilities the optimizer may call
    library: tuple[Path, ...] = ()
    #: the task as the optimizer model reads it (default: described from the dataset)
    task: str | None = None
    #: the share of DATA that is validation when no test data is given (the rest is test)
    val_split: float = Field(0.5, gt=0, lt=1)
    #: surrogate: the share of validation rows a child runs on (at least `min_rows`)
    few_ratio: float = Field(0.2, gt=0, le=1)
    min_rows: int = Field(3, ge=1)
    #: the acceptance test's resamples (paired bootstrap of child − parent on common rows)
    resamples: int = Field(2000, ge=100)
    #: dry-run every proposal on a scripted model before it costs an evaluation
    dry_run: bool = True

    @model_validator(mode="after")
    def _known_moves(self) -> OptimizeSettings:
        if len(set(self.moves)) != len(self.moves):
            raise ValueError(f"moves names one move twice: {self.moves}")
        return self


__all__ = ["ALL_MOVES", "MoveName", "OptimizeSettings", "StrategyName"]
