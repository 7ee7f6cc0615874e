"""Rendering a trace as a tree with timings (`treadle trace show`), a stream's traces as a table
(`treadle trace list`) and the live progress line.

Both read spans only, so they work the same on a finished run, a file cut short by Ctrl-C or a
crash, and a run still in progress.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from treadle.runtime.tracing import Span, Trace, TraceEntry

_STATUS_STYLE = {
    "ok": "green",
    "error": "bold red",
    "skipped": "dim",
    "cancelled": "yellow",
    None: "yellow",
}


def render_trace(trace: Trace, *, values: bool = False) -> Tree:
    """The spans as a tree: name, operator, status, start offset, duration, tokens, cache (and
    for a batch stream's trace, its row)."""
    kids = trace.children()
    roots = kids.get(None, [])
    t0 = min((s.start for s in trace.spans), default=0.0)
    head = Text()
    head.append(f"trace {trace.header.get('workflow') or ''}".rstrip(), style="bold")
    if trace.header.get("row") is not None:  # one row's trace of a batch stream
        head.append(f" (row {trace.header['row']}, epoch {trace.header.get('epoch', 0)})")
    models = [s for s in trace.spans if s.kind == "model"]
    if models:
        tin = sum(s.tokens_in or 0 for s in models)
        tout = sum(s.tokens_out or 0 for s in models)
        hits = sum(1 for s in models if s.cached)
        head.append(f"  {len(models)} model calls ({hits} cached), tokens {tin}→{tout}")
    unfinished = sum(1 for s in trace.spans if s.status is None)
    if unfinished:
        head.append(f"  {unfinished} spans unfinished (the run was cut short)", style="yellow")
    if trace.bad_lines:
        head.append(f"  {trace.bad_lines} unreadable lines skipped", style="yellow")
    tree = Tree(head)

    def add(parent: Tree, span: Span) -> None:
        branch = parent.add(_label(span, t0, values))
        for child in kids.get(span.span_id, []):
            add(branch, child)

    for root in roots:
        add(tree, root)
    return tree


def render_listing(entries: list[TraceEntry]) -> Table:
    """A stream's traces, in the order they started: id, row, epoch, evaluation, status,
    duration, spans (an unfinished one was cut short or is still running)."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("trace", "row", "epoch", "group", "status", "duration", "spans"):
        table.add_column(column, justify="right" if column in ("duration", "spans") else "left")
    for e in entries:
        status = e.status if e.final else "unfinished"
        duration = "" if e.start is None or e.end is None else _duration(e.end - e.start)
        table.add_row(
            e.trace_id,
            str(e.row if e.row is not None else ""),
            str(e.epoch if e.epoch is not None else ""),
            str(e.labels.get("group") or ""),
            Text(str(status), style=_STATUS_STYLE.get(e.status if e.final else None, "yellow")),
            duration,
            "" if e.spans is None else str(e.spans),
        )
    return table


def _label(span: Span, t0: float, values: bool) -> Text:
    text = Text()
    text.append(span.name, style="bold" if span.kind == "workflow" else "")
    if span.kind == "step" and span.op == "call" and span.attrs.get("workflow"):
        text.append(f" (call {span.attrs['workflow']})", style="cyan")  # which workflow ran
    elif span.kind == "step" and span.op and span.op not in ("turn", "item"):
        text.append(f" ({span.op})", style="cyan")
    elif span.kind in ("model", "sandbox"):
        text.append(f" [{span.kind}]", style="magenta")
    status = span.status or "unfinished"
    text.append(f"  {status}", style=_STATUS_STYLE.get(span.status, "yellow"))
    text.append(f"  +{span.start - t0:.3f}s", style="dim")
    if span.end is not None and span.status != "skipped":
        text.append(f"  {_duration(span.end - span.start)}")
    if span.tokens_in is not None or span.tokens_out is not None:
        text.append(f"  tokens {span.tokens_in or 0}→{span.tokens_out or 0}")
    if span.cached:
        text.append("  cached", style="green")
    retries = sum(1 for e in span.events if e.get("name") == "retry")
    if retries:
        text.append(f"  {retries} retries", style="yellow")
    if span.error and span.status == "error":
        text.append(f"\n{span.error}", style="red")
    if values and span.outputs is not None:
        text.append(f"\n→ {_preview(span.outputs)}", style="dim")
    return text


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds:.2f}s"


def _preview(summary: Any) -> str:
    """The value as JSON, as the trace file holds it (a string quoted, `null`, `true`)."""
    value = summary.get("value") if isinstance(summary, dict) else summary
    text = json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:117] + "..."


class ProgressSink:
    """A live one-line status on stderr (steps done, model calls, tokens, elapsed time).

    It appears only after `delay` seconds, so quick runs print nothing extra, and only when
    stderr is a terminal (the CLI checks).
    """

    def __init__(self, console: Console, *, delay: float = 0.5) -> None:
        self.console = console
        self.started = time.monotonic()
        self.steps_started = 0
        self.steps_done = 0
        self.model_calls = 0
        self.tokens = 0
        self.running: dict[str, str] = {}
        self._live: Any = None
        self._timer: asyncio.TimerHandle | None = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._timer = loop.call_later(delay, self._begin)

    def _begin(self) -> None:
        from rich.live import Live

        self._live = Live(
            self._render(), console=self.console, transient=True, refresh_per_second=8
        )
        self._live.start()

    def _render(self) -> Text:
        text = Text()
        text.append("running ", style="bold")
        text.append(f"{time.monotonic() - self.started:5.1f}s  ")
        text.append(f"steps {self.steps_done}/{self.steps_started}  ")
        text.append(f"model calls {self.model_calls}  tokens {self.tokens}")
        if self.running:
            names = ", ".join(list(self.running.values())[:4])
            more = len(self.running) - 4
            text.append(f"  [{names}{f' +{more}' if more > 0 else ''}]", style="dim")
        return text

    def on_start(self, span: Span) -> None:
        if span.kind == "step" and span.op not in ("turn", "item"):
            self.steps_started += 1
            self.running[span.span_id] = span.name
        elif span.kind == "model":
            self.model_calls += 1
        self._refresh()

    def on_end(self, span: Span) -> None:
        if span.kind == "step" and span.op not in ("turn", "item"):
            if self.running.pop(span.span_id, None) is not None:
                self.steps_done += 1
        elif span.kind == "model":
            self.tokens += (span.tokens_in or 0) + (span.tokens_out or 0)
        self._refresh()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._live is not None:
            self._live.stop()
            self._live = None
