"""Tracing: a span per workflow run, step, model call and sandbox run.

Sinks receive span events: the JSONL writer (`jsonl`), the optional OpenTelemetry exporter
(`otel`, which imports OpenTelemetry on first use), the CLI's progress display. Values are
recorded as previews (`previews`); a trace file is read back by `reader`.
"""

from treadle.runtime.tracing.jsonl import JsonlSink, default_trace_path
from treadle.runtime.tracing.otel import OtelSink
from treadle.runtime.tracing.previews import BLOB_MIN
from treadle.runtime.tracing.reader import Trace, read_trace
from treadle.runtime.tracing.span import Sink, Span
from treadle.runtime.tracing.tracer import Tracer

__all__ = [
    "BLOB_MIN",
    "JsonlSink",
    "OtelSink",
    "Sink",
    "Span",
    "Trace",
    "Tracer",
    "default_trace_path",
    "read_trace",
]
