"""The options every analysis command takes, defined once.

`treadle eval`, `attribute`, `rank` (and what comes after them) decorate their command with
`@analysis_options`: the decorator adds the same parameters — same spellings, same help, same
defaults — to each command's signature and hands the command one `AnalysisOptions` built from
them (the `Scoring`, `RowSelection` and `RunConfig` that `treadle.evaluate` and the studies
take). So the commands accept the same options by construction, and a setting is parsed and
checked in one place, the way inspect_ai shares one options decorator among its commands.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

from treadle.cli.common import (
    Concurrency,
    InputMap,
    Isolation,
    Limit,
    Model,
    NoCache,
    Rows,
    Sandbox,
    Scorers,
    Target,
    parse_pairs,
)
from treadle.errors import InputError
from treadle.eval.options import RowSelection, RunConfig, Scoring
from treadle.eval.progress import PlainProgress, Progress, RichProgress
from treadle.runtime.session import SandboxConfig

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class AnalysisOptions:
    """What the shared options said, as the value objects the analysis API takes."""

    scoring: Scoring
    rows: RowSelection
    run: RunConfig
    #: rich, plain or none
    display: str
    every: int = 10

    def progress(self) -> Progress | None:
        """A fresh progress display for one evaluation (None with --display none)."""
        if self.display == "rich":
            return RichProgress()
        if self.display == "plain":
            return PlainProgress(self.every)
        return None


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)  # fmt: skip


#: the shared parameters, in the order `--help` lists them
_SHARED: list[inspect.Parameter] = [
    _option("scorer", Scorers, None),
    _option(
        "scorer_option",
        Annotated[
            list[str] | None,
            typer.Option(
                "--scorer-option",
                help="KEY=VALUE for the primary scorer, or SCORER.KEY=VALUE (repeatable)",
            ),
        ],
        None,
    ),
    _option("target", Target, None),
    _option("input_map", InputMap, None),
    _option(
        "workflow",
        Annotated[str | None, typer.Option("--workflow", "-w", help="which workflow to run")],
        None,
    ),
    _option(
        "output",
        Annotated[
            str | None,
            typer.Option("--output", help="the workflow output to score (default: first)"),
        ],
        None,
    ),
    _option("model", Model, None),
    _option("concurrency", Concurrency, None),
    _option("no_cache", NoCache, False),
    _option(
        "seed",
        Annotated[int, typer.Option("--seed", help="the seed of every run (epoch k: seed + k)")],
        0,
    ),
    _option("limit", Limit, None),
    _option("rows", Rows, None),
    _option(
        "ids", Annotated[str | None, typer.Option("--ids", help="comma-separated row ids")], None
    ),
    _option(
        "shuffle",
        Annotated[bool, typer.Option("--shuffle", help="shuffle rows (with --seed)")],
        False,
    ),
    _option(
        "row_timeout",
        Annotated[
            float | None,
            typer.Option("--row-timeout", help="seconds per row (an error past it)"),
        ],
        None,
    ),
    _option(
        "step_timeout",
        Annotated[float | None, typer.Option("--step-timeout", help="seconds per step")],
        None,
    ),
    _option(
        "max_errors",
        Annotated[
            str | None,
            typer.Option("--max-errors", help="stop an evaluation past N errors (or a fraction)"),
        ],
        None,
    ),
    _option("sandbox", Sandbox, "docker"),
    _option("isolation", Isolation, "reset"),
    _option(
        "display",
        Annotated[
            str | None,
            typer.Option(
                "--display",
                "--progress",
                help="rich, plain or none (default: rich on a terminal, else plain)",
            ),
        ],
        None,
    ),
    _option(
        "every",
        Annotated[int, typer.Option("--every", help="plain display: a line per N rows")],
        10,
    ),
]
SHARED_NAMES = tuple(p.name for p in _SHARED)


def _json_or_text(value: str) -> Any:
    """A `--scorer-option` value: JSON when it parses (`threshold=0.5`), else the text."""
    import orjson

    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _max_errors(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(f"--max-errors takes a count or a fraction, got {value!r}.") from None


def build(values: dict[str, Any]) -> AnalysisOptions:
    """The value objects from the shared options' values (bad input: `InputError`)."""
    display = values["display"] or ("rich" if sys.stderr.isatty() else "plain")
    if display not in ("rich", "plain", "none"):
        raise InputError(f"--display is rich, plain or none, got {display!r}.")
    scoring = Scoring(
        scorers=tuple(values["scorer"] or ["exact"]),
        options={
            k: _json_or_text(v)
            for k, v in parse_pairs(values["scorer_option"], "--scorer-option").items()
        },
        target=values["target"],
        input_map=parse_pairs(values["input_map"], "--map") or None,
        output=values["output"],
        workflow=values["workflow"],
    )
    seed = values["seed"]
    rows = RowSelection(
        limit=values["limit"],
        rows=values["rows"],
        ids=values["ids"],
        shuffle=values["shuffle"],
        seed=seed,
    )
    run = RunConfig(
        model=values["model"],
        cache=not values["no_cache"],
        sandbox=SandboxConfig.of(values["sandbox"], values["isolation"]),
        seed=seed,
        concurrency=values["concurrency"],
        row_timeout=values["row_timeout"],
        step_timeout=values["step_timeout"],
        max_errors=_max_errors(values["max_errors"]),
    )
    return AnalysisOptions(scoring, rows, run, display, values["every"])


def analysis_options(command: F) -> F:
    """Give `command` the shared options; it receives them as `analysis: AnalysisOptions`
    (or, when building them fails, the `InputError` is raised inside the command's own error
    handling: the command calls `analysis()` to get them)."""
    signature = inspect.signature(command, eval_str=True)  # typer reads the Annotated metadata
    own = [p for p in signature.parameters.values() if p.name != "analysis"]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        shared = {name: kwargs.pop(name) for name in SHARED_NAMES}
        kwargs["analysis"] = functools.partial(build, shared)
        return command(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + _SHARED)  # type: ignore[attr-defined]
    hints = dict(getattr(command, "__annotations__", {}))
    hints.pop("analysis", None)
    hints.update({p.name: p.annotation for p in _SHARED})
    wrapper.__annotations__ = hints
    return wrapper  # type: ignore[return-value]


__all__ = ["SHARED_NAMES", "AnalysisOptions", "analysis_options", "build"]
