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
import random
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
        # not a secret, just unique: getrandbits avoids an os.urandom call per run
        self.trace_id = trace_id or f"{random.getrandbits(128):032x}"
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


# ---------------------------------------------------------------- OpenTelemetry


class OtelSink:
    """Exports spans through OpenTelemetry with the GenAI semantic conventions.

    The workflow span is `invoke_workflow NAME` (`gen_ai.operation.name=invoke_workflow`), a
    model call `chat MODEL` with `gen_ai.request.model`, `gen_ai.usage.input_tokens`, ...; a
    step is `execute_tool OP` (`gen_ai.tool.name`). OpenTelemetry is imported here, on first
    use, so runs without it never pay for it. `tracer_provider` defaults to the global one.
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace as otel_trace
        except ImportError as e:  # pragma: no cover - depends on the environment
            from treadle.errors import TreadleError

            raise TreadleError(
                "OpenTelemetry export needs the OpenTelemetry SDK: "
                "`pip install 'treadle[otel]'` (or `pip install opentelemetry-sdk`)."
            ) from e
        self._trace = otel_trace
        self._tracer = otel_trace.get_tracer("treadle", tracer_provider=tracer_provider)
        self._open: dict[str, Any] = {}

    def on_start(self, span: Span) -> None:
        parent = self._open.get(span.parent_id or "")
        context = self._trace.set_span_in_context(parent) if parent is not None else None
        self._open[span.span_id] = self._tracer.start_span(
            _otel_name(span),
            context=context,
            kind=self._trace.SpanKind.CLIENT
            if span.kind == "model"
            else self._trace.SpanKind.INTERNAL,
            start_time=int(span.start * 1e9),
        )

    def on_end(self, span: Span) -> None:
        otel_span = self._open.pop(span.span_id, None)
        if otel_span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        for key, value in _otel_attributes(span).items():
            otel_span.set_attribute(key, value)
        for event in span.events:
            attrs = {k: _otel_value(v) for k, v in event.items() if k not in ("name", "time")}
            otel_span.add_event(str(event["name"]), attrs, timestamp=int(event["time"] * 1e9))
        if span.status == "error":
            otel_span.set_status(Status(StatusCode.ERROR, span.error or "error"))
        elif span.status == "ok":
            otel_span.set_status(Status(StatusCode.OK))
        otel_span.end(end_time=int((span.end or time.time()) * 1e9))

    def close(self) -> None:
        """End spans a cancelled run left open, so the exporter still sees them."""
        for otel_span in self._open.values():
            otel_span.end()
        self._open.clear()


#: step spans that are structure (control flow), not an operator call
_STRUCTURE = ("branch", "loop", "map", "turn", "item")


def _otel_name(span: Span) -> str:
    if span.kind == "workflow":
        return f"invoke_workflow {span.name}"
    if span.kind == "model":
        return span.name  # `chat MODEL`
    if span.kind == "sandbox":
        return f"sandbox {span.step or ''}".strip()
    if span.op == "call":
        return f"invoke_workflow {span.attrs.get('workflow') or span.name}"
    if span.op in ("turn", "item"):
        return span.name  # `repeat turn 2`, `picks item 0`
    if span.op in _STRUCTURE:
        return f"{span.op} {span.name}"
    return f"execute_tool {span.op or span.name}"


def _otel_attributes(span: Span) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "treadle.span.kind": span.kind,
        "treadle.status": span.status or "unfinished",
    }
    if span.kind == "step" and span.op == "call":
        attrs["gen_ai.operation.name"] = "invoke_workflow"
        attrs["gen_ai.workflow.name"] = str(span.attrs.get("workflow") or span.name)
    elif span.kind == "step" and span.op and span.op not in _STRUCTURE:
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = span.op
    if span.step:
        attrs["treadle.step"] = span.step
        attrs["treadle.step.name"] = span.name
    if span.tokens_in is not None:
        attrs["gen_ai.usage.input_tokens"] = span.tokens_in
    if span.tokens_out is not None:
        attrs["gen_ai.usage.output_tokens"] = span.tokens_out
    if span.cached is not None:
        attrs["treadle.cache_hit"] = span.cached
    if span.error:
        attrs["error.type"] = "treadle." + (span.kind or "step")
        attrs["treadle.error"] = span.error
    if isinstance(span.inputs, dict) and "sha256" in span.inputs:
        attrs["treadle.inputs.sha256"] = span.inputs["sha256"]
    if isinstance(span.outputs, dict) and "sha256" in span.outputs:
        attrs["treadle.outputs.sha256"] = span.outputs["sha256"]
    for key, value in span.attrs.items():
        if value is not None:
            attrs[key if "." in key else f"treadle.{key}"] = _otel_value(value)
    return attrs


def _otel_value(value: Any) -> Any:
    """OpenTelemetry takes scalars and homogeneous lists of scalars; anything else as JSON."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return canonical_json(value)
