"""`treadle eval FLOW DATA [options]` and `treadle eval compare A.json B.json`.

`eval` is a group whose default command is the evaluation itself: when the first word after
`eval` is not a subcommand (`compare`), it is the FLOW of `treadle eval run` (`EvalGroup`).
Options therefore come after FLOW (and DATA).

stdout gets only the report (a table, or JSON with `--format json`); progress, the results
path and errors go to stderr. Exit codes: 0 done, 2 bad input (said before anything runs),
3 stopped past --max-errors, 130 interrupted (resume with --resume RESULTS).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from treadle.cli.common import exit_on_error, fail, finish, run_async, say
from treadle.cli.options import AnalysisOptions, analysis_options
from treadle.errors import EXIT_RUNTIME as EXIT_STOPPED


class EvalGroup(TyperGroup):
    """`treadle eval X ...` runs `eval run X ...` unless X names a subcommand."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        cls=EvalGroup,
        help="Score a workflow on a dataset: `treadle eval FLOW DATA --scorer ...`; "
        "`treadle eval compare A.json B.json`.",
        no_args_is_help=True,
    )
    group.command("run", help="(the default) evaluate FLOW on DATA: `treadle eval FLOW DATA`")(
        eval_run
    )
    group.command("compare")(exit_on_error(compare))
    app.add_typer(group, name="eval")


@analysis_options
def eval_run(
    flow: Annotated[Path, typer.Argument(help="the .flow file to evaluate")],
    data: Annotated[
        str | None, typer.Argument(help="a .jsonl/.csv dataset (or use --dataset NAME)")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="a built-in dataset: humaneval")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="runs per row")] = 1,
    reducer: Annotated[
        str, typer.Option("--reducer", help="mean, max, majority or pass@K over epochs")
    ] = "mean",
    results: Annotated[
        Path | None,
        typer.Option(
            "--results", help="the rows file (default .treadle/evals/<time>-<flow>.jsonl)"
        ),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="a results file: run only its missing rows")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="write the report as JSON")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="stdout: table or json")] = "table",
    executor: Annotated[str, typer.Option("--executor", help="local or ray")] = "local",
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="join this Ray cluster")
    ] = None,
    ray_workers: Annotated[
        int | None,
        typer.Option("--ray-workers", help="Ray worker actors (default: one per alive node)"),
    ] = None,
    trace_dir: Annotated[
        Path | None, typer.Option("--trace-dir", help="row traces (default beside the results)")
    ] = None,
    *,
    analysis: Callable[[], AnalysisOptions],
) -> None:
    """Evaluate a workflow on a dataset; the report on stdout, progress on stderr."""
    from treadle.errors import InputError

    results_path: Path | None = None
    try:
        opts = analysis()
        if (data is None) == (dataset is None):
            raise InputError(
                "Give the dataset either as DATA (a .jsonl or .csv file) or as --dataset NAME, "
                "not both and not neither."
            )
        if fmt not in ("table", "json"):
            raise InputError(f"--format is table or json, got {fmt!r}.")
        from treadle.eval.evaluate import evaluate
        from treadle.eval.executors import executor_of
        from treadle.eval.options import Epochs

        run = opts.run.with_(traces=trace_dir) if trace_dir is not None else opts.run
        chosen = executor_of(executor, ray_address, ray_workers)
        results_path = resume or results
        if results_path is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            results_path = Path(".treadle") / "evals" / f"{stamp}-{flow.stem}.jsonl"
        say(f"results: {results_path}")
        source = data if data is not None else str(dataset)
        result = run_async(
            evaluate(
                flow,
                source,
                scoring=opts.scoring,
                rows=opts.rows,
                run=run,
                epochs=Epochs(epochs, reducer),
                executor=chosen,
                results=None if resume else results_path,
                resume=resume,
                report=report,
                display=opts.progress(),
            )
        )
    except (Exception, KeyboardInterrupt) as e:
        stopped = (
            f"Interrupted. Finished rows are in {results_path}; run the same command with "
            f"--resume {results_path} to finish."
            if results_path
            else "Interrupted."
        )
        raise typer.Exit(finish(fail(e, interrupted=stopped))) from None
    if fmt == "json":
        sys.stdout.write(result.to_json().decode() + "\n")
    else:
        print_report(result)
    sys.stdout.flush()
    if report is not None:
        say(f"report: {report}")
    if result.stopped:
        say(f"Stopped: {result.stopped}")
        raise typer.Exit(EXIT_STOPPED)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def print_report(report: Any) -> None:
    """The report as tables on stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, soft_wrap=False, width=max(100, Console().width))
    head = Table(show_header=False, box=None, pad_edge=False)
    head.add_column(style="bold")
    head.add_column()
    model = report.model or "default"
    model = model if len(model) <= 48 else model[:47] + "…"
    head.add_row("flow", f"{report.flow}   dataset {report.dataset}   model {model}")
    ci = f"[{_fmt(report.ci_low)}, {_fmt(report.ci_high)}]"
    head.add_row(
        f"score ({report.scorer})",
        f"{_fmt(report.mean)}   95% CI {ci}   n {report.n}  scored {report.scored}  "
        f"failed {report.failed}  errors {report.errors}"
        + (f"   epochs {report.epochs} ({report.reducer})" if report.epochs > 1 else ""),
    )
    for name, value in list(report.scorers.items())[1:]:
        head.add_row(f"  {name}", _fmt(value))
    head.add_row(
        "tokens",
        f"{report.tokens_in} in / {report.tokens_out} out   model calls {report.model_calls} "
        f"({report.cached_calls} cached)   sandbox runs {report.sandbox_runs}",
    )
    head.add_row(
        "latency",
        f"p50 {report.latency_p50_s:.3f} s   p95 {report.latency_p95_s:.3f} s   "
        f"wall {report.wall_s:.1f} s",
    )
    if report.stopped:
        head.add_row("stopped", report.stopped)
    console.print(head)
    if report.steps:
        steps = Table(title=None, show_lines=False)
        for col in (
            "step",
            "runs",
            "failures",
            "skips",
            "mean latency s",
            "tokens in",
            "tokens out",
        ):
            steps.add_column(col, justify="left" if col == "step" else "right")
        for name, st in report.steps.items():
            steps.add_row(
                name, str(st.runs), str(st.failures), str(st.skips), f"{st.mean_latency_s:.3f}",
                str(st.tokens_in), str(st.tokens_out),
            )  # fmt: skip
        console.print(steps)
    bad = [r for r in report.rows if r.status != "ok"][:5]
    for r in bad:
        console.print(
            f"row {r.id}: {r.status}: {(r.error or '').splitlines()[0][:160]}", markup=False
        )
    if report.results_path:
        console.print(f"results {report.results_path}", markup=False)


def compare(
    a: Annotated[Path, typer.Argument(help="report A (treadle eval --report)")],
    b: Annotated[Path, typer.Argument(help="report B")],
    more: Annotated[
        list[Path] | None,
        typer.Argument(help="further reports, for --coverage (the pair compared is A and B)"),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = 0,
    coverage: Annotated[
        int | None,
        typer.Option("--coverage", help="share of rows the top K of the given reports solve"),
    ] = None,
) -> None:
    """B against A on their common rows: the paired difference with a 95% bootstrap interval;
    with --coverage K, how many rows the top K of all the given reports solve together."""
    import orjson

    from treadle.errors import InputError
    from treadle.eval.compare import compare as run_compare
    from treadle.eval.compare import load_report
    from treadle.studies.ranking import coverage_of_reports

    result = run_compare(a, b, seed=seed)
    cover = None
    if coverage is not None:
        if coverage < 1:
            raise InputError("--coverage takes a number of flows, 1 or more.")
        reports = [load_report(p) for p in (a, b, *(more or []))]
        cover = coverage_of_reports(reports, coverage)
    if fmt == "json":
        payload = result.model_dump(mode="json")
        if cover is not None:
            payload["coverage"] = cover.model_dump(mode="json")
        sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    lines = [
        f"A {result.a}: {_fmt(result.mean_a)}",
        f"B {result.b}: {_fmt(result.mean_b)}",
        f"common rows {result.common} (only in A {result.only_a}, only in B {result.only_b}); "
        f"B wins {result.wins_b}, A wins {result.wins_a}, ties {result.ties}",
        result.message,
    ]
    if cover is not None:
        lines.append(cover.summary())
    sys.stdout.write("\n".join(lines) + "\n")
