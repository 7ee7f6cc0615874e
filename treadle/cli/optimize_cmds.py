"""`treadle optimize SEED.flow... --data DATA`: search for better workflows than the seeds.

A thin layer over `treadle.optimization`; the shared analysis options as `treadle eval`
(`--scorer`, `--model`, `--seed`, ...). Progress (round, best, budget used, ETA) on stderr,
the summary on stdout. Exit codes: 0 done, 2 bad input, 3 the runs failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from treadle.cli.common import exit_on_error, run_async
from treadle.cli.options import AnalysisOptions, analysis_options


def register(app: typer.Typer) -> None:
    app.command("optimize")(exit_on_error(optimize))


@analysis_options
def optimize(
    seeds: Annotated[list[Path], typer.Argument(help="SEED.flow...", show_default=False)],
    data: Annotated[
        Path,
        typer.Option("--data", help="the dataset (validation, and test unless --test is given)"),
    ],
    test: Annotated[
        Path | None, typer.Option("--test", help="held-out rows, run once at the end")
    ] = None,
    val_split: Annotated[
        float, typer.Option("--val-split", help="without --test: DATA's share for validation")
    ] = 0.5,
    optimizer_model: Annotated[
        str | None,
        typer.Option("--optimizer-model", help="who writes the children (default: --model)"),
    ] = None,
    rounds: Annotated[int, typer.Option("--rounds", help="children at most")] = 20,
    budget_tokens: Annotated[
        int | None, typer.Option("--budget-tokens", help="hard cap over every model's tokens")
    ] = None,
    budget_seconds: Annotated[
        float | None, typer.Option("--budget-seconds", help="wall-time cap")
    ] = None,
    strategy: Annotated[
        str, typer.Option("--strategy", help="aflow, pareto or autoflow")
    ] = "aflow",
    warmup: Annotated[int, typer.Option("--warmup", help="rounds evaluated in full")] = 2,
    full: Annotated[
        bool, typer.Option("--full", help="full validation every round (AFlow's loop)")
    ] = False,
    top_k: Annotated[int, typer.Option("--top-k", help="the portfolio's size")] = 3,
    patience: Annotated[
        int, typer.Option("--patience", help="stop after N rounds without a better top-3 mean")
    ] = 5,
    attempts: Annotated[int, typer.Option("--attempts", help="model proposals a round")] = 3,
    repairs: Annotated[int, typer.Option("--repairs", help="repairs a proposal")] = 2,
    moves: Annotated[
        str | None,
        typer.Option(
            "--moves", help="deterministic moves allowed (comma-separated; 'none' for none)"
        ),
    ] = None,
    library: Annotated[
        list[Path] | None, typer.Option("--library", help="capability .flow files")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="the task, as the optimizer reads it")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="the record's directory")] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="continue the search recorded there")
    ] = None,
    executor: Annotated[str, typer.Option("--executor", help="local or ray")] = "local",
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="join this Ray cluster")
    ] = None,
    ray_workers: Annotated[
        int | None, typer.Option("--ray-workers", help="Ray worker actors")
    ] = None,
    *,
    analysis: Callable[[], AnalysisOptions],
) -> None:
    """Round by round: pick a parent, propose a child (the optimizer model under the grammar,
    or a deterministic move), gate it (compile, de-duplicate, dry run), score it (full, or the
    calibrated surrogate), accept it by a paired test; the top K run once on the test split."""
    from treadle.eval.executors import executor_of
    from treadle.optimization.loop import optimize as run
    from treadle.optimization.loop import settings_of
    from treadle.optimization.settings import ALL_MOVES

    opts = analysis()
    chosen_moves = (
        ALL_MOVES
        if moves is None
        else tuple(m.strip() for m in moves.split(",") if m.strip() and m.strip() != "none")
    )
    settings = settings_of(
        strategy=strategy,
        rounds=rounds,
        budget_tokens=budget_tokens,
        budget_seconds=budget_seconds,
        patience=patience,
        warmup=warmup,
        surrogate=not full,
        top_k=top_k,
        optimizer_model=optimizer_model,
        attempts=attempts,
        repairs=repairs,
        moves=chosen_moves,
        library=tuple(library or ()),
        task=task,
        val_split=val_split,
    )
    result = run_async(
        run(
            seeds,
            data,
            settings=settings,
            test=test,
            scoring=opts.scoring,
            rows=opts.rows,
            run=opts.run,
            executor=executor_of(executor, ray_address, ray_workers),
            out=out,
            resume=resume,
            display=opts.progress(),
        )
    )
    typer.echo(result.summary())
    typer.echo(f"record: {result.out}", err=True)
