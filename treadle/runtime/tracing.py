"""Tracing: a span per workflow run, step, model call and sandbox run.

The trace is written as the run goes, one JSON line per span event, flushed every time, so an
interrupted or crashed run leaves a readable file holding every span that finished (and the
start of the ones that did not). Sinks receive span events: the JSONL writer, the optional
OpenTelemetry exporter (`treadle.runtime.otel`-style, lazily imported), the CLI's progress
display. Values are recorded truncated, with a sha256 of the whole value so runs can be compared
without storing everything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Literal, Protocol

SpanKind = Literal["workflow", "step", "model", "sandbox"]
Status = Literal["ok", "error", "skipped", "cancelled"]

#: longest text kept in a trace preview; longer text is cut and marked
MAX_TEXT = 2000
#: most list items / record fields kept in a preview
MAX_ITEMS = 50

TRACE_FORMAT = 1


@dataclasses.dataclass(slots=True, eq=False)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    name: str
    #: the IR node id of the step (steps, and model/sandbox calls made by a step)
    step: str | None = None
    op: str | None = None
    #: None while running; a span read back from an interrupted trace keeps None
    status: str | None = None
    start: float = 0.0
    end: float | None = None
    inputs: Any = None
    outputs: Any = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cached: bool | None = None
    error: str | None = None
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Span:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class Sink(Protocol):
    """Receives span events as they happen (the JSONL file, OpenTelemetry, progress)."""

    def on_start(self, span: Span) -> None: ...

    def on_end(self, span: Span) -> None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- values


def summarize(value: Any) -> dict[str, Any]:
    """A truncated preview of a value plus the sha256 of its full canonical JSON."""
    text = canonical_json(value)
    preview, cut = _truncate(value)
    summary: dict[str, Any] = {
        "value": preview,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    if cut:
        summary["truncated"] = True
        summary["bytes"] = len(text.encode())
    return summary


def canonical_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_fallback
    )


def _fallback(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return repr(value)


def _truncate(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        if len(value) <= MAX_TEXT:
            return value, False
        return value[:MAX_TEXT] + f"…[+{len(value) - MAX_TEXT} chars]", True
    if isinstance(value, list | tuple):
        items = [_truncate(v) for v in value[:MAX_ITEMS]]
        out = [v for v, _ in items]
        cut = len(value) > MAX_ITEMS or any(c for _, c in items)
        if len(value) > MAX_ITEMS:
            out.append(f"…[+{len(value) - MAX_ITEMS} items]")
        return out, cut
    if isinstance(value, dict):
        keys = list(value)[:MAX_ITEMS]
        pairs = {str(k): _truncate(value[k]) for k in keys}
        cut = len(value) > MAX_ITEMS or any(c for _, c in pairs.values())
        return {k: v for k, (v, _) in pairs.items()}, cut
    if value is None or isinstance(value, bool | int | float):
        return value, False
    return _truncate(_fallback(value))


# ---------------------------------------------------------------- the tracer


class Tracer:
    """Creates spans, keeps them (for `RunResult.spans`) and hands their events to sinks.

    `record_values=False` skips the previews and hashes (the benchmark's bare mode).
    """

    def __init__(
        self,
        sinks: Iterable[Sink] = (),
        *,
        trace_id: str | None = None,
        keep: bool = True,
        record_values: bool = True,
    ) -> None:
        self.trace_id = trace_id or secrets.token_hex(16)
        self.sinks: list[Sink] = list(sinks)
        self.keep = keep
        self.record_values = record_values
        self.spans: list[Span] = []
        self._ids = itertools.count(1)
        self._closed = False

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def start(
        self,
        kind: str,
        name: str,
        parent: Span | None,
        *,
        step: str | None = None,
        op: str | None = None,
        inputs: Any = None,
        attrs: dict[str, Any] | None = None,
    ) -> Span:
        span = Span(
            self.trace_id,
            f"{next(self._ids):016x}",
            parent.span_id if parent is not None else None,
            kind,
            name,
            step,
            op,
            start=time.time(),
        )
        if attrs:
            span.attrs = attrs
        if inputs is not None and self.record_values:
            span.inputs = summarize(inputs)
        if self.keep:
            self.spans.append(span)
        for sink in self.sinks:
            sink.on_start(span)
        return span

    def end(
        self,
        span: Span,
        status: str = "ok",
        *,
        outputs: Any = None,
        error: str | None = None,
    ) -> None:
        if span.status is not None:
            return
        span.end = time.time()
        span.status = status
        if outputs is not None and self.record_values:
            span.outputs = summarize(outputs)
        if error is not None:
            span.error = error
        for sink in self.sinks:
            sink.on_end(span)

    def skipped(
        self, kind: str, name: str, parent: Span | None, *, step: str | None, op: str | None
    ) -> Span:
        span = self.start(kind, name, parent, step=step, op=op)
        self.end(span, "skipped")
        return span

    def event(self, span: Span, name: str, **attributes: Any) -> None:
        span.events.append({"name": name, "time": time.time(), **attributes})

    def close(self) -> None:
        """End every sink once (flushes and closes the file); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for sink in self.sinks:
            sink.close()


# ---------------------------------------------------------------- JSONL


class JsonlSink:
    """Writes `{"event": "start"|"end", ...span}` lines, flushing after each one.

    The first line is a header (`event: "trace"`) naming the workflow and the trace format.
    """

    def __init__(self, path: str | os.PathLike[str], *, header: dict[str, Any] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        self._write(
            {"event": "trace", "format": TRACE_FORMAT, "time": time.time(), **(header or {})}
        )

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(canonical_line(record))
        self._file.flush()

    def on_start(self, span: Span) -> None:
        record = span.to_dict()
        for key in ("status", "end", "outputs", "tokens_in", "tokens_out", "cached", "error"):
            del record[key]
        del record["events"]
        self._write({"event": "start", **record})

    def on_end(self, span: Span) -> None:
        self._write({"event": "end", **span.to_dict()})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def canonical_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=_fallback) + "\n"


def default_trace_path(workflow: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """`.treadle/traces/<UTC timestamp>-<workflow>.jsonl` under the working directory."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    millis = int(time.time() * 1000) % 1000
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in workflow) or "run"
    base = Path(directory) if directory is not None else Path(".treadle") / "traces"
    return base / f"{stamp}{millis:03d}-{safe}.jsonl"


# ---------------------------------------------------------------- reading


@dataclasses.dataclass
class Trace:
    header: dict[str, Any]
    spans: list[Span]
    #: lines that could not be read (a line cut short by a crash)
    bad_lines: int = 0

    def children(self) -> dict[str | None, list[Span]]:
        tree: dict[str | None, list[Span]] = {}
        ids = {s.span_id for s in self.spans}
        for s in self.spans:
            parent = s.parent_id if s.parent_id in ids else None
            tree.setdefault(parent, []).append(s)
        for kids in tree.values():
            kids.sort(key=lambda s: s.start)
        return tree


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a JSONL trace, complete or cut short: a start without an end stays unfinished."""
    header: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    bad = 0
    with Path(path).open(encoding="utf-8", errors="replace") as f:
        for line in _lines(f):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if not isinstance(record, dict):
                bad += 1
                continue
            event = record.pop("event", None)
            if event == "trace":
                header = record
            elif event in ("start", "end") and "span_id" in record:
                old = spans.get(record["span_id"])
                if old is not None and event == "start":
                    continue
                spans[record["span_id"]] = Span.from_dict(record)
            else:
                bad += 1
    return Trace(header, list(spans.values()), bad)


def _lines(f: IO[str]) -> Iterator[str]:
    for line in f:
        line = line.strip()
        if line:
            yield line
