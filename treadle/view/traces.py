"""A trace as the timeline page draws it: spans in tree order with their depth and offsets.

Traces are read only through `treadle.runtime.tracing` (`load_trace`), so another way of
storing them (many runs in one stream with an index) needs a change there, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from treadle.runtime.tracing import Span, Trace, read_trace


def load_trace(path: Path, trace_id: str | None = None, offset: int | None = None) -> Trace:
    """The trace a file holds, or one run's trace in a batch trace stream."""
    return read_trace(path, trace_id, offset=offset)


def _value(summary: Any) -> Any:
    """A preview's value (`{"value": v, "truncated": ...}` → v), as the page shows it."""
    return summary.get("value") if isinstance(summary, dict) and "value" in summary else summary


def _span(span: Span, depth: int, t0: float, trace: Trace) -> dict[str, Any]:
    outputs = _value(span.outputs)
    item: dict[str, Any] = {
        "id": span.span_id,
        "parent": span.parent_id,
        "depth": depth,
        "kind": span.kind,
        "name": span.name,
        "op": span.op,
        "step": span.step,
        "status": span.status,
        "start": round(span.start - t0, 6),
        "duration": None if span.end is None else round(span.end - span.start, 6),
        "inputs": _with_blobs(_value(span.inputs), trace),
        "outputs": outputs,
        "truncated": bool(isinstance(span.outputs, dict) and span.outputs.get("truncated")),
        "tokens_in": span.tokens_in,
        "tokens_out": span.tokens_out,
        "cached": span.cached,
        "error": span.error,
        "attrs": span.attrs,
        "events": span.events,
    }
    if span.kind == "sandbox" and isinstance(outputs, dict):
        item["stdout"] = outputs.get("stdout")
        item["stderr"] = outputs.get("stderr")
    return item


def _with_blobs(value: Any, trace: Trace) -> Any:
    """Sandbox files stored once by hash, put back in place for reading."""
    if isinstance(value, dict):
        text = trace.blob(value)
        if text is not None:
            return text
        return {k: _with_blobs(v, trace) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_blobs(v, trace) for v in value]
    return value


def trace_payload(trace: Trace) -> dict[str, Any]:
    """The spans depth-first (each parent before its children, siblings by start), with times
    relative to the first span, and the totals the page's header shows."""
    kids = trace.children()
    t0 = min((s.start for s in trace.spans), default=0.0)
    end = max((s.end or s.start for s in trace.spans), default=t0)
    out: list[dict[str, Any]] = []
    stack = [(s, 0) for s in reversed(kids.get(None, []))]
    while stack:
        span, depth = stack.pop()
        out.append(_span(span, depth, t0, trace))
        stack.extend((c, depth + 1) for c in reversed(kids.get(span.span_id, [])))
    models = [s for s in trace.spans if s.kind == "model"]
    return {
        "header": trace.header,
        "spans": out,
        "total_s": round(end - t0, 6),
        "model_calls": len(models),
        "cached_calls": sum(1 for s in models if s.cached),
        "tokens_in": sum(s.tokens_in or 0 for s in models),
        "tokens_out": sum(s.tokens_out or 0 for s in models),
        "errors": sum(1 for s in trace.spans if s.status == "error"),
        "unfinished": sum(1 for s in trace.spans if s.status is None),
        "bad_lines": trace.bad_lines,
    }
