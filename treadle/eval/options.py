"""The vocabulary every analysis shares: what to score, which rows, how to run, how many epochs.

`evaluate`, `attribute`, `rank`, `FlowReward` (and the CLI, which builds these in one place)
take the same value objects instead of thirty keyword arguments each, so a setting means one
thing everywhere and walks from the command line down to the sandbox without being re-packed.
Each object checks itself where it is built: a bad value is an `InputError` before anything
runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from treadle.errors import InputError
from treadle.eval.report import parse_reducer
from treadle.eval.scorers import Scorer
from treadle.runtime.models.base import ModelBackend
from treadle.runtime.scheduler import RunOptions
from treadle.runtime.session import SandboxConfig, Session, model_label

if TYPE_CHECKING:
    from treadle.runtime.cache import ModelCache

ScorerLike = str | Scorer
#: the settings of a `RunConfig` that a `Session` owns
_RESOURCES = ("model", "models", "cache", "sandbox")


@dataclass(frozen=True)
class Scoring:
    """What to score: the scorers (the first is the primary one), their options, the target
    column, how dataset columns map to inputs, which output is scored, and which workflow runs.

    `options` apply to the first scorer; `name.key` applies `key` to the scorer named `name`.
    """

    scorers: tuple[ScorerLike, ...] = ("exact",)
    options: Mapping[str, object] = field(default_factory=dict)
    target: str | None = None
    input_map: Mapping[str, str] | None = None
    output: str | None = None
    workflow: str | None = None

    def __post_init__(self) -> None:
        scorers = self.scorers
        if isinstance(scorers, str | Scorer) or callable(scorers):
            object.__setattr__(self, "scorers", (scorers,))
        elif not isinstance(scorers, tuple):
            object.__setattr__(self, "scorers", tuple(scorers))
        if not self.scorers:
            raise InputError("Give at least one scorer.")

    @classmethod
    def of(cls, scorer: ScorerLike | Sequence[ScorerLike] | Scoring | None) -> Scoring:
        if isinstance(scorer, Scoring):
            return scorer
        if scorer is None:
            return cls()
        if isinstance(scorer, str | Scorer) or callable(scorer):
            return cls((scorer,))  # type: ignore[arg-type]
        return cls(tuple(scorer))


@dataclass(frozen=True)
class RowSelection:
    """Which rows: the first `limit`, a `rows` range ("A-B", 0-based, end exclusive, or a
    pair), given `ids`, and whether to `shuffle` them first (with `seed`)."""

    limit: int | None = None
    rows: str | tuple[int, int] | None = None
    ids: Sequence[str] | str | None = None
    shuffle: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise InputError(f"--limit must not be negative, got {self.limit}.")


@dataclass(frozen=True)
class Epochs:
    """Run each row `n` times (seeds seed, seed+1, ...) and reduce them with `reducer`
    (mean, max, majority, pass@k)."""

    n: int = 1
    reducer: str = "mean"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"--epochs must be at least 1, got {self.n}.")
        try:
            parse_reducer(self.reducer, self.n)
        except ValueError as e:
            raise InputError(f"--reducer: {e}.") from None

    @classmethod
    def of(cls, value: Epochs | int | None) -> Epochs:
        if isinstance(value, Epochs):
            return value
        return cls(1 if value is None else value)


@dataclass(frozen=True)
class RunConfig:
    """How to run: the models, the cache, the sandbox, the seed, how many rows at once, time
    limits, retries, where row traces go and how many errors stop an evaluation.

    `model`: the default model spec (None: the embedded SmolLM2) or a backend; `models`: ready
    backends for further specs; `cache`: True, False or a `ModelCache`; `concurrency`: rows at
    once (None: 16 for servers and scripted models, 8 for the embedded model, which batches
    that many calls); `step_concurrency`: steps of one row at once; `traces`: a folder for
    the row traces, None for the default beside the results file, False for none;
    `max_errors`: a count, or a fraction of the rows, of infrastructure errors after which the
    evaluation stops.
    """

    model: str | ModelBackend | None = None
    models: Mapping[str, ModelBackend] | None = None
    cache: bool | ModelCache = True
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    seed: int = 0
    concurrency: int | None = None
    step_concurrency: int = 16
    row_timeout: float | None = None
    step_timeout: float | None = None
    retries: int = 2
    traces: Path | bool | None = None
    max_errors: int | float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sandbox, str):
            object.__setattr__(self, "sandbox", SandboxConfig.of(self.sandbox))
        if isinstance(self.traces, str):
            object.__setattr__(self, "traces", Path(self.traces))
        if self.concurrency is not None and self.concurrency < 1:
            raise InputError(f"--concurrency must be at least 1, got {self.concurrency}.")
        for name in ("row_timeout", "step_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive, got {value}.")
        if self.retries < 0:
            raise InputError(f"--retries must not be negative, got {self.retries}.")
        if self.max_errors is not None and self.max_errors < 0:
            raise InputError(f"--max-errors must not be negative, got {self.max_errors}.")

    @property
    def model_name(self) -> str | None:
        """The default model as results files name it."""
        return model_label(self.model)

    @property
    def row_concurrency(self) -> int:
        if self.concurrency is not None:
            return self.concurrency
        spec = self.model if isinstance(self.model, str) else ""
        if spec.startswith(("scripted:", "openai:")) or isinstance(self.model, ModelBackend):
            return 16
        return 8  # the embedded model batches 8 calls at once (LlamaBackend's slots)

    @property
    def run_options(self) -> RunOptions:
        """How the scheduler runs one row's steps."""
        return RunOptions(
            concurrency=self.step_concurrency,
            step_timeout=self.step_timeout,
            retries=self.retries,
        )

    def session(self, name: str | None = None) -> Session:
        """A new session over these settings (its sandbox pool sized for the rows at once)."""
        sandbox = self.sandbox
        pool = min(self.row_concurrency, 8)
        if sandbox.pool_size < pool:
            sandbox = replace(sandbox, pool_size=pool)
        return Session(
            model=self.model, models=self.models, cache=self.cache, sandbox=sandbox, name=name
        )

    @property
    def sets_resources(self) -> bool:
        """Whether this sets what a session owns (a model, backends, a cache, a sandbox)."""
        default = RunConfig()
        return any(getattr(self, name) != getattr(default, name) for name in _RESOURCES)

    def without_resources(self) -> RunConfig:
        """These settings with what a session owns left at the defaults (for runs in a given
        session, which has them)."""
        default = RunConfig()
        return replace(self, **{name: getattr(default, name) for name in _RESOURCES})

    def with_(self, **changes: object) -> RunConfig:
        """A copy with some settings changed (checked again)."""
        return replace(self, **changes)  # type: ignore[arg-type]


class Shortcuts(TypedDict, total=False):
    """The keyword form for the common case: `evaluate(flow, data, scorer="numeric",
    model="scripted:[...]", limit=20)`; each lands in its value object."""

    scorer: ScorerLike | Sequence[ScorerLike]
    model: str | ModelBackend | None
    models: Mapping[str, ModelBackend]
    cache: bool
    seed: int
    limit: int
    concurrency: int


def settle(
    scoring: Scoring | None,
    rows: RowSelection | None,
    run: RunConfig | None,
    shortcuts: Shortcuts,
) -> tuple[Scoring, RowSelection, RunConfig]:
    """The value objects with the keyword shortcuts applied (a shortcut and the object it
    belongs to may not both be given, so nothing is silently overridden)."""
    extra = dict(shortcuts)
    unknown = set(extra) - set(Shortcuts.__annotations__)
    if unknown:
        raise InputError(f"unknown option(s): {', '.join(sorted(unknown))}.")
    if "scorer" in extra:
        if scoring is not None:
            raise InputError("give the scorer either as scorer= or inside scoring=, not both.")
        scoring = Scoring.of(extra.pop("scorer"))  # type: ignore[arg-type]
    run_keys = {
        k: extra.pop(k) for k in ("model", "models", "cache", "seed", "concurrency") if k in extra
    }
    if run_keys:
        if run is not None:
            raise InputError(
                f"give {', '.join(sorted(run_keys))} either as keywords or inside run=, not both."
            )
        run = RunConfig(**run_keys)  # type: ignore[arg-type]
    run = run or RunConfig()
    if "limit" in extra:
        if rows is not None:
            raise InputError("give limit either as limit= or inside rows=, not both.")
        rows = RowSelection(limit=extra.pop("limit"), seed=run.seed)  # type: ignore[arg-type]
    return scoring or Scoring(), rows or RowSelection(seed=run.seed), run


__all__ = ["Epochs", "RowSelection", "RunConfig", "Scoring", "Shortcuts", "settle"]
