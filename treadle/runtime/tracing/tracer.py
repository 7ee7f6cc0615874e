"""The tracer: creates a run's spans, keeps them and hands their events to the sinks."""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from collections.abc import Iterable
from typing import Any

from treadle.runtime.tracing.previews import summarize
from treadle.runtime.tracing.span import Sink, Span, SpanReader


class Tracer:
    """Creates spans, keeps them (for `RunResult.spans`) and hands their events to sinks.

    `record_values=False` skips the previews (the benchmark's bare mode).
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
        #: sha256 of the blobs already handed to the sinks
        self._blobs: set[str] = set()
        #: sinks that read the kept spans themselves when they flush (`attach`)
        self.readers: list[SpanReader] = []

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def attach(self, reader: SpanReader) -> None:
        """A sink that is not called per span event but reads `spans` when it writes (a batch
        stream: the cheapest sink, for short runs by the thousand); it needs the spans kept."""
        if not self.keep:
            raise ValueError("a span reader needs a tracer that keeps its spans")
        reader.bind(self)
        self.readers.append(reader)

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
        if outputs is not None and self.record_values:
            span.outputs = summarize(outputs)
        if error is not None:
            span.error = error
        # last: a writer that sees a status sees every other field of the ended span
        span.status = status
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

    def blob(self, data: bytes | str) -> dict[str, Any]:
        """A reference `{"blob": sha256, "bytes": n}` to `data`, handed to the sinks once per
        trace: large inputs that repeat (a harness script) are stored once, not per span."""
        raw = data.encode() if isinstance(data, str) else data
        digest = hashlib.sha256(raw).hexdigest()
        if digest not in self._blobs:
            self._blobs.add(digest)
            text = raw.decode("utf-8", "replace")
            for sink in [*self.sinks, *self.readers]:
                on_blob = getattr(sink, "on_blob", None)
                if on_blob is not None:
                    on_blob(digest, text)
        return {"blob": digest, "bytes": len(raw)}

    def close(self) -> None:
        """End every sink once (flushes and closes the file); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for sink in self.sinks:
            sink.close()
        for reader in self.readers:
            reader.close()
