"""Tracing: a span per workflow run, step, model call and sandbox run.

Sinks receive span events: the JSONL writer, the optional OpenTelemetry exporter (imported on
first use), the CLI's progress display. Values are recorded as previews: whole when small, else
cut and marked, with the sha256 of the whole value so runs can be compared without storing
everything.

The JSONL writer is cheap because it does almost nothing while a step runs: a start only
notes the span, an end queues its line (built with orjson, so the span itself can be freed);
lines are written in one batch at most every `FLUSH_INTERVAL` seconds (by one background
thread for every open trace), when the queue grows large, at the end of the run, at interpreter
exit and on SIGTERM/SIGHUP. A span that starts and ends between two flushes is one line. A run
cut off (Ctrl-C, a crash, even SIGKILL) leaves a readable file holding everything up to the
last flush, at most `FLUSH_INTERVAL` old: spans that ended, and the start of the ones that did
not. Large inputs that repeat (the sandbox harness script) are stored once per trace as a
`blob` line and referenced by hash.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import random
import signal
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

SpanKind = Literal["workflow", "step", "model", "sandbox"]
Status = Literal["ok", "error", "skipped", "cancelled"]

#: longest text kept in a trace preview; longer text is cut and marked
MAX_TEXT = 2000
#: most list items / record fields kept in a preview
MAX_ITEMS = 50
#: canonical JSON this short cannot hold anything `_truncate` would cut (51 one-character list
#: items already take 103 bytes, and a longer string than MAX_TEXT takes more)
_NEVER_CUT = 2 * (MAX_ITEMS + 1)
#: inputs at least this large (sandbox files) are stored once per trace, by hash
BLOB_MIN = 1024

#: 2: span lines carry no trace id (the header does), an `end` line only what changed, a span
#: that started and ended between two flushes is one `span` line, large inputs are `blob` lines
TRACE_FORMAT = 2

#: seconds between two flushes of an open JSONL trace (the guarantee is "at least every 0.1 s")
FLUSH_INTERVAL = 0.05
#: seconds with no open trace after which the flusher thread ends (the next trace restarts it)
_IDLE_EXIT = 10.0
#: queued events that make the writer flush at once instead of waiting for the timer
_FLUSH_EVENTS = 4096


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
        fields = {k: v for k, v in data.items() if k in names}
        for key in ("trace_id", "span_id", "kind", "name"):
            fields.setdefault(key, "")
        fields.setdefault("parent_id", None)
        return cls(**fields)


class Sink(Protocol):
    """Receives span events as they happen (the JSONL file, OpenTelemetry, progress).

    A sink may also define `on_blob(sha256, text)` to receive large inputs stored by hash.
    """

    def on_start(self, span: Span) -> None: ...

    def on_end(self, span: Span) -> None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------- values


def summarize(value: Any) -> dict[str, Any]:
    """A preview of a value: `{"value": v}` when whole; when cut, also `truncated`, `bytes` and
    the `sha256` of the full canonical JSON (a whole value is its own fingerprint; see
    `value_sha256`)."""
    kind = type(value)
    if kind is dict:  # a step's arguments, a workflow's outputs: usually a few scalars
        if len(value) <= MAX_ITEMS and _flat(value.values()) and _text_keys(value):
            return {"value": dict(value)}
    elif kind is str:
        if len(value) <= MAX_TEXT:
            return {"value": value}
    elif kind in _SCALARS:
        return {"value": value}
    elif kind is list and len(value) <= MAX_ITEMS and _flat(value):
        return {"value": list(value)}
    data = canonical_bytes(value)
    if len(data) <= _NEVER_CUT:
        # a JSON-native copy, so later changes to the value do not reach the trace
        return {"value": orjson.loads(data)}
    preview, cut = _truncate(value)
    if not cut:
        return {"value": preview}
    return {
        "value": preview,
        "truncated": True,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


_SCALARS = frozenset((type(None), bool, int, float))


def _flat(values: Iterable[Any]) -> bool:
    """Whether every value is a scalar or a short text: a copy of the container is then a
    whole preview, with nothing to cut."""
    for v in values:
        kind = type(v)
        if kind is str:
            if len(v) > MAX_TEXT:
                return False
        elif kind not in _SCALARS:
            return False
    return True


def _text_keys(value: dict[Any, Any]) -> bool:
    # a loop, not all(...): no generator to build on a path taken for every step
    for key in value:  # noqa: SIM110
        if type(key) is not str:
            return False
    return True


def value_sha256(summary: Any) -> str | None:
    """The sha256 of the canonical JSON of the value a preview stands for."""
    if not isinstance(summary, dict) or "value" not in summary:
        return None
    found = summary.get("sha256")
    if isinstance(found, str):
        return found
    return hashlib.sha256(canonical_bytes(summary["value"])).hexdigest()


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8) as bytes: orjson, or the standard
    library for what orjson refuses (non-text keys, integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, default=_fallback, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(
            _text_keyed(value),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=_fallback,
        ).encode()


def _text_keyed(value: Any) -> Any:
    """`value` with every record key as text (JSON's keys are; mixed keys cannot be sorted)."""
    if isinstance(value, dict):
        return {str(k): _text_keyed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_text_keyed(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return canonical_bytes(value).decode()


def _fallback(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
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
            for sink in self.sinks:
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


# ---------------------------------------------------------------- JSONL


class JsonlSink:
    """Writes the trace as JSON Lines, in batches (see the module docstring).

    Lines: a header `{"event": "trace", "format", "time", "trace_id", ...header}`, then per span
    either one `span` line (it started and ended between two flushes) or a `start` line and
    later an `end` line holding what changed; `blob` lines hold large inputs by sha256.
    """

    def __init__(self, path: str | os.PathLike[str], *, header: dict[str, Any] | None = None):
        self.path = path if isinstance(path, Path) else Path(path)
        self._header: dict[str, Any] | None = {
            "event": "trace",
            "format": TRACE_FORMAT,
            "time": time.time(),
            **(header or {}),
        }
        name = os.fspath(path)
        try:
            self._fd: int | None = os.open(name, _OPEN_FLAGS, 0o644)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(name, _OPEN_FLAGS, 0o644)
        #: spans that started and have not ended (their start line is written by a flush
        #: that finds them still running)
        self._running: dict[str, Span] = {}
        #: lines of ended spans (and blobs) not written yet; appended without a lock. Built when
        #: the span ends, so the queue holds bytes, not spans: a long run's ended spans (and
        #: their previews) are freed at once instead of surviving, GC-tracked, until a flush
        self._queue: collections.deque[bytes] = collections.deque()
        #: the trace id, from the first span (the header waits for it)
        self._trace: str | None = None
        #: ids of spans whose start line is written but not their end
        self._started: set[str] = set()
        #: held while writing, so the timer's flush and the final one never interleave
        self._lock = threading.RLock()
        self.error: OSError | None = None
        _FLUSHER.add(self)

    def on_start(self, span: Span) -> None:
        if self._trace is None:
            self._trace = span.trace_id
        self._running[span.span_id] = span

    def on_end(self, span: Span) -> None:
        span_id = span.span_id
        if self._running.pop(span_id, None) is None and self._trace is None:
            self._trace = span.trace_id  # ended without a start seen here
        started = self._started
        if span_id in started:
            started.discard(span_id)
            line = _dumps(_end_record(span, {"event": "end", "span_id": span_id}))
        else:
            # a flush racing with this may still write a start line after it: `read_trace`
            # never lets a start override what the span line said
            line = _span_line(span)
        queue = self._queue
        queue.append(line)
        if len(queue) > _FLUSH_EVENTS:
            self.flush()

    def on_blob(self, sha256: str, text: str) -> None:
        self._queue.append(_dumps({"event": "blob", "sha256": sha256, "text": text}))

    def flush(self, final: bool = False) -> None:
        """Write what happened since the last flush: spans that ended (one `span` line, or an
        `end` line after an earlier `start`), then a `start` line for each span still running."""
        with self._lock:
            if self._fd is None:
                return
            queue = self._queue
            lines: list[bytes] = []
            if self._header is not None:
                if "trace_id" not in self._header:
                    trace_id = self._trace
                    if trace_id is None and not final:
                        return  # nothing has happened yet; the header waits for a trace id
                    self._header["trace_id"] = trace_id
                lines.append(_dumps(self._header))
                self._header = None
            started = self._started
            # popleft, not a copy and clear: the run's thread may append meanwhile
            while queue:
                lines.append(queue.popleft())
            if self._running:
                # a copy: the run's thread may start and end spans meanwhile
                for span in list(self._running.values()):
                    if span.span_id not in started:
                        started.add(span.span_id)
                        lines.append(_dumps(_start_record(span, "start")))
            if not lines:
                return
            data = b"".join(lines)
            try:
                while data:
                    data = data[os.write(self._fd, data) :]
            except OSError as e:
                if self.error is None:
                    self.error = e
                    warnings.warn(
                        f"treadle could not write the trace {self.path}: {e}",
                        RuntimeWarning,
                        stacklevel=2,
                    )

    def close(self) -> None:
        with self._lock:
            if self._fd is None:
                return
            try:
                self.flush(final=True)
            finally:
                _FLUSHER.remove(self)
                os.close(self._fd)
                self._fd = None


_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def _dumps(record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record, default=_fallback, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(record, ensure_ascii=False, default=_fallback) + "\n").encode()


def _span_line(span: Span) -> bytes:
    """`_end_record(span, _start_record(span, "span"))` as a line, in one go: this runs once
    for nearly every span of every traced run."""
    record: dict[str, Any] = {
        "event": "span",
        "span_id": span.span_id,
        "kind": span.kind,
        "name": span.name,
        "start": span.start,
        "end": span.end,
        "status": span.status,
    }
    value: Any = span.parent_id
    if value is not None:
        record["parent_id"] = value
    value = span.step
    if value is not None:
        record["step"] = value
    value = span.op
    if value is not None:
        record["op"] = value
    value = span.inputs
    if value is not None:
        record["inputs"] = value
    value = span.outputs
    if value is not None:
        record["outputs"] = value
    if span.kind == "model":
        for key in ("tokens_in", "tokens_out", "cached"):
            value = getattr(span, key)
            if value is not None:
                record[key] = value
    value = span.error
    if value is not None:
        record["error"] = value
    value = span.attrs
    if value:
        record["attrs"] = value
    value = span.events
    if value:
        record["events"] = value
    try:
        return orjson.dumps(record, default=_fallback, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(record, ensure_ascii=False, default=_fallback) + "\n").encode()


def _start_record(span: Span, event: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event": event,
        "span_id": span.span_id,
        "kind": span.kind,
        "name": span.name,
        "start": span.start,
    }
    if span.parent_id is not None:
        record["parent_id"] = span.parent_id
    if span.step is not None:
        record["step"] = span.step
    if span.op is not None:
        record["op"] = span.op
    if span.inputs is not None:
        record["inputs"] = span.inputs
    if span.attrs:
        record["attrs"] = span.attrs
    return record


def _end_record(span: Span, record: dict[str, Any]) -> dict[str, Any]:
    record["status"] = span.status
    record["end"] = span.end
    if span.outputs is not None:
        record["outputs"] = span.outputs
    if span.tokens_in is not None:
        record["tokens_in"] = span.tokens_in
    if span.tokens_out is not None:
        record["tokens_out"] = span.tokens_out
    if span.cached is not None:
        record["cached"] = span.cached
    if span.error is not None:
        record["error"] = span.error
    if span.attrs:
        record["attrs"] = span.attrs
    if span.events:
        record["events"] = span.events
    return record


class _Flusher:
    """One daemon thread flushing every open JSONL trace every FLUSH_INTERVAL seconds; it
    stops after a while with nothing open and starts again with the next trace."""

    def __init__(self) -> None:
        self.sinks: set[JsonlSink] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.hooked = False

    def add(self, sink: JsonlSink) -> None:
        self.sinks.add(sink)  # atomic; the lock is only for starting and stopping the thread
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._loop, name="treadle-trace-flush", daemon=True
                    )
                    self.thread.start()
        if not self.hooked:
            self.hooked = True
            _install_exit_hooks()

    def remove(self, sink: JsonlSink) -> None:
        self.sinks.discard(sink)

    def _loop(self) -> None:
        idle_since = time.monotonic()
        while True:
            time.sleep(FLUSH_INTERVAL)
            sinks = list(self.sinks)
            if not sinks:
                if time.monotonic() - idle_since >= _IDLE_EXIT:
                    with self.lock:
                        self.thread = None
                        if not self.sinks:
                            return
                        # a trace opened while stopping saw the old thread: keep running
                        self.thread = threading.current_thread()
                continue
            idle_since = time.monotonic()
            for sink in sinks:
                # a trace that cannot be written must not stop the others
                with contextlib.suppress(Exception):
                    sink.flush()

    def flush_all(self) -> None:
        for sink in list(self.sinks):
            if sink._lock.acquire(timeout=1):
                try:
                    sink.flush()
                except Exception:
                    pass
                finally:
                    sink._lock.release()

    def after_fork(self) -> None:
        """A forked child leaves the parent's traces to the parent (writing its copy of their
        queues would duplicate lines), and has no flusher thread until it opens a trace."""
        self.lock = threading.Lock()
        self.thread = None
        self.sinks = set()


_FLUSHER = _Flusher()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_FLUSHER.after_fork)


def _install_exit_hooks() -> None:
    """Flush open traces at interpreter exit, and on SIGTERM / SIGHUP when nobody else handles
    them (then die of the signal as before). SIGINT raises KeyboardInterrupt, which ends the
    run and its trace normally."""
    atexit.register(_FLUSHER.flush_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _flush_and_die)
        except (ValueError, OSError):  # not allowed here (an embedded interpreter)
            pass


def _flush_and_die(signum: int, frame: Any) -> None:
    _FLUSHER.flush_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


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
    #: large inputs stored once, by sha256
    blobs: dict[str, str] = dataclasses.field(default_factory=dict)

    def children(self) -> dict[str | None, list[Span]]:
        tree: dict[str | None, list[Span]] = {}
        ids = {s.span_id for s in self.spans}
        for s in self.spans:
            parent = s.parent_id if s.parent_id in ids else None
            tree.setdefault(parent, []).append(s)
        for kids in tree.values():
            kids.sort(key=lambda s: s.start)
        return tree

    def blob(self, ref: Any) -> str | None:
        """The text a `{"blob": sha256, ...}` reference stands for, if the trace holds it."""
        if isinstance(ref, dict) and isinstance(ref.get("blob"), str):
            return self.blobs.get(ref["blob"])
        return None


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a JSONL trace (format 1 or 2), complete or cut short: a start without an end stays
    unfinished, a line cut short by a crash is counted in `bad_lines`."""
    header: dict[str, Any] = {}
    records: dict[str, dict[str, Any]] = {}
    blobs: dict[str, str] = {}
    bad = 0
    for line in Path(path).read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(record, dict):
            bad += 1
            continue
        event = record.pop("event", None)
        sid = record.get("span_id")
        if event == "trace":
            header = record
        elif event in ("start", "end", "span") and isinstance(sid, str):
            old = records.get(sid)
            if old is None:
                records[sid] = record
            elif event == "start":  # never let a start override what an end said
                records[sid] = {**record, **old}
            else:
                old.update(record)
        elif event == "blob" and isinstance(record.get("sha256"), str):
            blobs[record["sha256"]] = str(record.get("text", ""))
        else:
            bad += 1
    trace_id = str(header.get("trace_id") or "")
    spans = []
    for record in records.values():
        record.setdefault("trace_id", trace_id)
        spans.append(Span.from_dict(record))
    return Trace(header, spans, bad, blobs)


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


#: longest input/output preview exported as an OpenTelemetry attribute
_OTEL_TEXT = 8000
#: OpenInference span kinds (Phoenix draws LLM, TOOL and CHAIN spans differently)
_OPENINFERENCE_KIND = {"workflow": "CHAIN", "step": "CHAIN", "model": "LLM", "sandbox": "TOOL"}

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
        # the JSONL trace's id (OpenTelemetry draws its own), to find one from the other
        "treadle.trace_id": span.trace_id,
        "treadle.span_id": span.span_id,
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
    for side, summary in (("input", span.inputs), ("output", span.outputs)):
        digest = value_sha256(summary)
        if digest is not None:
            attrs[f"treadle.{side}s.sha256"] = digest
            # OpenInference (what Phoenix shows as a span's input and output)
            text = canonical_json(summary["value"])
            attrs[f"{side}.value"] = text if len(text) <= _OTEL_TEXT else text[:_OTEL_TEXT] + "…"
            attrs[f"{side}.mime_type"] = "application/json"
    attrs["openinference.span.kind"] = _OPENINFERENCE_KIND.get(span.kind, "CHAIN")
    if span.kind == "model":
        model = span.attrs.get("gen_ai.request.model")
        if model is not None:
            attrs["llm.model_name"] = str(model)
        if span.tokens_in is not None:
            attrs["llm.token_count.prompt"] = span.tokens_in
        if span.tokens_out is not None:
            attrs["llm.token_count.completion"] = span.tokens_out
        if span.tokens_in is not None and span.tokens_out is not None:
            attrs["llm.token_count.total"] = span.tokens_in + span.tokens_out
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
