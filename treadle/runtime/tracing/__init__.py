"""Tracing: a span per workflow run, step, model call and sandbox run.

Sinks receive span events: the JSONL writer (`jsonl`: a run's own file), the batch stream
(`stream`: the runs of an evaluation or a reward batch in one file per worker, with an index),
the optional OpenTelemetry exporter (`otel`, which imports OpenTelemetry on first use), the
CLI's progress display. Values are recorded as previews (`previews`); files and streams are
read back by `reader`.
"""

from treadle.runtime.tracing.jsonl import JsonlSink, default_trace_path
from treadle.runtime.tracing.otel import OtelSink
from treadle.runtime.tracing.previews import BLOB_MIN
from treadle.runtime.tracing.reader import (
    Trace,
    TraceEntry,
    find_traces,
    is_stream,
    list_traces,
    read_trace,
)
from treadle.runtime.tracing.span import Sink, Span
from treadle.runtime.tracing.stream import StreamTrace, TraceRef, TraceStream, open_stream
from treadle.runtime.tracing.tracer import Tracer

__all__ = [
    "BLOB_MIN",
    "JsonlSink",
    "OtelSink",
    "Sink",
    "Span",
    "StreamTrace",
    "Trace",
    "TraceEntry",
    "TraceRef",
    "TraceStream",
    "Tracer",
    "default_trace_path",
    "find_traces",
    "is_stream",
    "list_traces",
    "open_stream",
    "read_trace",
]
