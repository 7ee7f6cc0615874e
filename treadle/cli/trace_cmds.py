"""`treadle trace show FILE` and `treadle trace list FILE`.

FILE is a run's own trace (`treadle run --trace`), a batch trace stream (an evaluation's
`RESULTS-traces/WORKER.jsonl`, a reward batch's), or an evaluation's results file, whose row
lines point at each row's trace (stream, trace id, offset). `--row ID [--epoch N]` selects a
row's trace from a stream (through its index) or a results file; `--trace ID` one by its id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from treadle.cli.common import exit_on_error
from treadle.errors import InputError

Row = Annotated[str | None, typer.Option("--row", help="the row id whose trace to show")]
Epoch = Annotated[int | None, typer.Option("--epoch", help="which epoch of the row")]
TraceId = Annotated[str | None, typer.Option("--trace", help="a trace id of the stream")]


def register(app: typer.Typer) -> None:
    """Add the `trace` group to the `treadle` app."""
    trace_app = typer.Typer(help="Read run traces.", no_args_is_help=True)
    trace_app.command("show")(exit_on_error(show))
    trace_app.command("list")(exit_on_error(list_command))
    app.add_typer(trace_app, name="trace")


def show(
    file: Annotated[
        Path, typer.Argument(help="a trace file, a batch trace stream or a results file")
    ],
    row: Row = None,
    epoch: Epoch = None,
    trace_id: TraceId = None,
    values: Annotated[
        bool, typer.Option("--values", help="show each span's output preview")
    ] = False,
) -> None:
    """Render a trace as a tree with timings (works on traces of interrupted runs too)."""
    from rich.console import Console

    from treadle.cli.trace_view import render_trace

    trace = _select(file, row, epoch, trace_id)
    if not trace.spans:
        raise InputError(f"{file} holds no spans (is it a treadle trace?).")
    Console(soft_wrap=False).print(render_trace(trace, values=values))


def list_command(
    file: Annotated[Path, typer.Argument(help="a batch trace stream")],
    row: Row = None,
    epoch: Epoch = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """List the traces a batch stream holds (row, epoch, evaluation, status, duration)."""
    import dataclasses

    from rich.console import Console

    from treadle.cli.trace_view import render_listing
    from treadle.runtime.tracing import find_traces, is_stream

    _exists(file)
    if fmt not in ("table", "json"):
        raise InputError(f"--format is table or json, got {fmt!r}.")
    if not is_stream(file):
        raise InputError(
            f"{file} is not a trace stream: a run's own trace holds one trace (`treadle trace "
            "show FILE` draws it)."
        )
    entries = find_traces(file, row=row, epoch=epoch)
    if fmt == "json":
        typer.echo(json.dumps([dataclasses.asdict(e) for e in entries]))
    else:
        Console(soft_wrap=False).print(render_listing(entries))


def _exists(file: Path) -> None:
    if not file.is_file():
        raise InputError(f"There is no trace file {file}.")


def _select(file: Path, row: str | None, epoch: int | None, trace_id: str | None) -> Any:
    """The trace FILE and the options name."""
    from treadle.runtime.tracing import is_stream, read_trace

    _exists(file)
    if _is_results(file):
        return _from_results(file, row, epoch, trace_id)
    if is_stream(file):
        if row is not None:
            trace_id = _row_in_stream(file, row, epoch).trace_id
        return read_trace(file, trace_id)
    if row is not None or epoch is not None:
        raise InputError(
            f"{file} is a run's own trace (it holds one run): --row and --epoch select a row's "
            "trace in a batch trace stream or a results file."
        )
    return read_trace(file, trace_id)


def _is_results(file: Path) -> bool:
    with file.open("rb") as f:
        first = f.readline()
    return first.startswith(b'{"kind":"header"')


def _row_in_stream(file: Path, row: str, epoch: int | None) -> Any:
    """The trace of `row` (and `epoch`) in a stream: the latest when the row ran more than
    once in the same evaluation (a resume runs errors again); an error naming the choices when
    several evaluations or epochs match."""
    from treadle.runtime.tracing import find_traces

    found = find_traces(file, row=row, epoch=epoch)
    if not found:
        which = f"row {row}" + (f" epoch {epoch}" if epoch is not None else "")
        raise InputError(f"The trace stream {file} holds no trace of {which}.")
    kinds = {(e.epoch, e.labels.get("group")) for e in found}
    if len(kinds) > 1:
        choices = "; ".join(
            f"epoch {e.epoch} of {e.labels.get('group') or 'an unnamed run'}: --trace {e.trace_id}"
            for e in found
        )
        raise InputError(
            f"Row {row} has {len(found)} traces in {file} ({choices}); say which with --epoch "
            "or --trace."
        )
    return found[-1]


def _from_results(file: Path, row: str | None, epoch: int | None, trace_id: str | None) -> Any:
    """A row's trace through the results file's pointer (stream, trace id, offset)."""
    from treadle.eval.evaluate import read_results
    from treadle.runtime.tracing import read_trace

    if row is None and trace_id is None:
        raise InputError(f"{file} is a results file: say which row's trace to show (--row ID).")
    _, rows = read_results(file, repair=False)
    picked = [
        r
        for r in rows
        if (row is None or r.id == row)
        and (epoch is None or r.epoch == epoch)
        and (trace_id is None or r.trace_id == trace_id)
    ]
    if not picked:
        raise InputError(f"The results file {file} has no such row.")
    if len(picked) > 1:
        epochs = ", ".join(str(r.epoch) for r in picked)
        raise InputError(f"Row {row} ran epochs {epochs} in {file}: say which with --epoch.")
    found = picked[0]
    if found.trace_path is None or found.trace_id is None:
        raise InputError(f"Row {found.id} of {file} has no trace (it ran with traces off).")
    stream = Path(found.trace_path)
    if not stream.is_file():  # the results and traces moved together: look beside the file
        stream = file.parent / stream.parent.name / stream.name
    _exists(stream)
    return read_trace(stream, found.trace_id, offset=found.trace_offset)
