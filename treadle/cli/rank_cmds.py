"""`treadle rank FLOWS... DATA`: rank candidate workflows by calibrated score (SCALE) for a
fraction of the tokens of evaluating each in full.

A thin layer over `treadle.studies.ranking`; options as `treadle eval`. Exit codes: 0 done,
2 bad input, 3 the runs failed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from treadle.cli.common import exit_on_error, run_async
from treadle.cli.options import AnalysisOptions, analysis_options
from treadle.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("rank")(exit_on_error(rank))


@analysis_options
def rank(
    paths: Annotated[list[Path], typer.Argument(help="FLOWS... DATA", show_default=False)],
    optimizer_model: Annotated[
        str | None,
        typer.Option("--optimizer-model", help="who predicts each flow's score (default: --model)"),
    ] = None,
    few_ratio: Annotated[
        float, typer.Option("--few-ratio", help="share of rows each candidate runs on")
    ] = 0.03,
    min_rows: Annotated[int, typer.Option("--min-rows", help="few-shot rows at least")] = 5,
    warmup: Annotated[int, typer.Option("--warmup", help="the first M flows run in full")] = 2,
    warmup_flows: Annotated[
        list[Path] | None, typer.Option("--warmup-flows", help="these flows run in full instead")
    ] = None,
    strata: Annotated[int, typer.Option("--strata", help="difficulty bands")] = 3,
    tau: Annotated[float, typer.Option("--tau", help="agreement tolerance before α rises")] = 0.15,
    alpha: Annotated[float, typer.Option("--alpha", help="α while they agree")] = 0.5,
    alpha_max: Annotated[float, typer.Option("--alpha-max", help="the cap on α")] = 0.9,
    verify: Annotated[
        bool, typer.Option("--verify", help="also evaluate every flow in full and correlate")
    ] = False,
    coverage: Annotated[
        int | None, typer.Option("--coverage", help="rows the top K flows solve together")
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="the task, as the optimizer model reads it")
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="write the JSON report")] = None,
    *,
    analysis: Callable[[], AnalysisOptions],
) -> None:
    """Warm-up flows in full → row difficulty strata → every other flow on a stratified few
    rows plus the optimizer model's self-prediction → calibrated score Ŝ, ranked."""

    if len(paths) < 2:
        raise InputError("rank takes FLOWS... DATA: at least one flow and the dataset.")
    *flows, data = paths

    from treadle.studies.ranking import RankSettings
    from treadle.studies.ranking import rank as run

    async def work() -> Any:
        opts = analysis()
        settings = RankSettings(
            optimizer_model=optimizer_model, task=task, few_ratio=few_ratio, min_rows=min_rows,
            warmup=warmup, n_strata=strata, tau=tau, alpha=alpha, alpha_max=alpha_max,
            verify=verify, coverage=coverage,
        )  # fmt: skip
        return await run(
            flows, data, settings=settings, warmup_flows=warmup_flows, scoring=opts.scoring,
            rows=opts.rows, run=opts.run, report=report, display=opts.progress(),
        )  # fmt: skip

    rep = run_async(work())
    typer.echo(render(rep), nl=False)
    if report is not None:
        typer.echo(f"report: {report}", err=True)


def _n(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render(rep: Any) -> str:
    lines = [
        f"{len(rep.flows)} flows on {rep.dataset} ({rep.n} rows, {rep.scorer}); strata "
        f"{rep.strata}; few-shot rows {len(rep.few_ids)}; tau {rep.tau:g}, "
        f"alpha {rep.alpha:g} (max {rep.alpha_max:g})",
        "",
    ]
    header = ["rank", "flow", "S_pred", "S_few", "alpha", "score", "tokens"]
    if rep.tokens_full_measured:
        header.append("full")
    table = [header]
    for f in rep.flows:
        row = [
            str(f.rank or "-"), Path(f.path).name + (" (warm-up)" if f.warmup else ""),
            _n(f.s_pred), _n(f.s_few), _n(f.alpha), _n(f.score), str(f.tokens),
        ]  # fmt: skip
        if rep.tokens_full_measured:
            row.append(_n(f.full))
        table.append(row)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    errors = [f for f in rep.flows if f.error]
    if errors:
        lines += [""] + [f"error: {Path(f.path).name}: {f.error}" for f in errors]
    how = "measured" if rep.tokens_full_measured else "estimated from the warm-up"
    lines += [
        "",
        f"tokens: {rep.tokens_spent} spent, {rep.tokens_full} for full evaluation of every flow "
        f"({how}): {100 * rep.saving:.0f}% saved",
    ]
    if rep.tokens_full_measured:
        lines.append(
            f"against full scores: Pearson {_n(rep.pearson)}, Spearman {_n(rep.spearman)}, "
            f"MAE {_n(rep.mae)}"
        )
    if rep.coverage is not None:
        lines.append(rep.coverage.summary())
    return "\n".join(lines) + "\n"
