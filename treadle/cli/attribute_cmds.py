"""`treadle attribute FLOW DATA`: which steps (operators, capability calls) carry the score.

A thin layer over `treadle.studies.attribution`: options as `treadle eval`, a table of units
ranked by effect on stdout, progress on stderr, the JSON report with `--report`. Exit codes:
0 done, 2 bad input (flow, dataset, scorer, options), 3 the runs failed.
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
    app.command("attribute")(exit_on_error(attribute))


@analysis_options
def attribute(
    paths: Annotated[
        list[Path],
        typer.Argument(help="FLOW DATA, or with --library: FLOWS... DATA", show_default=False),
    ],
    by: Annotated[str, typer.Option("--by", help="step, operator or call")] = "step",
    report: Annotated[Path | None, typer.Option("--report", help="write the JSON report")] = None,
    prune: Annotated[
        Path | None, typer.Option("--prune", help="write the flow without units that do not help")
    ] = None,
    library: Annotated[
        Path | None,
        typer.Option("--library", help="credit this library's capabilities across the FLOWS"),
    ] = None,
    success: Annotated[
        float, typer.Option("--success", help="a row is a success at this score or above")
    ] = 0.5,
    *,
    analysis: Callable[[], AnalysisOptions],
) -> None:
    """Remove each step (or operator, or capability call) in turn, re-run the same rows with
    the same seeds, and rank the units by the score they carry."""

    if len(paths) < 2:
        raise InputError("attribute takes FLOW DATA (several FLOWS only with --library).")
    if by not in ("step", "operator", "call"):
        raise InputError(f"--by is step, operator or call, got {by!r}.")
    *flows, data = paths
    if library is None and len(flows) != 1:
        raise InputError("attribute takes one FLOW (several only with --library).")

    from treadle.studies.attribution import attribute as run
    from treadle.studies.attribution import attribute_library

    async def work() -> Any:
        opts = analysis()
        common: dict[str, Any] = dict(
            scoring=opts.scoring, rows=opts.rows, run=opts.run, success=success, report=report,
            display=opts.progress(),
        )  # fmt: skip
        if library is not None:
            return await attribute_library(library, flows, data, **common)
        return await run(flows[0], data, by=by, prune=prune, **common)  # type: ignore[arg-type]

    rep = run_async(work())
    typer.echo(render(rep), nl=False)
    if report is not None:
        typer.echo(f"report: {report}", err=True)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, sign: bool = True) -> str:
    return "-" if x is None else (f"{x:+.3f}" if sign else f"{x:.3f}")


def render(rep: Any) -> str:
    """The report as plain text: the baseline, units by rank, cost against naive."""
    lines = [
        f"baseline {_num(rep.baseline, False)} on {rep.n} rows ({rep.scorer}); "
        f"{rep.successes} successes (score >= {rep.success:g})",
        "",
    ]
    header = ("rank", "unit", "by", "removed as", "effect", "95% CI", "sign", "share", "failed",
              "errors")  # fmt: skip
    table = [header]
    shown = [u for u in rep.units if u.effect is not None or u.sign == "breaks"]
    for u in shown:
        table.append(
            (
                str(u.rank or "-"), u.unit, u.target, _short(u.reason, 44), _num(u.effect),
                f"[{_num(u.ci_low)}, {_num(u.ci_high)}]", u.sign or "-", _pct(u.share),
                str(u.failed), str(u.errors),
            )
        )  # fmt: skip
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    breaking = [u for u in shown if u.sign == "breaks"]
    if breaking:
        lines += ["", "breaks the flow (without it rows fail or none can be scored):"]
        lines += [f"  {u.unit}: {u.failed} failed, {u.errors} errors" for u in breaking]
    skipped = [u for u in rep.units if u.effect is None and u.sign != "breaks"]
    if skipped:
        lines += ["", "not measured:"]
        lines += [f"  {u.unit} ({u.target}): {_short(u.reason, 120)}" for u in skipped]
    if rep.cumulative and rep.cumulative[-1].share == 0:
        lines += ["", "no single unit's removal loses any of the baseline's successes"]
    elif rep.cumulative:
        c = next((c for c in rep.cumulative if c.share >= 0.8), rep.cumulative[-1])
        lines += [
            "",
            f"top {c.units} of {len(rep.cumulative)} units ({_pct(c.fraction_of_units)}) "
            f"carry {_pct(c.share)} of the baseline's successes",
        ]
    saved = 1 - rep.model_calls / rep.model_calls_naive if rep.model_calls_naive else 0.0
    lines += [
        "",
        f"model calls: {rep.model_calls} made, {rep.model_calls_naive} without the cache "
        f"({_pct(saved)} fewer); {rep.cached_calls} cache hits; {rep.wall_s:.1f} s",
    ]
    if rep.prune is not None:
        p = rep.prune
        lines += [
            f"pruned: {p.path} without {', '.join(p.removed) or 'nothing'}: score "
            f"{_num(p.score, False)} (original {_num(p.baseline, False)}), model calls "
            f"{p.model_calls} (original {p.model_calls_baseline}), tokens {p.tokens} "
            f"(original {p.tokens_baseline})"
        ]
        lines += [f"  kept {u}: {_short(why, 100)}" for u, why in p.kept_candidates.items()]
        lines += [f"  backed off {u}: {_short(why, 100)}" for u, why in p.backed_off.items()]
    return "\n".join(lines) + "\n"


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
